"""Temperature scaling, split-conformal intervals, ECE and Brier."""

import json
import math

import numpy as np
import pytest

from raft.calibration import (
    Calibration,
    brier,
    conformal_halfwidth,
    ece,
    expected_scores,
    fit,
    fit_temperature,
    gold_classes,
    temper,
)


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_the_fit_recovers_a_known_temperature(true_t):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2.0, (20000, 5))
    truth = _softmax(logits / true_t)
    classes = np.array([rng.choice(5, p=p) for p in truth])
    fitted = fit_temperature(_softmax(logits), classes)
    assert fitted == pytest.approx(true_t, rel=0.05)


def test_temper_is_softmax_of_logits_over_t():
    logits = np.array([[2.0, 1.0, 0.0, -1.0, 0.5]])
    np.testing.assert_allclose(temper(_softmax(logits), 2.0), _softmax(logits / 2.0), atol=1e-12)
    np.testing.assert_allclose(temper(_softmax(logits), 1.0), _softmax(logits), atol=1e-12)


def test_ece_and_brier_by_hand():
    probs = np.array([[0.9, 0.1, 0, 0, 0], [0.6, 0.4, 0, 0, 0], [0.2, 0.8, 0, 0, 0]])
    classes = np.array([0, 1, 1])
    value, table = ece(probs, classes, bins=10)
    # bins: 0.9 (correct), 0.6 (wrong), 0.8 (correct): (|1-0.9| + |0-0.6| + |1-0.8|) / 3
    assert value == pytest.approx((0.1 + 0.6 + 0.2) / 3)
    assert [b["n"] for b in table] == [1, 1, 1]
    assert brier(probs, classes) == pytest.approx(((0.1**2 + 0.1**2) + (0.6**2 + 0.6**2) + (0.2**2 + 0.2**2)) / 3)


def test_gold_classes_round_half_up_and_clip():
    assert gold_classes([1, 2.5, 2.49, 4.67, 9, 0], (1, 5)).tolist() == [0, 2, 1, 4, 4, 0]


def test_conformal_halfwidth_uses_the_finite_sample_quantile():
    gold = np.arange(1, 10, dtype=float)
    assert conformal_halfwidth(gold, np.zeros(9), 0.8) == 8.0  # ceil(10 * 0.8) = 8th smallest residual
    assert math.isinf(conformal_halfwidth(gold[:3], np.zeros(3), 0.9))


def test_conformal_coverage_is_on_target_over_many_seeds():
    coverages = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        n = 400
        logits = rng.normal(0, 1.5, (n, 5))
        probs = _softmax(logits)
        gold = np.clip(expected_scores(probs, (1, 5)) + rng.normal(0, 0.7, n), 1, 5)
        cal = fit(probs, gold, list(range(1, n + 1)), (1, 5), coverage=0.9, fit_fraction=0.5, seed=seed)
        coverages.append(cal.holdout["coverage"])
    mean = float(np.mean(coverages))
    print(f"mean held-out coverage over 200 seeds: {mean:.4f} (target 0.90)")
    assert abs(mean - 0.9) <= 0.03


def test_a_calibration_file_round_trips_and_bad_ones_are_refused(tmp_path):
    cal = Calibration(1.7, 0.8, 0.9, [1, 5], 10, [1, 2, 3])
    loaded = Calibration.load(cal.save(tmp_path / "cal.json"))
    assert loaded == cal and loaded.interval(4.6) == [pytest.approx(3.8), 5]
    (tmp_path / "bad.json").write_text(json.dumps({**cal.__dict__, "temperature": -1}))
    with pytest.raises(ValueError, match="not a calibration file"):
        Calibration.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a calibration file"):
        Calibration.load(tmp_path / "junk.json")


def test_a_calibrated_judge_tempers_and_adds_an_interval(tiny_judge, rows):
    cal = Calibration(0.5, 0.75, 0.9, [1, 5])
    plain = tiny_judge.score(rows[:3])
    calibrated = tiny_judge.with_calibration(cal).score(rows[:3])
    for a, b in zip(plain, calibrated):
        assert a.interval is None and b.interval == [max(1, b.expected_score - 0.75), min(5, b.expected_score + 0.75)]
        np.testing.assert_allclose(b.probs, temper(np.array([a.probs]), 0.5)[0], atol=1e-9)
        assert b.expected_score == pytest.approx(float(np.dot(b.probs, [1, 2, 3, 4, 5])))
    assert tiny_judge.calibration is None
    with pytest.raises(ValueError, match="scale"):
        tiny_judge.with_calibration(Calibration(1.0, 0.5, 0.9, [0, 4]))
