"""Agreement on the levels of a scale, with 95% bootstrap intervals: quadratic-weighted kappa (the
standard for ordinal scores) for every scale, and for a two-level scale (pass/fail, 0/1) the true
and false positive rates and balanced accuracy, the figures pass/fail judging is read by.

Scores are rounded half up and clipped to the scale, as `raft.metrics.confusion` does; the higher
level of a two-level scale is the positive one. Rows are resampled as the report card's other
metrics (`raft.stats.bootstrap`), drawn block by block (`raft.stats.resample_blocks`): memory
O(rows), the same draws as one (resamples, rows) array."""

from __future__ import annotations

from typing import Any

import numpy as np

from raft.metrics import as_number, kappa_from_table
from raft.stats import resample_blocks


def levels_of(values: np.ndarray, scale: tuple[int, int]) -> np.ndarray:
    """0-based level of each score: rounded half up, clipped to the scale."""
    return np.clip(np.floor(np.asarray(values, dtype=np.float64) + 0.5), *scale).astype(int) - scale[0]


def infer_scale(gold: Any, pred: Any) -> tuple[int, int]:
    """The smallest integer scale holding every rounded gold and predicted score (kappa does not
    depend on empty outer levels, so this is exact for kappa)."""
    values = [np.floor(x + 0.5) for x in (as_number(v) for v in [*gold, *pred]) if x is not None]
    if not values:
        return (1, 5)
    lo, hi = int(min(values)), int(max(values))
    return (lo, hi) if hi > lo else (lo, lo + 1)


def _percentiles(draws: np.ndarray, n_boot: int, level: float) -> tuple[float | None, float | None]:
    good = draws[np.isfinite(draws)]
    if len(good) < 0.5 * n_boot:
        return None, None
    lo, hi = np.percentile(good, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def kappa_interval(
    labels: np.ndarray, pred: np.ndarray, scale: tuple[int, int], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float | None]:
    """Quadratic-weighted kappa of labels against rounded predictions, with a percentile bootstrap
    interval (rows resampled, as the report card's other metrics)."""
    size = scale[1] - scale[0] + 1
    cell = levels_of(labels, scale) * size + levels_of(pred, scale)

    def kappa(idx: np.ndarray) -> float:
        table = np.bincount(cell[idx], minlength=size * size).reshape(size, size)
        value = kappa_from_table(table)
        return np.nan if value is None else value

    value = kappa(np.arange(len(cell)))
    out: dict[str, float | None] = {"value": None if np.isnan(value) else value, "lo": None, "hi": None}
    if len(cell) >= 2:
        draws = np.array([kappa(i) for _, block in resample_blocks(len(cell), n_boot, seed) for i in block])
        out["lo"], out["hi"] = _percentiles(draws, n_boot, level)
    return out


def _rates(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(B, 3) true positive rate, false positive rate, balanced accuracy of (B, n) 0/1 arrays."""
    with np.errstate(invalid="ignore", divide="ignore"):
        pos, neg = gold.sum(axis=1), (1 - gold).sum(axis=1)
        tpr = (gold * pred).sum(axis=1) / pos
        fpr = ((1 - gold) * pred).sum(axis=1) / neg
    return np.stack([tpr, fpr, (tpr + 1 - fpr) / 2], axis=1)


def binary_rates(
    gold: Any, pred: Any, scale: tuple[int, int], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """On a two-level scale: the true positive rate (share of gold passes the judge passes), the
    false positive rate (share of gold fails it passes) and balanced accuracy (their mean of
    TPR and 1 - FPR, blind to the pass rate), each {value, lo, hi}, with the positives and
    negatives counted (`n_pos`, `n_neg`). A rate is None where its gold class is empty."""
    if scale[1] - scale[0] != 1:
        raise ValueError(f"true and false positive rates need a two-level scale, not {scale[0]}..{scale[1]}")
    g, p = levels_of(gold, scale).astype(np.float64), levels_of(pred, scale).astype(np.float64)
    point = _rates(g[None], p[None])[0]
    out: dict[str, Any] = {"positive": scale[1], "n_pos": int(g.sum()), "n_neg": int(len(g) - g.sum())}
    draws = np.empty((0, 3))
    if len(g) >= 2:
        draws = np.concatenate([_rates(g[idx], p[idx]) for _, idx in resample_blocks(len(g), n_boot, seed)])
    for j, name in enumerate(("tpr", "fpr", "balanced_accuracy")):
        value = float(point[j]) if np.isfinite(point[j]) else None
        lo, hi = _percentiles(draws[:, j], n_boot, level) if len(draws) and value is not None else (None, None)
        out[name] = {"value": value, "lo": lo, "hi": hi}
    return out


def level_agreement(
    gold: Any, pred: Any, scale: tuple[int, int] | None = None, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Weighted kappa with its interval on `scale` (inferred from the scores when None), and on a
    two-level scale the binary rates: {scale, weighted_kappa, binary (two-level only)}."""
    g = np.asarray([as_number(v) for v in gold], dtype=np.float64)
    p = np.asarray([as_number(v) for v in pred], dtype=np.float64)
    keep = np.isfinite(g) & np.isfinite(p)
    g, p = g[keep], p[keep]
    scale = tuple(scale) if scale else infer_scale(g, p)
    out: dict[str, Any] = {"scale": list(scale), "weighted_kappa": kappa_interval(g, p, scale, n_boot, seed, level)}
    if scale[1] - scale[0] == 1:
        out["binary"] = binary_rates(g, p, scale, n_boot, seed, level)
    return out


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def binary_lines(binary: dict[str, Any], who: str = "gold") -> list[str]:
    """Markdown table rows (| name | value [lo, hi] |) of a two-level scale's rates, each with its n."""
    pos, n_pos, n_neg = binary["positive"], binary["n_pos"], binary["n_neg"]
    names = {
        "tpr": f"true positive rate (n = {n_pos} {who} {pos})",
        "fpr": f"false positive rate (n = {n_neg} {who} below {pos})",
        "balanced_accuracy": f"balanced accuracy (n = {n_pos + n_neg})",
    }
    return [
        f"| {label} | {_fmt(binary[k]['value'])} [{_fmt(binary[k]['lo'])}, {_fmt(binary[k]['hi'])}] |"
        for k, label in names.items()
    ]
