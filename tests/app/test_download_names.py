"""Downloads are named by what they hold (file and judge), not by a hash, and the HTML report's
heading is a heading (no literal '###')."""

import re

from app import batch_tab, evaluate_tab, own_files
from app.studio import DEFAULT_CHOICE
from raft.files import write_rows
from raft.synthetic import generate_rows


def test_batch_and_report_downloads_have_descriptive_names_and_the_report_a_real_heading(studio, tmp_path):
    path = write_rows(tmp_path / "my answers.jsonl", generate_rows(12, seed=5))
    *_, files = batch_tab.score_batch(
        studio, str(path), "", DEFAULT_CHOICE, "score_only", 4, "orig_score", progress=lambda *a, **k: None
    )
    names = [f.rsplit("/", 1)[-1] for f in files]
    assert names == ["my-answers-default-model-scored.csv", "my-answers-default-model-scored.jsonl"]
    [(_, result)] = own_files.batch_results(studio.workspace())
    *_, reports = evaluate_tab.evaluate(studio, result, None, None, None, "", "", "", None)
    assert [r.rsplit("/", 1)[-1] for r in reports] == ["my-answers-default-model-report.html",
                                                      "my-answers-default-model-report.json"]  # fmt: skip
    html = open(reports[0], encoding="utf-8").read()
    assert "###" not in html
    assert re.search(r"<h1>default model on my answers\.jsonl · n = 12</h1>", html)


def test_the_scored_csv_holds_each_column_once(studio, tmp_path):
    rows = [
        {"question": r["orig_instruction"], "answer": r["orig_response"], "score": r["orig_score"]}
        for r in generate_rows(6, seed=7)
    ]
    path = write_rows(tmp_path / "mine.csv", rows)
    mapping = "orig_instruction=question,orig_response=answer,orig_score=score"
    *_, files = batch_tab.score_batch(
        studio, str(path), mapping, DEFAULT_CHOICE, "score_only", 4, "orig_score", None, "hf", "Helpfulness",
        progress=lambda *a, **k: None,
    )  # fmt: skip
    header = open(files[0], encoding="utf-8").readline().strip().split(",")
    assert len(header) == len(set(header)), header
    assert {"question", "answer", "score", "expected_score"} <= set(header)
    assert not {"orig_instruction", "orig_response", "orig_score"} & set(header)  # copies of the columns above
    assert sum(1 for _ in open(files[1], encoding="utf-8")) == 6  # the JSONL keeps the judge's names for Evaluate
