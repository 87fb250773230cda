"""How far an agreement figure can be trusted: bootstrap confidence intervals of every metric of
`raft.metrics`, and the paired comparison of two judges on the same rows.

Resampling is vectorised in blocks: a block of resamples is one (B, n) array, drawn when it is
used, with B chosen so that B * n stays near `BLOCK_ELEMENTS`. Memory is therefore O(n), a few
arrays of `BLOCK_ELEMENTS` numbers (8 MiB each) whatever the number of resamples, not
O(resamples x n); the draws come from one generator in order, so a seed gives the same resamples
(and the same intervals) whatever the block size.

A resample is scored from its counts, not its rows: how many times it drew each distinct (gold,
prediction) pair (`Pairs`). Every metric is then a weighted sum over the pairs, sorted once by
prediction: Pearson and the errors from weighted moments, Spearman from the average rank of each
gold level and prediction value (cumulative counts), Kendall's tau-b from, for each two gold
levels, the cumulative count of one level's rows below each prediction of the other's (exact
integer arithmetic in floats).
No resample is sorted, so a resample costs O(n) instead of scipy's O(n log n) sort per metric;
gold of more than `KENDALL_LEVELS` distinct values (not a rating scale) takes scipy's tau-b per
resample as before. The figures are the old ones to rounding (`tests/test_stats.py`).
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


KENDALL_LEVELS = 16
"""Gold of at most this many distinct values (a rating scale) gets the counted Kendall's tau-b: it
holds, for each level, where every row falls among each other level's rows (levels x rows int32)."""


class Pairs:
    """The distinct (gold, prediction) pairs of n rows, sorted by prediction then gold, and what the
    counted metrics need of them (O(pairs) memory, computed once for every resample)."""

    def __init__(self, gold: np.ndarray, pred: np.ndarray):
        pairs, inverse = np.unique(np.stack([pred, gold], axis=1), axis=0, return_inverse=True)
        self.n, self.inverse = len(gold), inverse.ravel()
        self.p, self.g = pairs[:, 0], pairs[:, 1]
        first = np.r_[True, self.p[1:] != self.p[:-1]]
        self.p_starts = np.flatnonzero(first)  # each prediction value's first pair
        self.p_group = np.cumsum(first) - 1  # each pair's prediction value
        self.levels, self.ig = np.unique(self.g, return_inverse=True)
        self.ig = self.ig.ravel()
        self.g_order = np.argsort(self.ig, kind="stable")
        self.g_starts = np.r_[0, np.flatnonzero(np.diff(self.ig[self.g_order])) + 1]
        gc, pc = self.g - self.g.mean(), self.p - self.p.mean()  # centred: fewer digits lost
        match = np.floor(self.g + 0.5) == np.floor(self.p + 0.5)
        sums = [gc, pc, gc**2, pc**2, gc * pc, (self.g - self.p) ** 2, np.abs(self.g - self.p), match]
        if len(self.levels) <= KENDALL_LEVELS:  # and each gold level's count, in the same product
            sums += [self.ig == k for k in range(len(self.levels))]
        self.sums = np.stack(sums, axis=1).astype(np.float64)
        """What each resample sums, weighted by its counts: one matrix product a block."""
        self._at = [np.flatnonzero(self.ig == k) for k in range(len(self.levels))]  # each level's pairs, by prediction
        self._below: list[list[np.ndarray]] | None = None

    def counts(self, block: np.ndarray) -> np.ndarray:
        """(B, pairs) times each resample of a (B, n) block of row indices drew each pair."""
        b, u = len(block), len(self.p)
        flat = (self.inverse[block] + (np.arange(b) * u)[:, None]).ravel()
        return np.bincount(flat, minlength=b * u).reshape(b, u).astype(np.float64)

    def metrics(self, w: np.ndarray, rows: Callable[[], tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
        """Every metric of each resample given its counts `w` (B, pairs); `rows()` gives the
        resamples' (gold, prediction) rows, for the gold that Kendall cannot count."""
        n = float(self.n)
        sums = w @ self.sums
        if sums.shape[1] > 8:
            by_gold = sums[:, 8:]
        else:
            by_gold = np.add.reduceat(w[:, self.g_order], self.g_starts, axis=1)  # (B, gold levels)
        by_pred = np.add.reduceat(w, self.p_starts, axis=1)  # (B, prediction values)
        constant = (by_gold.max(axis=1) == n) | (by_pred.max(axis=1) == n)
        gold_rank = np.cumsum(by_gold, axis=1) - (by_gold - 1) / 2 - (n + 1) / 2  # average ranks, centred
        pred_rank = np.cumsum(by_pred, axis=1) - (by_pred - 1) / 2 - (n + 1) / 2
        cov = (w * gold_rank[:, self.ig] * pred_rank[:, self.p_group]).sum(axis=1)
        spread = (by_gold * gold_rank**2).sum(axis=1) * (by_pred * pred_rank**2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            spearman = np.clip(cov / np.sqrt(spread), -1, 1)
        if len(self.levels) <= KENDALL_LEVELS:
            kendall = self._kendall(w, by_gold, by_pred)
        else:
            kendall = _kendall(*rows())
        sx, sy, sxx, syy, sxy, square, absolute, match = sums[:, :8].T
        with np.errstate(invalid="ignore", divide="ignore"):
            pearson = np.clip((sxy - sx * sy / n) / np.sqrt((sxx - sx**2 / n) * (syy - sy**2 / n)), -1, 1)
        return {
            "pearson": np.where(constant, np.nan, pearson),
            "spearman": np.where(constant, np.nan, spearman),
            "kendall": np.where(constant, np.nan, kendall),
            "rmse": np.sqrt(square / n),
            "mae": absolute / n,
            "exact": match / n,
        }

    def _kendall(self, w: np.ndarray, by_gold: np.ndarray, by_pred: np.ndarray) -> np.ndarray:
        """Tau-b: (concordant - discordant pairs) / sqrt((pairs - gold ties) (pairs - prediction ties)).
        For gold levels a < b, a row of level b concords with each row of level a under its
        prediction and discords with each above it: cumulative counts of level a, read at the
        rows of level b (where `below[b][a]` says, fixed once the pairs are sorted)."""
        if self._below is None:
            self._below = [
                [np.searchsorted(self.p[at_a], self.p[at_b], side="left").astype(np.int32) for at_a in self._at]
                for at_b in self._at
            ]
        cumulative = [np.concatenate([np.zeros((len(w), 1)), np.cumsum(w[:, at], axis=1)], axis=1) for at in self._at]
        net = np.zeros(len(w))
        for b, at_b in enumerate(self._at):
            rows_b = w[:, at_b]
            for a in range(len(self._at)):
                if a != b:
                    net += np.sign(b - a) * np.einsum("ij,ij->i", rows_b, cumulative[a][:, self._below[b][a]])
        n = float(self.n)
        pairs = n * (n - 1) / 2
        ties = (by_gold * (by_gold - 1) / 2).sum(axis=1), (by_pred * (by_pred - 1) / 2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            tau = net / np.sqrt((pairs - ties[0]) * (pairs - ties[1]))
        return np.clip(tau, -1, 1)


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
    counted = Pairs(g, p) if np.isfinite(g).all() and np.isfinite(p).all() else None
    for start, block in _resamples(len(g), n_boot, seed):
        if counted is not None:
            values = counted.metrics(counted.counts(block), lambda block=block: (g[block], p[block]))
        else:
            values = metric_rows(g[block], p[block])
        for m in METRICS:
            draws[m][start : start + len(block)] = values[m]
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
