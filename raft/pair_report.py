"""The report card of a pairwise judge: how often P(A) picks the preferred response, how well it
ranks (AUC) and how calibrated it is (Brier, reliability bins), and how much the verdict depends
on the order the two responses are shown in; every figure with a bootstrap interval over pairs.

Rows are scored pair rows (`raft.pair_batch`): `p_a` (order-combined), `p_ab`, `p_ba` and the
gold preference `orig_preference` (1: A better, 0: B better, a share in between, 0.5: a tie).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from raft.metrics import as_number
from raft.stats import resample_blocks

PAIR_METRICS = ("accuracy", "auc", "brier", "position_consistency")
BINS = 10


def _accuracy(pref: np.ndarray, p: np.ndarray, ab: np.ndarray, ba: np.ndarray) -> np.ndarray:
    """Share of decided pairs (preference not 0.5) on whose side P(A) falls; P(A) = 0.5 counts half."""
    decided = pref != 0.5
    right = np.where(p == 0.5, 0.5, ((p > 0.5) == (pref > 0.5)).astype(float))
    with np.errstate(invalid="ignore"):
        return np.where(decided, right, 0).sum(axis=-1) / decided.sum(axis=-1)


def _auc(pref: np.ndarray, p: np.ndarray, ab: np.ndarray, ba: np.ndarray) -> np.ndarray:
    """Probability that a pair where A is preferred gets a higher P(A) than one where B is (ties half)."""
    out = np.full(pref.shape[0], np.nan)
    for i in range(pref.shape[0]):
        pos, neg = pref[i] > 0.5, pref[i] < 0.5
        n_pos, n_neg = int(pos.sum()), int(neg.sum())
        if n_pos and n_neg:
            ranks = sps.rankdata(p[i][pos | neg])
            out[i] = (ranks[pos[pos | neg]].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def _brier(pref: np.ndarray, p: np.ndarray, ab: np.ndarray, ba: np.ndarray) -> np.ndarray:
    return ((p - pref) ** 2).mean(axis=-1)


def _consistency(pref: np.ndarray, p: np.ndarray, ab: np.ndarray, ba: np.ndarray) -> np.ndarray:
    """Share of pairs whose two orders pick the same response (nan without both orders)."""
    with np.errstate(invalid="ignore"):
        agree = ((ab > 0.5) == (1 - ba > 0.5)).astype(float)
        return np.where(np.isnan(ab) | np.isnan(ba), np.nan, agree).mean(axis=-1)


FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "accuracy": _accuracy,
    "auc": _auc,
    "brier": _brier,
    "position_consistency": _consistency,
}


def _value(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def pair_metrics(
    preference: Sequence[float],
    p_a: Sequence[float],
    p_ab: Sequence[float | None] | None = None,
    p_ba: Sequence[float | None] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Accuracy, AUC, Brier score and position consistency with percentile bootstrap intervals
    (pairs resampled), the position bias (mean gap between the orders), and reliability bins."""
    pref, p = np.asarray(preference, dtype=float), np.asarray(p_a, dtype=float)
    n = len(p)
    nan = np.full(n, np.nan)
    ab = nan if p_ab is None else np.array([np.nan if v is None else v for v in p_ab], dtype=float)
    ba = nan if p_ba is None else np.array([np.nan if v is None else v for v in p_ba], dtype=float)
    out: dict[str, Any] = {"n": n, "decided": int((pref != 0.5).sum())}
    draws = {m: np.empty(n_boot) for m in PAIR_METRICS}
    if n >= 2 and n_boot > 0:
        for start, idx in resample_blocks(n, n_boot, seed):
            for m, fn in FUNCTIONS.items():
                draws[m][start : start + len(idx)] = fn(pref[idx], p[idx], ab[idx], ba[idx])
    for m, fn in FUNCTIONS.items():
        value = _value(fn(pref[None], p[None], ab[None], ba[None])[0])
        good = draws[m][np.isfinite(draws[m])] if n >= 2 and n_boot > 0 else np.zeros(0)
        lo = hi = None
        if len(good) and len(good) >= 0.5 * n_boot:
            lo, hi = (float(x) for x in np.percentile(good, [50 * (1 - level), 50 * (1 + level)]))
        out[m] = {"value": value, "lo": lo, "hi": hi}
    gaps = ab + ba - 1
    out["position_bias"] = _value(np.nanmean(gaps)) if np.isfinite(gaps).any() else None
    out["reliability"] = reliability_bins(pref, p)
    return out


def reliability_bins(preference: Sequence[float], p_a: Sequence[float], bins: int = BINS) -> list[dict[str, Any]]:
    """Equal-width bins of P(A): each bin's range, pair count, mean P(A) and mean preference (the
    points of a reliability plot; a calibrated judge has the two means equal)."""
    pref, p = np.asarray(preference, dtype=float), np.asarray(p_a, dtype=float)
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        out.append(
            {
                "lo": b / bins,
                "hi": (b + 1) / bins,
                "count": int(mask.sum()),
                "mean_p_a": float(p[mask].mean()) if mask.any() else None,
                "mean_preference": float(pref[mask].mean()) if mask.any() else None,
            }
        )
    return out


def is_pair_rows(rows: Sequence[dict[str, Any]]) -> bool:
    """Scored pair rows: they carry the order-combined P(A)."""
    return any("p_a" in r for r in rows)


def pair_report(rows: Sequence[dict[str, Any]], gold: str = "orig_preference", **options: Any) -> dict[str, Any]:
    """The report card of scored pair rows: rows without a P(A) or a gold preference are counted and left out."""
    used = [r for r in rows if as_number(r.get("p_a")) is not None and as_number(r.get(gold)) is not None]
    report = pair_metrics(
        [float(r[gold]) for r in used],
        [float(r["p_a"]) for r in used],
        [as_number(r.get("p_ab")) for r in used],
        [as_number(r.get("p_ba")) for r in used],
        **options,
    )
    report["rows"], report["left_out"] = len(rows), len(rows) - len(used)
    report["errors"] = sum(1 for r in rows if r.get("error"))
    return report


def pair_markdown(report: dict[str, Any]) -> str:
    """The pair report card as a short Markdown table."""

    def fmt(x: Any) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    lines = [
        f"# Pairwise report card ({report['n']} pairs, {report['decided']} with a preferred response)",
        "",
        "| metric | value | 95% interval |",
        "|---|---|---|",
    ]
    for m in PAIR_METRICS:
        v = report[m]
        lines.append(f"| {m.replace('_', ' ')} | {fmt(v['value'])} | {fmt(v['lo'])} .. {fmt(v['hi'])} |")
    lines.append(f"| position bias (mean P_AB(A) - (1 - P_BA(A))) | {fmt(report['position_bias'])} | |")
    if report.get("left_out"):
        lines.append(f"\n{report['left_out']} rows without a P(A) or a gold preference were left out.")
    return "\n".join(lines) + "\n"
