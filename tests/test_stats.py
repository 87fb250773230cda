"""Bootstrap intervals against a slow reference, and the paired comparison of two judges."""

import numpy as np
import pytest

from raft.metrics import agreement
from raft.stats import METRICS, bootstrap, compare, verdict


def _slow_reference(gold, pred, n_boot, seed, level=0.95):
    """The same resamples, each scored by raft.metrics.agreement one at a time."""
    idx = np.random.default_rng(seed).integers(0, len(gold), size=(n_boot, len(gold)))
    draws = {m: [] for m in METRICS}
    for rows in idx:
        m = agreement(gold[rows].tolist(), pred[rows].tolist())
        for name in METRICS:
            draws[name].append(np.nan if m[name] is None else m[name])
    out = {}
    for name in METRICS:
        values = np.array(draws[name])
        good = values[np.isfinite(values)]
        out[name] = np.percentile(good, [50 * (1 - level), 50 * (1 + level)])
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_bootstrap_matches_a_slow_reference(seed):
    rng = np.random.default_rng(seed)
    gold = rng.integers(1, 6, 25).astype(float)
    pred = np.clip(gold + rng.normal(0, 1.0, 25), 1, 5)
    fast = bootstrap(gold, pred, n_boot=1000, seed=seed)
    slow = _slow_reference(gold, pred, 1000, seed)
    point = agreement(gold.tolist(), pred.tolist())
    for m in METRICS:
        assert fast[m]["value"] == pytest.approx(point[m], abs=1e-12)
        assert [fast[m]["lo"], fast[m]["hi"]] == pytest.approx(list(slow[m]), abs=1e-9)
        assert fast[m]["lo"] <= fast[m]["value"] <= fast[m]["hi"]


def test_intervals_narrow_as_rows_grow():
    rng = np.random.default_rng(3)
    widths = []
    for n in (50, 800):
        gold = rng.integers(1, 6, n).astype(float)
        ci = bootstrap(gold, gold + rng.normal(0, 1, n), seed=0)["pearson"]
        widths.append(ci["hi"] - ci["lo"])
    assert widths[1] < widths[0] / 2


def test_a_constant_prediction_has_no_correlation_interval():
    out = bootstrap([1, 2, 3, 4, 5, 3], [3] * 6)
    assert out["pearson"]["value"] is None and out["pearson"]["lo"] is None
    assert out["rmse"]["value"] == pytest.approx(np.sqrt(np.mean(np.square([2, 1, 0, 1, 2, 0]))))


def test_fewer_than_1000_resamples_are_refused_by_the_report():
    from raft.report import build_report

    with pytest.raises(ValueError, match="at least 1,000"):
        build_report([{"orig_score": 1, "expected_score": 1.2}, {"orig_score": 2, "expected_score": 2.1}], n_boot=100)


def test_a_judge_against_itself_relabelled_is_no_different():
    rng = np.random.default_rng(0)
    gold = rng.integers(1, 6, 200).astype(float)
    a = gold + rng.normal(0, 1, 200)
    result = compare(gold, a, a.copy())
    for m in METRICS:
        assert result[m]["diff"] == 0 and result[m]["p_value"] > 0.05 and result[m]["better"] is None


def test_two_equally_good_judges_are_not_told_apart():
    rng = np.random.default_rng(5)
    gold = rng.integers(1, 6, 300).astype(float)
    result = compare(gold, gold + rng.normal(0, 1, 300), gold + rng.normal(0, 1, 300), seed=2)
    assert result["pearson"]["p_value"] > 0.05 and result["pearson"]["lo"] < 0 < result["pearson"]["hi"]


def test_a_clearly_better_judge_wins_with_a_small_p_value():
    rng = np.random.default_rng(1)
    gold = rng.integers(1, 6, 150).astype(float)
    good, poor = gold + rng.normal(0, 0.4, 150), gold + rng.normal(0, 1.6, 150)
    result = compare(gold, poor, good)
    for m in ("pearson", "spearman", "kendall", "rmse", "mae"):
        assert result[m]["p_value"] < 0.05 and result[m]["better"] == "B", m
    assert result["pearson"]["hi"] < 0 and result["rmse"]["lo"] > 0


@pytest.mark.parametrize(
    "diff, lo, hi, p, lower_is_better, better, said",
    [
        (0.2, 0.05, 0.4, 0.01, False, "A", "A better"),
        (-0.2, -0.4, -0.05, 0.01, False, "B", "B better"),
        (-0.2, -0.4, -0.05, 0.01, True, "A", "A better"),  # rmse: lower wins
        (0.2, -0.0001, 0.43, 0.35, False, None, "no difference"),  # the RAFT vs untrained
        (0.2, 0.01, 0.43, 0.35, False, None, "undecided (interval excludes 0, p = 0.35)"),
        (0.2, -0.01, 0.43, 0.03, False, None, "undecided (p = 0.03, interval includes 0)"),
        (0.05, -0.1, 0.2, 0.6, False, None, "no difference"),
        (None, None, None, None, False, None, "n/a"),
    ],
)
def test_a_winner_is_named_only_where_the_interval_and_the_permutation_p_agree(
    diff, lo, hi, p, lower_is_better, better, said
):
    assert verdict(diff, lo, hi, p, 0.05, lower_is_better) == (better, said)


