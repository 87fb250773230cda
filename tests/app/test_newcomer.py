"""The newcomer's path through the handlers: own CSV (question, answer, score) mapped by the form
with a rubric for the whole file, a config without a dataset, a batch refused before work, gold
and response following the mapping, results named for people."""

import json

import gradio as gr
import pytest

from app import batch_tab, dataset_tab, evaluate_tab, finetune_tab, own_files
from app.studio import DEFAULT_CHOICE
from raft.files import write_rows

PLAIN = [
    {"question": f"What is {i} + {i}?", "answer": f"It is {2 * i + i % 3}.", "score": 1 + i % 5} for i in range(12)
]


def no_progress(*args, **kwargs):
    return None


def plain_csv(tmp_path):
    return str(write_rows(tmp_path / "mine.csv", PLAIN))


def test_the_form_recognises_question_answer_score_and_picks_a_rubric_preset(studio, tmp_path):
    from app import mapping

    columns = batch_tab.detect_columns(studio, plain_csv(tmp_path))
    form = {"dropdowns": dict.fromkeys(mapping.MAPPED)}
    _, *updates = mapping.filled(form)(columns)
    chosen = [u.value for u in updates[: len(mapping.MAPPED)]]
    assert chosen[:4] == ["question", "answer", mapping.NOT_IN_FILE, "score"]
    assert updates[len(mapping.MAPPED)].value == "Helpfulness"  # no rubric column: the first preset
    text = mapping.mapping_text(columns, *chosen)
    assert text == "orig_instruction=question, orig_response=answer, orig_score=score"
    missing = mapping.check(columns, text, True, mapping.OWN_RUBRIC, "")
    assert (
        "criterion (rubric)" in missing and "description of score 1" in missing and "description of score 5" in missing
    )
    assert mapping.check(columns, text, True, "Helpfulness", "").startswith("Ready: every field")


def test_a_typed_rubric_builds_a_dataset_that_records_it(studio, tmp_path):
    from app import mapping

    levels = ["wrong", "mostly wrong", "half right", "nearly right", "right"]
    out = dataset_tab.preview(
        studio, "uploaded file", plain_csv(tmp_path), "", 0,
        "orig_instruction=question, orig_response=answer, orig_score=score",
        "score_only", "", "none", 0, 0.25, 0, mapping.TYPED, "Is the sum right?", *levels,
    )  # fmt: skip
    built = out[0]
    manifest = dataset_tab.built_of(studio, built).manifest
    assert manifest["rubric"] == {"name": "", "criteria": "Is the sum right?", "descriptions": levels}
    assert "Is the sum right?" in out[5] and out[1]["train"] == 9
    with pytest.raises(gr.Error, match="the rubric's score 2 is empty"):
        dataset_tab.preview(
            studio, "uploaded file", plain_csv(tmp_path), "", 0, "orig_response=answer", "score_only", "", "none",
            0, 0.0, 0, mapping.TYPED, "C", "a", "", "c", "d", "e",
        )  # fmt: skip


def test_all_missing_fields_are_named_at_once_in_the_preview(studio, tmp_path):
    with pytest.raises(gr.Error) as err:
        dataset_tab.preview(
            studio, "uploaded file", plain_csv(tmp_path), "", 0, "orig_instruction=question", "score_only", "",
            "none", 0, 0.0, 0,
        )  # fmt: skip
    for field in ("orig_response", "orig_criteria", "orig_score3_description", "orig_score"):
        assert field in err.value.message
    assert str(tmp_path) not in err.value.message


def test_a_config_without_a_dataset_says_choose_a_dataset(studio):
    values = ["", "run-x", "", "raft", 1.0, True, 8, 1e-4, 5, 1.0, 2, 1, 1024, 5, False]
    text, _ = finetune_tab.update_views(studio, *values)
    assert "data: ." not in text
    with pytest.raises(gr.Error, match="Choose a dataset"):
        finetune_tab.start(studio, text)
    assert "Choose a dataset" in finetune_tab.dataset_summary(studio, None)


def test_a_batch_with_unmapped_fields_is_refused_before_any_row_and_lists_them(studio, tmp_path):
    with pytest.raises(gr.Error) as err:
        batch_tab.score_batch(
            studio, plain_csv(tmp_path), "orig_instruction=question, orig_response=answer", DEFAULT_CHOICE,
            "score_only", 4, "orig_score", progress=no_progress,
        )  # fmt: skip
    message = err.value.message
    assert message.startswith("mine.csv: no column for criterion (rubric) (orig_criteria)")
    assert "orig_score5_description" in message and str(tmp_path) not in message
    assert not list(studio.workspace().batch.iterdir())  # nothing written, nothing to list in Evaluate
    assert own_files.batch_results(studio.workspace()) == []


def test_a_mapped_batch_uses_the_mapping_for_gold_and_response_and_is_named_for_people(studio, tmp_path):
    table, summary, scatter, matrix, files = batch_tab.score_batch(
        studio, plain_csv(tmp_path), "orig_instruction=question, orig_response=answer, orig_score=score",
        DEFAULT_CHOICE, "score_only", 4, "orig_score", None, "hf", "Factual accuracy", progress=no_progress,
    )  # fmt: skip
    assert "No gold column" not in summary and "Pearson" in summary and "n = 12" in summary
    assert table["response"].tolist() == [r["answer"] for r in PLAIN] and table["gold"].tolist() == [
        str(r["score"]) for r in PLAIN
    ]
    [(label, name)] = own_files.batch_results(studio.workspace())
    assert (
        label.startswith(f"mine.csv · {DEFAULT_CHOICE} · ")
        and name.endswith(".jsonl")
        and label.split(" · ")[-1] in name
    )
    meta = json.loads((studio.workspace().batch / name).with_name(name[:-6] + ".meta.json").read_text())
    assert meta["rubric"]["name"] == "Factual accuracy" and meta["columns"]["orig_score"] == "score"
    card, *_ = evaluate_tab.evaluate(studio, name, None, None, None, "", "expected_score", "", None)
    assert card.startswith(f"### {DEFAULT_CHOICE} on mine.csv · n = 12 rows with gold")


def test_the_batch_table_shows_the_full_reason_of_an_error_without_a_server_path(studio, tmp_path):
    rows = [dict(r) for r in PLAIN[:6]]
    rows[2]["answer"] = ""
    path = write_rows(tmp_path / "gaps.csv", rows)
    table, *_ = batch_tab.score_batch(
        studio, str(path), "orig_instruction=question, orig_response=answer, orig_score=score", DEFAULT_CHOICE,
        "score_only", 4, "orig_score", None, "hf", "Helpfulness", progress=no_progress,
    )  # fmt: skip
    error = table.loc[table["row"] == 3, "error"].item()
    assert error == "gaps.csv: row 3: field 'orig_response': empty"
    assert list(table.columns)[-1] == "error"
