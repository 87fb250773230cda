"""Agreement between predicted and gold scores: Pearson, Spearman, Kendall tau-b, RMSE, MAE,
exact agreement of the rounded score. Rows without a prediction are counted, never hidden."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def as_number(value: Any) -> float | None:
    """A finite float from a number or numeric text; None for anything else."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _corr(fn: Any, a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    value = fn(a, b)[0] if fn is not stats.kendalltau else fn(a, b, variant="b").statistic
    return float(value)


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)


def agreement(gold: Sequence[Any], pred: Sequence[Any]) -> dict[str, Any]:
    """Metrics over rows that have both a gold and a predicted score.

    n: rows scored against gold; n_missing_pred: rows with gold but no prediction;
    n_missing_gold: rows with no gold score. Correlations are None when undefined (constant input).
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} rows, predictions {len(pred)}")
    pairs, missing_pred, missing_gold = [], 0, 0
    for g, p in zip(gold, pred):
        g, p = as_number(g), as_number(p)
        if g is None:
            missing_gold += 1
        elif p is None:
            missing_pred += 1
        else:
            pairs.append((g, p))
    out: dict[str, Any] = {"n": len(pairs), "n_missing_pred": missing_pred, "n_missing_gold": missing_gold}
    if not pairs:
        return {**out, "pearson": None, "spearman": None, "kendall": None, "rmse": None, "mae": None, "exact": None}
    g, p = (np.asarray(col, dtype=np.float64) for col in zip(*pairs))
    return {
        **out,
        "pearson": _corr(stats.pearsonr, g, p),
        "spearman": _corr(stats.spearmanr, g, p),
        "kendall": _corr(stats.kendalltau, g, p),
        "rmse": float(np.sqrt(np.mean((g - p) ** 2))),
        "mae": float(np.mean(np.abs(g - p))),
        "exact": float(np.mean(_round_half_up(g) == _round_half_up(p))),
    }


def confusion(gold: Sequence[Any], pred: Sequence[Any], scale: tuple[int, int] = (1, 5)) -> list[list[int]]:
    """Counts of (gold, predicted) rounded scores: row i is gold scale[0] + i, column j predicted."""
    size = scale[1] - scale[0] + 1
    table = [[0] * size for _ in range(size)]
    for g, p in zip(gold, pred):
        g, p = as_number(g), as_number(p)
        if g is None or p is None:
            continue
        i, j = (int(min(max(np.floor(x + 0.5), scale[0]), scale[1])) - scale[0] for x in (g, p))
        table[i][j] += 1
    return table


def weighted_kappa(a: Sequence[Any], b: Sequence[Any], scale: tuple[int, int] = (1, 5)) -> float | None:
    """Quadratic-weighted Cohen's kappa of two graders' scores on one scale (rounded half up, clipped):
    1 - sum(w*O) / sum(w*E), w_ij = (i-j)^2 / (K-1)^2, E the outer product of the marginals / n.

    The standard for ordinal agreement: 1 is perfect, 0 chance level. None when undefined (no
    pairs, or both graders constant on one level)."""
    observed = np.asarray(confusion(a, b, scale), dtype=np.float64)
    return kappa_from_table(observed)


def kappa_from_table(observed: np.ndarray) -> float | None:
    """Quadratic-weighted kappa of a K x K table of counts (rows grader A, columns grader B)."""
    n, size = observed.sum(), len(observed)
    if n == 0 or size < 2:
        return None
    levels = np.arange(size)
    weights = (levels[:, None] - levels[None, :]) ** 2 / (size - 1) ** 2
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    chance = (weights * expected).sum()
    if chance == 0:
        return None
    return float(1 - (weights * observed).sum() / chance)
