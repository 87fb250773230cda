"""Downloads are named by what they hold (file and judge), not by a hash, and the HTML report's
heading is a heading (no literal '###')."""

import re

from app import batch_tab, evaluate_tab
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
    [(_, result)] = evaluate_tab.batch_results(studio.workspace())
    *_, reports = evaluate_tab.evaluate(studio, result, None, None, None, "", "", "", None)
    assert [r.rsplit("/", 1)[-1] for r in reports] == ["my-answers-default-model-report.html",
                                                      "my-answers-default-model-report.json"]  # fmt: skip
    html = open(reports[0], encoding="utf-8").read()
    assert "###" not in html
    assert re.search(r"<h1>default model on my answers\.jsonl · n = 12</h1>", html)
