"""Agreement on a scale's levels: weighted kappa in `raft eval` and the report card against a
hand-computed table, and true/false positive rates and balanced accuracy on two-level scales."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raft.cli import main
from raft.levels import binary_rates, infer_scale, kappa_interval, level_agreement
from raft.metrics import weighted_kappa
from raft.report import build_report, scale_of_rows, to_markdown
from raft.report_html import to_html

# gold 1 1 2 2 3 3, predictions rounding to 1 1 3 2 3 2: the table (rows gold, columns judge) is
# [[2,0,0],[0,1,1],[0,1,1]]; marginals 2,2,2 each side, so every expected cell is 2*2/6 = 2/3.
# Quadratic weights (i-j)^2/(3-1)^2: the two off-by-one cells weigh 1/4 each, so
# sum(w*O) = 1/4 + 1/4 = 0.5; sum(w*E) = 2/3 * (4 * 1/4 + 2 * 1) = 2; kappa = 1 - 0.5/2 = 0.75.
GOLD = [1, 1, 2, 2, 3, 3]
PRED = [1.2, 0.9, 2.6, 2.4, 3.1, 1.6]
KAPPA_BY_HAND = 0.75


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_raft_eval_reports_weighted_kappa_of_a_hand_computed_table(tmp_path, capsys):
    path = _write(tmp_path / "s.jsonl", [{"orig_score": g, "expected_score": p} for g, p in zip(GOLD, PRED)])
    assert main(["eval", "--input", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scale"] == [1, 3]
    k = out["weighted_kappa"]
    assert k["value"] == pytest.approx(KAPPA_BY_HAND)
    assert k["lo"] <= KAPPA_BY_HAND <= k["hi"]
    assert weighted_kappa(GOLD, PRED, (1, 5)) == pytest.approx(KAPPA_BY_HAND)  # one definition, reused


def test_report_card_carries_kappa_in_json_markdown_and_html():
    rows = [{"orig_score": g, "expected_score": p} for g, p in zip(GOLD, PRED)]
    card = build_report(rows)
    assert card["levels"]["weighted_kappa"]["value"] == pytest.approx(KAPPA_BY_HAND)
    text = to_markdown(card)
    assert "| weighted kappa (quadratic, scale 1..3) | 0.75 [" in text
    assert "weighted kappa (quadratic, scale 1..3)" in to_html(card, text)


def test_kappa_does_not_depend_on_empty_outer_levels():
    assert kappa_interval(np.array(GOLD), np.array(PRED), (1, 5))["value"] == pytest.approx(KAPPA_BY_HAND)
    assert infer_scale(GOLD, PRED) == (1, 3)


# pass/fail: gold 1 on 4 rows, the judge passes 3 of them (TPR 3/4) and 1 of the 4 fails (FPR 1/4);
# balanced accuracy (3/4 + 3/4) / 2 = 3/4.
BIN_GOLD = [1, 1, 1, 1, 0, 0, 0, 0]
BIN_PRED = [0.9, 0.7, 0.6, 0.2, 0.1, 0.3, 0.8, 0.4]


def test_binary_rates_by_hand_and_in_eval(tmp_path, capsys):
    rates = binary_rates(BIN_GOLD, BIN_PRED, (0, 1))
    assert (rates["n_pos"], rates["n_neg"], rates["positive"]) == (4, 4, 1)
    assert rates["tpr"]["value"] == pytest.approx(0.75)
    assert rates["fpr"]["value"] == pytest.approx(0.25)
    assert rates["balanced_accuracy"]["value"] == pytest.approx(0.75)
    for name in ("tpr", "fpr", "balanced_accuracy"):
        assert rates[name]["lo"] <= rates[name]["value"] <= rates[name]["hi"]
    path = _write(tmp_path / "b.jsonl", [{"orig_score": g, "expected_score": p} for g, p in zip(BIN_GOLD, BIN_PRED)])
    assert main(["eval", "--input", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scale"] == [0, 1] and out["tpr"]["value"] == pytest.approx(0.75)
    assert out["balanced_accuracy"]["value"] == pytest.approx(0.75)


def test_binary_rates_need_two_levels_and_say_when_a_class_is_empty():
    with pytest.raises(ValueError, match="two-level"):
        binary_rates([1, 2], [1, 2], (1, 5))
    rates = binary_rates([1, 1, 1], [1, 0, 1], (0, 1))
    assert rates["fpr"]["value"] is None and rates["tpr"]["value"] == pytest.approx(2 / 3)
    assert "binary" not in level_agreement([1, 3, 5], [1, 3, 5])


def test_two_level_scale_read_off_the_rows_for_the_card():
    """A 0/1 judge's rows carry 2 probabilities and the most likely score: the card's scale is 0..1
    (not 1..2), so calibration and the rates are on the judge's own levels."""
    rows = [
        {"orig_score": g, "expected_score": p, "probs": [1 - p, p], "mode_score": int(p >= 0.5)}
        for g, p in zip(BIN_GOLD, BIN_PRED)
    ]
    assert scale_of_rows(rows) == (0, 1)
    card = build_report(rows)
    assert card["scale"] == [0, 1] and card["levels"]["scale"] == [0, 1]
    assert card["levels"]["binary"]["tpr"]["value"] == pytest.approx(0.75)
    assert "true positive rate (n = 4 gold 1)" in to_markdown(card)
