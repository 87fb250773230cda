import numpy as np
import pytest
from scipy import stats

from raft.metrics import agreement

GOLD = [1, 2, 3, 4, 5, 3, 2, 4]
PRED = [1.2, 2.5, 2.9, 3.6, 4.8, 3.4, 1.1, 4.4]


def test_metrics_match_scipy_and_numpy():
    m = agreement(GOLD, PRED)
    assert m["n"] == 8 and m["n_missing_pred"] == 0
    assert m["pearson"] == pytest.approx(stats.pearsonr(GOLD, PRED)[0])
    assert m["spearman"] == pytest.approx(stats.spearmanr(GOLD, PRED)[0])
    assert m["kendall"] == pytest.approx(stats.kendalltau(GOLD, PRED, variant="b")[0])
    diff = np.subtract(GOLD, PRED)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(diff**2)))
    assert m["mae"] == pytest.approx(np.mean(np.abs(diff)))
    assert m["exact"] == pytest.approx(6 / 8)  # 2.5 rounds to 3, 3.4 to 3: two misses


def test_hand_computed_values():
    m = agreement([1, 2, 3], [1, 2, 4])
    assert m["rmse"] == pytest.approx(np.sqrt(1 / 3)) and m["mae"] == pytest.approx(1 / 3)
    assert m["spearman"] == pytest.approx(1.0) and m["kendall"] == pytest.approx(1.0)


def test_missing_predictions_and_gold_are_counted():
    m = agreement([1, 2, None, 4, 5], [1, None, 3, "x", 5])
    assert (m["n"], m["n_missing_pred"], m["n_missing_gold"]) == (2, 2, 1)


def test_undefined_correlations_are_none():
    m = agreement([3, 3, 3], [1, 2, 3])
    assert m["pearson"] is None and m["rmse"] is not None
    assert agreement([], [])["pearson"] is None


def test_lengths_must_match():
    with pytest.raises(ValueError):
        agreement([1], [1, 2])


def test_weighted_kappa_against_a_hand_computed_table():
    from raft.metrics import weighted_kappa

    a = [1, 1, 2, 2, 3, 3, 3, 1]
    b = [1, 2, 2, 3, 3, 3, 2, 1]
    # O = [[2,1,0],[0,1,1],[0,1,2]], w = (i-j)^2/4: sum w*O = 0.75; E = outer([3,2,3],[2,3,3])/8: sum w*E = 22/8
    assert weighted_kappa(a, b, (1, 3)) == pytest.approx(1 - 0.75 / (22 / 8))
    assert weighted_kappa(a, a, (1, 3)) == pytest.approx(1.0)
    assert weighted_kappa([1.4, 2.6], [1, 3], (1, 3)) == pytest.approx(1.0)  # rounded half up
    assert weighted_kappa([2, 2], [2, 2], (1, 3)) is None  # no disagreement possible by chance: undefined
    assert weighted_kappa([], [], (1, 5)) is None