def test_compare_names_no_winner_where_its_two_tests_disagree():
    rng = np.random.default_rng(9)  # found by search: the interval excludes 0, the permutation p does not
    gold = rng.integers(1, 6, 40).astype(float)
    a, b = gold + rng.normal(0, 1.5, 40), gold + rng.normal(0, 2.0, 40)
    result = compare(gold, a, b)["pearson"]
    assert result["lo"] > 0 and result["p_value"] > 0.05
    assert result["better"] is None and result["verdict"].startswith("undecided (interval excludes 0")


def test_resamples_drawn_block_by_block_are_the_ones_drawn_at_once():
    """A seed gives the same resamples whatever the block size: the old one-shot (n_boot, n) draw."""
    from raft.stats import _resamples

    for n, n_boot in [(7, 1000), (1001, 300), (100_003, 45)]:
        at_once = np.random.default_rng(5).integers(0, n, size=(n_boot, n))
        blocks = list(_resamples(n, n_boot, 5))
        assert len(blocks) > 1 or n_boot <= 128
        assert np.array_equal(np.concatenate([b for _, b in blocks]), at_once)
        assert [s for s, _ in blocks] == list(np.cumsum([0] + [len(b) for _, b in blocks[:-1]]))


def test_the_bootstrap_holds_memory_in_rows_not_in_resamples_times_rows():
    """At 50,000 rows and 400 resamples the one-shot draw alone was 160 MB (int64); in blocks the
    peak is a few (block, n) arrays of at most BLOCK_ELEMENTS numbers."""
    import tracemalloc

    from raft import stats

    elements = getattr(stats, "BLOCK_ELEMENTS", 1 << 20)

    rng = np.random.default_rng(0)
    gold = rng.integers(1, 6, 50_000).astype(float)
    pred = gold + rng.normal(0, 1, gold.size)
    tracemalloc.start()
    try:
        out = bootstrap(gold, pred, n_boot=400, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out["pearson"]["lo"] < out["pearson"]["value"] < out["pearson"]["hi"]
    assert peak < 12 * 8 * elements, f"peak {peak / 2**20:.0f} MB"
    assert peak < 100 * 2**20, f"peak {peak / 2**20:.0f} MB (160 MB for the draw alone before)"


@pytest.mark.parametrize(
    "gold_values, pred_digits",
    [(5, 1), (5, 6), (2, 0), (10, 2), (200, 3)],  # ratings, ties in predictions or not; pass/fail; continuous gold
)
def test_counted_metrics_are_the_resampled_rows_metrics(gold_values, pred_digits):
    """Each resample scored from its counts of distinct (gold, prediction) pairs gives the metrics
    of its rows (as `metric_rows` computes them, scipy's ranks and tau-b) to rounding."""
    from raft.stats import Pairs, metric_rows, resample_blocks

    rng = np.random.default_rng(gold_values)
    gold = rng.integers(0, gold_values, 300).astype(float)
    pred = (gold * 4 / gold_values + rng.normal(0, 1, 300)).round(pred_digits)
    counted = Pairs(gold, pred)
    for _, block in resample_blocks(300, 40, seed=3):
        fast = counted.metrics(counted.counts(block), lambda block=block: (gold[block], pred[block]))
        slow = metric_rows(gold[block], pred[block])
        for m in METRICS:
            assert fast[m] == pytest.approx(slow[m], abs=1e-10, nan_ok=True), m


def test_the_counted_bootstrap_keeps_the_old_intervals_and_takes_o_rows_time():
    """The same seed gives the intervals of the row-by-row bootstrap (scipy's sorts per resample),
    at 20,000 rows in a fraction of its time."""
    import time

    from raft import stats

    rng = np.random.default_rng(8)
    gold = rng.integers(1, 6, 20_000).astype(float)
    pred = np.clip(gold + rng.normal(0, 0.8, gold.size), 1, 5)
    started = time.process_time()
    fast = bootstrap(gold, pred, n_boot=1000, seed=2)
    took = time.process_time() - started
    draws = {m: [] for m in METRICS}
    for _, block in stats.resample_blocks(len(gold), 1000, 2):
        for m, values in stats.metric_rows(gold[block], pred[block]).items():
            draws[m].extend(values)
    for m in METRICS:
        assert [fast[m]["lo"], fast[m]["hi"]] == pytest.approx(np.percentile(draws[m], [2.5, 97.5]), abs=1e-9), m
    assert took < 10, f"{took:.1f} s of CPU for 20,000 rows (about 16 s before)"
