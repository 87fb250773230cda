"""How far an agreement figure can be trusted: bootstrap confidence intervals of every metric of
`raft.metrics`, and the paired comparison of two judges on the same rows.

Resampling is vectorised in blocks: a block of resamples is one (B, n) array, drawn when it is
used, with B chosen so that B * n stays near `BLOCK_ELEMENTS`. Memory is therefore O(n), a few
arrays of `BLOCK_ELEMENTS` numbers (8 MiB each) whatever the number of resamples, not
O(resamples x n); the draws come from one generator in order, so a seed gives the same resamples
(and the same intervals) whatever the block size. Kendall's tau-b, which has no cheap vectorised
form, runs scipy's O(n log n) implementation per resample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from scipy import stats

METRICS = ("pearson", "spearman", "kendall", "rmse", "mae", "exact")
LOWER_IS_BETTER = {"rmse", "mae"}
BLOCK = 128
"""Resamples computed at once, at most."""
BLOCK_ELEMENTS = 1 << 20
"""Numbers in one (resamples, rows) block array at most (8 MiB as float64): the block holds
max(1, BLOCK_ELEMENTS // n) resamples, so memory stays O(n) at any n."""


def block_size(n: int) -> int:
    """Resamples per block for n rows: the most that keep a block under BLOCK_ELEMENTS numbers."""
    return max(1, min(BLOCK, BLOCK_ELEMENTS // max(n, 1)))


def _pearson(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    gc, pc = g - g.mean(axis=1, keepdims=True), p - p.mean(axis=1, keepdims=True)
    constant = (np.ptp(g, axis=1) == 0) | (np.ptp(p, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (gc * pc).sum(axis=1) / np.sqrt((gc**2).sum(axis=1) * (pc**2).sum(axis=1))
    return np.where(constant, np.nan, np.clip(r, -1, 1))


def _spearman(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    return _pearson(stats.rankdata(g, axis=1), stats.rankdata(p, axis=1))


def _kendall(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.full(len(g), np.nan)
    for i, (a, b) in enumerate(zip(g, p)):
        if np.ptp(a) > 0 and np.ptp(b) > 0:
            out[i] = stats.kendalltau(a, b, variant="b").statistic
    return out


def _exact(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (np.floor(g + 0.5) == np.floor(p + 0.5)).mean(axis=1)


FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "pearson": _pearson,
    "spearman": _spearman,
    "kendall": _kendall,
    "rmse": lambda g, p: np.sqrt(((g - p) ** 2).mean(axis=1)),
    "mae": lambda g, p: np.abs(g - p).mean(axis=1),
    "exact": _exact,
}


def metric_rows(gold: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of each row of (B, n) gold and prediction arrays (nan where undefined)."""
    return {name: fn(gold, pred) for name, fn in FUNCTIONS.items()}


def resample_blocks(n: int, n_boot: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first resample's index, (B, n) row indices) for each block, drawn one block at a time from
    one generator: the same draws, in the same order, as (n_boot, n) drawn at once."""
    rng = np.random.default_rng(seed)
    step = block_size(n)
    for start in range(0, n_boot, step):
        yield start, rng.integers(0, n, size=(min(step, n_boot - start), n))


_resamples = resample_blocks


def _interval(samples: np.ndarray, level: float) -> tuple[float | None, float | None]:
    good = samples[np.isfinite(samples)]
    if len(good) < 0.5 * len(samples):
        return None, None
    lo, hi = np.percentile(good, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _number(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def bootstrap(
    gold: Any, pred: Any, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, dict[str, float | None]]:
    """Each metric's value and percentile bootstrap interval (rows resampled with replacement).

    Returns {metric: {value, lo, hi, se}}; lo/hi are None when most resamples leave it undefined.
    """
    g, p = np.asarray(gold, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if g.shape != p.shape or g.ndim != 1:
        raise ValueError(f"gold and predictions must be two vectors of one length, got {g.shape} and {p.shape}")
    point = metric_rows(g[None], p[None])
    if len(g) < 2:
        return {m: {"value": _number(point[m][0]), "lo": None, "hi": None, "se": None} for m in METRICS}
    draws = {m: np.empty(n_boot) for m in METRICS}
    for start, block in _resamples(len(g), n_boot, seed):
        for m, values in metric_rows(g[block], p[block]).items():
            draws[m][start : start + len(block)] = values
    out = {}
    for m in METRICS:
        lo, hi = _interval(draws[m], level)
        finite = draws[m][np.isfinite(draws[m])]
        out[m] = {
            "value": _number(point[m][0]),
            "lo": lo,
            "hi": hi,
            "se": float(finite.std(ddof=1)) if len(finite) > 1 else None,
        }
    return out


def compare(
    gold: Any,
    pred_a: Any,
    pred_b: Any,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """Judge A against judge B on the same rows: each metric's A - B, its paired bootstrap interval,
    the two-sided p-value of a paired permutation test (each row's two predictions swapped at
    random), and one verdict: `better` names a winner only where both tests find it (see `verdict`)."""
    g, a, b = (np.asarray(x, dtype=np.float64) for x in (gold, pred_a, pred_b))
    if not (g.shape == a.shape == b.shape) or g.ndim != 1:
        raise ValueError("gold and both judges' predictions must be vectors of one length")
    point_a, point_b = metric_rows(g[None], a[None]), metric_rows(g[None], b[None])
    n = len(g)
    rng = np.random.default_rng(seed + 1)
    boot = {m: np.empty(n_boot) for m in METRICS}
    perm = {m: np.empty(n_boot) for m in METRICS}
    for start, rows in _resamples(n, n_boot, seed):
        ma, mb = metric_rows(g[rows], a[rows]), metric_rows(g[rows], b[rows])
        swap = rng.random((len(rows), n)) < 0.5
        gg = np.broadcast_to(g, swap.shape)
        pa, pb = metric_rows(gg, np.where(swap, b, a)), metric_rows(gg, np.where(swap, a, b))
        for m in METRICS:
            boot[m][start : start + len(rows)] = ma[m] - mb[m]
            perm[m][start : start + len(rows)] = pa[m] - pb[m]
    out = {}
    alpha = 1 - level
    for m in METRICS:
        diff = point_a[m][0] - point_b[m][0]
        lo, hi = _interval(boot[m], level)
        null = perm[m][np.isfinite(perm[m])]
        p_value = None
        if np.isfinite(diff) and len(null):
            p_value = float((1 + np.sum(np.abs(null) >= abs(diff) - 1e-12)) / (len(null) + 1))
        better, said = verdict(_number(diff), lo, hi, p_value, alpha, m in LOWER_IS_BETTER)
        out[m] = {
            "a": _number(point_a[m][0]),
            "b": _number(point_b[m][0]),
            "diff": _number(diff),
            "lo": lo,
            "hi": hi,
            "p_value": p_value,
            "better": better,
            "verdict": said,
        }
    return out


def verdict(
    diff: float | None,
    lo: float | None,
    hi: float | None,
    p_value: float | None,
    alpha: float = 0.05,
    lower_is_better: bool = False,
) -> tuple[str | None, str]:
    """One verdict from the two tests: ("A" or "B", "A better") only where the bootstrap interval of
    A - B excludes 0 and the permutation p < alpha agree; "no difference" where neither finds one;
    "undecided (...)" naming the test that disagrees otherwise."""
    if diff is None or p_value is None or lo is None or hi is None:
        return None, "n/a"
    interval_says = lo > 0 or hi < 0
    p_says = p_value < alpha
    if interval_says and p_says and diff != 0:
        a_wins = diff < 0 if lower_is_better else diff > 0
        return ("A", "A better") if a_wins else ("B", "B better")
    if not interval_says and not p_says:
        return None, "no difference"
    if interval_says:
        return None, f"undecided (interval excludes 0, p = {p_value:.2g})"
    return None, f"undecided (p = {p_value:.2g}, interval includes 0)"
