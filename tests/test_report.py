"""The report card: metrics with intervals, groups, calibration, two judges, and its three formats."""

import json
import re

import numpy as np
import pytest

from raft.cli import main
from raft.data import read_jsonl
from raft.files import write_rows
from raft.report import build_report, to_markdown, write_report


def _scored(n=120, noise=0.6, seed=0, gold_key="orig_score"):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        gold = int(rng.integers(1, 6))
        logits = -((np.arange(1, 6) - gold - rng.normal(0, noise)) ** 2) / 1.5
        probs = np.exp(logits) / np.exp(logits).sum()
        rows.append(
            {
                "row": i + 1,
                gold_key: [gold, gold, min(5, gold + 1)] if gold_key == "gpt4_score" else gold,
                "expected_score": float(probs @ np.arange(1, 6)),
                "probs": probs.tolist(),
                "category": ["math", "writing", "coding"][i % 3],
                "error": None,
            }
        )
    return rows


def test_the_card_has_every_metric_with_an_interval_groups_and_calibration():
    report = build_report(_scored(), by=["category"])
    assert report["gold"] == "orig_score" and report["n"] == 120
    for m in ("pearson", "spearman", "kendall", "rmse", "mae", "exact"):
        value = report["metrics"][m]
        assert value["lo"] <= value["value"] <= value["hi"]
    assert set(report["groups"]["category"]) == {"math", "writing", "coding"}
    assert sum(g["n"] for g in report["groups"]["category"].values()) == 120
    assert 0 <= report["calibration"]["ece"] <= 1 and report["calibration"]["reliability"]
    assert report["calibration"]["expected_vs_gold"]
    text = to_markdown(report)
    assert "| pearson |" in text and "By **category**" in text and "ECE" in text


def test_gold_lists_count_as_their_mean_and_errors_are_left_out():
    rows = _scored(gold_key="gpt4_score")
    rows[0]["error"] = "broken"
    report = build_report(rows)
    assert report["gold"] == "gpt4_score" and report["n"] == 119 and report["n_errors"] == 1
    assert report["points"]["gold"][0] == pytest.approx(np.mean(rows[1]["gpt4_score"]))


def test_two_judges_are_compared_on_the_rows_both_scored():
    good, poor = _scored(noise=0.3), _scored(noise=2.5, seed=1)
    for r, p in zip(poor, good):
        r["orig_score"] = p["orig_score"]
    report = build_report(good, other=poor[10:], names=("good", "poor"))
    comp = report["compare"]
    assert comp["n"] == 110 and comp["metrics"]["pearson"]["better"] == "A"
    assert "good vs poor on the 110 rows both scored" in to_markdown(report)


def test_the_html_report_is_one_self_contained_file(tmp_path):
    report = build_report(_scored(), by=["category"], other=_scored(seed=2))
    html = write_report(report, tmp_path / "card.html").read_text()
    assert html.count("Plotly.newPlot") == 5 and "plotly.js v" in html and len(html) > 3_000_000
    assert re.search(r"<script[^>]*\ssrc=[\"']?https?:", html) is None  # nothing fetched from a network
    assert "<table>" in html and "pearson" in html
    assert json.loads(write_report(report, tmp_path / "card.json").read_text())["n"] == 120
    assert "| pearson |" in write_report(report, tmp_path / "card.md").read_text()
    with pytest.raises(ValueError, match="unsupported report type"):
        write_report(report, tmp_path / "card.pdf")


def test_calibrate_then_score_with_it_then_report(tmp_path, tiny_model, capsys):
    rows = _scored(200)
    scored = write_rows(tmp_path / "scored.jsonl", rows)
    assert main(["calibrate", str(scored), "--out", str(tmp_path / "cal.json"), "--coverage", "0.8"]) == 0
    cal = json.loads((tmp_path / "cal.json").read_text())
    assert cal["n_fit"] == 100 and len(cal["fit_rows"]) == 100 and 0.6 <= cal["holdout"]["coverage"] <= 1
    capsys.readouterr()
    args = ["report", str(scored), "--calibration", str(tmp_path / "cal.json"), "--by", "category"]
    assert main([*args, "--out", str(tmp_path / "r.html"), "--out", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "on 100 rows not used to fit it" in out and (tmp_path / "r.html").is_file()
    held = json.loads((tmp_path / "r.json").read_text())["calibration_file"]["rows_not_used_to_fit"]
    assert held["n"] == 100 and held["coverage"] == pytest.approx(cal["holdout"]["coverage"])

    items = write_rows(tmp_path / "items.jsonl", [{k: v for k, v in r.items()} for r in _items(4)])
    out_path = tmp_path / "scored-cal.jsonl"
    args = ["score", "--input", str(items), "--out", str(out_path), "--model", str(tiny_model), "--device", "cpu"]
    assert main([*args, "--calibration", str(tmp_path / "cal.json")]) == 0
    for row in read_jsonl(out_path):
        lo, hi = row["interval"]
        assert lo <= row["expected_score"] <= hi and hi - lo <= 2 * cal["halfwidth"] + 1e-9


def _items(n):
    from raft.synthetic import generate_rows

    return generate_rows(n, seed=4)


def test_a_file_without_gold_is_a_clear_error(tmp_path, capsys):
    path = write_rows(tmp_path / "nogold.jsonl", [{"expected_score": 3.0}, {"expected_score": 2.0}])
    assert main(["report", str(path)]) == 2
    assert "no gold column found" in capsys.readouterr().err
