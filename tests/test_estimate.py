"""System estimates by prediction-powered inference: a hand computation, the command line, groups,
paired systems, and a coverage simulation with a biased judge."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raft.cli import main
from raft.estimate import estimate, labels_to_halve, power_lambda, ppi_mean, summary
from raft.files import DataError

LABELLED = [(3, 2.5), (4, 3.5), (5, 4.0), (2, 2.0)]
UNLABELLED = [3.0, 4.5, 2.5, 3.5]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _small_file(tmp_path):
    rows = [{"human": y, "expected_score": f, "row": i} for i, (y, f) in enumerate(LABELLED)]
    rows += [{"human": None, "expected_score": f, "row": 10 + i} for i, f in enumerate(UNLABELLED)]
    rows.append({"human": 5, "expected_score": None, "error": "too long", "row": 99})
    return _write(tmp_path / "scored.jsonl", rows)


def test_ppi_point_estimate_matches_a_hand_computation(tmp_path, capsys):
    # by hand: labels mean 3.5, judge on them 3.0, judge on the 4 unlabelled 3.375;
    # Cov(y, f) (1/n) = (0.25 + 0.25 + 1.5 + 1.5) / 4 = 0.875;
    # Var(all 8 judge scores) (1/(n-1)) = 4.96875 / 7; lambda = 0.875 / ((1 + 4/4) * 4.96875 / 7)
    lam = 0.875 / (2 * 4.96875 / 7)
    by_hand = lam * 3.375 + (3.5 - lam * 3.0)
    assert main(["estimate", str(_small_file(tmp_path)), "--gold", "human"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ppi"]["lambda"] == pytest.approx(lam)
    assert out["ppi"]["estimate"] == pytest.approx(by_hand)
    assert out["labels_only"]["estimate"] == pytest.approx(3.5)
    assert out["judge_only"]["estimate"] == pytest.approx(25.5 / 8)
    assert out["judge_only"]["bias"] == pytest.approx(-0.5)
    assert (out["n_labelled"], out["n_unlabelled"], out["n_left_out"]) == (4, 4, 1)
    assert out["ppi"]["lo"] < out["ppi"]["estimate"] < out["ppi"]["hi"]
    assert out["effective_labels"] > 4  # the judge correlates: worth more than its 4 labels


def test_lambda_as_ppi_py_and_zero_without_unlabelled_rows():
    y, f = np.array([1.0, 2, 3, 4]), np.array([1.1, 1.9, 3.2, 3.9])
    assert power_lambda(y, f, np.array([])) == 0.0
    assert power_lambda(y, f, np.array([2.0, 3.0, 2.5, 3.5])) == pytest.approx(
        np.mean((y - y.mean()) * (f - f.mean())) / (2 * np.var(np.r_[f, 2.0, 3.0, 2.5, 3.5], ddof=1))
    )
    assert power_lambda(y, -f, np.array([2.0, 3.0])) == 0.0  # clipped: anti-correlated judge unused
    out = ppi_mean(y, f, [])
    assert out["ppi"]["estimate"] == pytest.approx(2.5) and out["ppi"]["lo"] == pytest.approx(out["labels_only"]["lo"])


def test_under_two_labels_no_interval_and_a_reason():
    out = ppi_mean([3.0], [2.0], [1.0, 2.0])
    assert out["ppi"] is None and out["labels_only"] is None
    assert "at least 2" in summary(out)


def test_labels_to_halve():
    # labels alone (lambda 0): variance s/n; halving the width needs 4n labels
    assert labels_to_halve(10, 100, 1.0, 0.0, 0.1) == 30
    assert labels_to_halve(10, 5, 1.0, 0.0, 0.1) is None  # only 5 rows left to label


def _population(rng, size, bias=1.8, noise=0.7):
    y = rng.choice([1, 2, 3, 4, 5], size=size, p=[0.1, 0.2, 0.3, 0.25, 0.15]).astype(float)
    f = 0.6 * y + bias + rng.normal(0, noise, size)
    return y, np.clip(f, 1, 5)


def test_coverage_with_a_biased_judge_and_narrower_than_labels_alone():
    """Many seeds: n = 60 labelled rows and N = 1,000 judged-only rows drawn from one population;
    the judge is biased (its mean 0.2-0.5 above the truth) but correlates. The truth is the
    population mean, estimated once from a million rows."""
    truth_y, truth_f = _population(np.random.default_rng(12345), 1_000_000)
    truth = truth_y.mean()
    assert abs(truth_f.mean() - truth) > 0.2  # the judge alone is off
    covered, width_ppi, width_lab, judge_covered = 0, [], [], 0
    seeds = 1000
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        y, f = _population(rng, 60)
        _, f_unlab = _population(rng, 1000)
        out = ppi_mean(y, f, f_unlab)
        p, lab = out["ppi"], out["labels_only"]
        covered += p["lo"] <= truth <= p["hi"]
        judge_covered += abs(out["judge_only"]["estimate"] - truth) < (p["hi"] - p["lo"]) / 2
        width_ppi.append(p["hi"] - p["lo"])
        width_lab.append(lab["hi"] - lab["lo"])
    assert covered / seeds >= 0.93
    assert np.mean(width_ppi) < 0.85 * np.mean(width_lab)
    assert judge_covered / seeds < 0.5  # the judge alone, at the same width, misses


def test_a_judge_that_does_not_correlate_costs_little():
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(200):
        y = rng.integers(1, 6, 50).astype(float)
        out = ppi_mean(y, rng.normal(3, 1, 50), rng.normal(3, 1, 500))
        ratios.append((out["ppi"]["hi"] - out["ppi"]["lo"]) / (out["labels_only"]["hi"] - out["labels_only"]["lo"]))
    assert np.mean(ratios) < 1.03


def _systems(n_prompts=40, labelled=20):
    rows = []
    for k in range(n_prompts):
        for system, shift in (("a", 1.0), ("b", 0.0)):
            human = 2 + shift + (k % 3)
            rows.append(
                {
                    "idx": k,
                    "system": system,
                    "category": "x" if k % 2 else "y",
                    "expected_score": human + 0.5 + 0.1 * ((k * 7) % 5),
                    "human": human if k < labelled else None,
                }
            )
    return rows


def test_groups_and_pair(tmp_path, capsys):
    path = _write(tmp_path / "systems.jsonl", _systems())
    assert main(["estimate", str(path), "--gold", "human", "--by", "system", "--pair", "a", "b"]) == 0
    out = json.loads(capsys.readouterr().out)
    groups = out["groups"]["system"]
    assert set(groups) == {"a", "b"}
    assert groups["a"]["n_labelled"] == 20 and groups["a"]["n_unlabelled"] == 20
    pair = out["pair"]
    assert (pair["a"], pair["b"], pair["key"], pair["n_prompts"]) == ("a", "b", "idx", 40)
    assert pair["n_labelled"] == 20 and pair["n_unlabelled"] == 20
    assert pair["ppi"]["estimate"] == pytest.approx(1.0)  # every prompt: a is one point better
    assert pair["labels_only"]["estimate"] == pytest.approx(1.0)


def test_refusals(tmp_path, capsys):
    path = _write(tmp_path / "systems.jsonl", _systems())
    assert main(["estimate", str(path), "--gold", "nope"]) == 2
    assert "no gold column 'nope'" in capsys.readouterr().err
    with pytest.raises(DataError, match="give --by"):
        estimate(_systems(), "human", pair=("a", "b"))
    with pytest.raises(DataError, match="'c'"):
        estimate(_systems(), "human", by="system", pair=("a", "c"))


def test_intervals_stay_on_the_scale():
    """Four labels on a 1-5 scale give a t interval wider than the scale (the newcomer saw
    [0.77, 6.67]); the mean cannot leave the scale, so the interval is cut to [1, 5]."""
    from raft.estimate import ppi_mean

    y, f_lab, f_unlab = [1, 5, 1, 5], [3, 3, 3, 3], [3.0] * 20
    uncut = ppi_mean(y, f_lab, f_unlab)
    assert uncut["labels_only"]["lo"] < 1 and uncut["labels_only"]["hi"] > 5
    cut = ppi_mean(y, f_lab, f_unlab, bounds=(1.0, 5.0))
    for name in ("ppi", "labels_only"):
        assert cut[name]["lo"] == 1.0 and cut[name]["hi"] == 5.0
        assert cut[name]["estimate"] == uncut[name]["estimate"]
