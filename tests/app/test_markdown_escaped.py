"""Text a visitor sent, or a model wrote from it, reaches the page's Markdown as text (issue 22
item 4): a dataset name in the Fine-tune summary, a gold column name in the Batch summary, a
judge's feedback in the Score result: no image that loads from another host, no markup."""

from types import SimpleNamespace

from app import batch_tab, finetune_tab, score_tab

IMAGE = "![x](https://evil.example/p.png)<img src=https://evil.example/q.png>"


def test_a_dataset_name_in_the_fine_tune_summary_is_text(studio):
    text = finetune_tab.dataset_summary(studio, IMAGE)
    assert "not a valid name" in text and "![" not in text and "<img" not in text and "](" not in text


def test_a_gold_column_name_in_the_batch_summary_is_text():
    rows = [{"row": 1, "expected_score": 3.0, "orig_response": "a"}]
    _, summary, *_ = batch_tab.results_view(rows, IMAGE, (1, 5))
    assert "No gold column" in summary and "![" not in summary and "<img" not in summary


def test_feedback_in_the_score_result_is_text_with_its_lines():
    judged = SimpleNamespace(
        expected_score=3.2, mode_score=3, score_mass=0.9, flag=None, interval=None,
        feedback=f"Line one\n1. a point\n{IMAGE}",
    )  # fmt: skip
    text = score_tab._verdict_markdown("judge", judged)
    assert "![" not in text and "<img" not in text and "Line one<br>1. a point<br>" in text


def test_a_group_value_in_the_estimate_panel_is_text():
    from app.estimate_panel import _cell

    cell = _cell(IMAGE + " | next")
    assert "![" not in cell and "<img" not in cell and "](" not in cell and " | " not in cell
