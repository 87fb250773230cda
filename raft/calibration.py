"""Calibration of a judge's score distribution, and intervals for its expected score.

- Temperature: the score-token logits divided by T (fitted to minimise the gold's negative
  log-likelihood). The judge's renormalised probabilities are the softmax of those logits, so
  tempering them is `p ** (1/T)` renormalised: no logits need to be kept.
- Split-conformal intervals: on rows with gold, the (1 - alpha) quantile of |gold - expected| with
  the finite-sample correction gives a half-width q; `[E - q, E + q]` (clipped to the scale) then
  covers the gold of a new exchangeable row with probability at least the chosen coverage.
- ECE (top-label, equal-width bins) and the multi-class Brier score against the rounded gold.
- Level map ("calibrate to my labels"): a monotone value v_1 <= ... <= v_K for each score level,
  fitted so that the expected score sum_k p_k v_k matches a grader's labels (least squares, pulled
  gently towards the levels themselves so that a level with no labels keeps its own value). The
  judge's distribution is kept; only what each level is worth changes. A judge that puts its mass
  on 5 where the grader says 3 is mapped down, a judge that squeezes everything into 3-4 is
  stretched, and the order of the rows (Spearman) is never reversed. It needs no model run: the
  distributions the judge already wrote are enough, so it is fitted in milliseconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import lsq_linear, minimize_scalar

from raft.output import write_text

EPS = 1e-12


def gold_classes(gold: Any, scale: tuple[int, int]) -> np.ndarray:
    """Gold scores rounded half up and clipped to the scale, as class indices 0..K-1."""
    g = np.floor(np.asarray(gold, dtype=np.float64) + 0.5)
    return (np.clip(g, scale[0], scale[1]) - scale[0]).astype(int)


def temper(probs: Any, temperature: float) -> np.ndarray:
    """Probabilities over the scale at temperature T: softmax(log p / T), row by row."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, None)) / temperature
    logp -= logp.max(axis=-1, keepdims=True)
    q = np.exp(logp)
    return q / q.sum(axis=-1, keepdims=True)


def nll(probs: Any, classes: np.ndarray) -> float:
    p = np.asarray(probs, dtype=np.float64)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(classes)), classes], EPS, None))))


def fit_temperature(probs: Any, classes: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature that minimises the negative log-likelihood of the gold classes."""
    p = np.asarray(probs, dtype=np.float64)
    result = minimize_scalar(
        lambda log_t: nll(temper(p, math.exp(log_t)), classes),
        bounds=(math.log(bounds[0]), math.log(bounds[1])),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(math.exp(result.x))


def ece(probs: Any, classes: np.ndarray, bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """Top-label expected calibration error and the reliability table (per confidence bin: n,
    mean confidence, accuracy)."""
    p = np.asarray(probs, dtype=np.float64)
    confidence, predicted = p.max(axis=1), p.argmax(axis=1)
    correct = predicted == classes
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table, total = [], 0.0
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        conf, acc = float(confidence[inside].mean()), float(correct[inside].mean())
        total += inside.mean() * abs(acc - conf)
        table.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "n": int(inside.sum()),
                "confidence": conf,
                "accuracy": acc,
            }
        )
    return float(total), table


def brier(probs: Any, classes: np.ndarray) -> float:
    """Multi-class Brier score: mean over rows of sum_k (p_k - [k = gold])^2."""
    p = np.asarray(probs, dtype=np.float64)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(classes)), classes] = 1.0
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def conformal_halfwidth(gold: Any, expected: Any, coverage: float = 0.9) -> float:
    """Split-conformal half-width: the ceil((n+1) * coverage)-th smallest |gold - expected|."""
    residuals = np.sort(np.abs(np.asarray(gold, dtype=np.float64) - np.asarray(expected, dtype=np.float64)))
    k = math.ceil((len(residuals) + 1) * coverage)
    return float(residuals[k - 1]) if k <= len(residuals) else math.inf


def expected_scores(probs: Any, scale: tuple[int, int], levels: Any = None) -> np.ndarray:
    """sum_k p_k v_k per row, v the scale's own values, or a fitted level map's."""
    values = np.arange(scale[0], scale[1] + 1, dtype=np.float64) if levels is None else np.asarray(levels, float)
    return np.asarray(probs, dtype=np.float64) @ values


LEVEL_PRIOR = 0.5
"""How strongly a level map is pulled towards the plain levels (in rows' worth of squared error)."""


def fit_levels(probs: Any, gold: Any, scale: tuple[int, int], prior: float = LEVEL_PRIOR) -> list[float]:
    """The monotone level values v (v_1 <= ... <= v_K, inside the scale) that minimise
    sum_rows (p . v - gold)^2 + prior * sum_k (v_k - k)^2.

    Written as v = a + cumsum(d) with d >= 0, a bounded least-squares problem (scipy's
    `lsq_linear`): monotone by construction, one solution, no iterations to tune."""
    p, g = np.asarray(probs, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    lo, hi = scale
    k = hi - lo + 1
    if p.ndim != 2 or p.shape[1] != k:
        raise ValueError(f"the distributions have {p.shape[-1] if p.ndim else 0} levels, the scale {scale} has {k}")
    if len(g) != len(p) or not len(g):
        raise ValueError("a level map needs rows with both a label and a score distribution")
    steps = np.tril(np.ones((k, k)))  # v = steps @ theta, theta = (a, d_2, ..., d_K)
    levels = np.arange(lo, hi + 1, dtype=np.float64)
    a = np.vstack([p @ steps, math.sqrt(prior) * steps]) if prior > 0 else p @ steps
    b = np.concatenate([g, math.sqrt(prior) * levels]) if prior > 0 else g
    lower = np.r_[lo, np.zeros(k - 1)]
    upper = np.r_[hi, np.full(k - 1, hi - lo)]
    theta = lsq_linear(a, b, bounds=(lower, upper), method="bvls").x
    return [float(v) for v in np.clip(steps @ theta, lo, hi)]


@dataclass
class Calibration:
    """A fitted temperature and conformal half-width for one judge on one scale."""

    temperature: float
    halfwidth: float
    coverage: float
    scale: list[int]
    n_fit: int = 0
    fit_rows: list[int] = field(default_factory=list)
    """Row numbers used to fit; the report evaluates on the others."""
    holdout: dict[str, Any] = field(default_factory=dict)
    """Figures on the rows not used to fit: ECE before and after, interval coverage."""
    levels: list[float] | None = None
    """A level map (`fit_levels`): what each score level is worth in the expected score; None: its own value."""

    def apply(self, probs: Any) -> np.ndarray:
        return temper(probs, self.temperature)

    def values(self, scale_values: Any) -> np.ndarray:
        """The value of each score level in the expected score: the level map's, else the levels."""
        return np.asarray(self.levels if self.levels is not None else scale_values, dtype=np.float64)

    def expected(self, probs: Any) -> np.ndarray:
        """Expected scores of (tempered) distributions, with the level map when there is one."""
        return expected_scores(probs, tuple(self.scale), self.levels)

    def interval(self, expected: float) -> list[float]:
        lo, hi = self.scale
        return [max(lo, expected - self.halfwidth), min(hi, expected + self.halfwidth)]

    def save(self, path: str | Path) -> Path:
        write_text(path, json.dumps(asdict(self), indent=2))
        return Path(path)

    def check_levels(self) -> None:
        """Refuse a level map that is not one number per level, ascending, inside the scale."""
        if self.levels is None:
            return
        lo, hi = self.scale
        v = [float(x) for x in self.levels]
        if len(v) != hi - lo + 1 or any(not (lo <= x <= hi) for x in v) or any(b < a for a, b in zip(v, v[1:])):
            raise ValueError(f"levels must be {hi - lo + 1} ascending numbers within {lo}..{hi}")
        self.levels = v

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """A calibration from its JSON form (a file, or the `calibration` of a judge.json), checked."""
        try:
            cal = cls(**data)
            cal.scale = [int(x) for x in cal.scale]
            if not (cal.temperature > 0 and 0 < cal.coverage < 1 and cal.halfwidth >= 0 and len(cal.scale) == 2):
                raise ValueError("values out of range")
            cal.check_levels()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a calibration ({exc})") from None
        return cal

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        try:
            data = json.loads(Path(path).read_text())
            return cls.from_dict(data if isinstance(data, dict) else {})
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a calibration file written by `python -m raft calibrate` ({exc})") from None


def evaluate(cal: Calibration, probs: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    """ECE and Brier before and after the temperature, and the coverage of the intervals."""
    scale = tuple(cal.scale)
    classes = gold_classes(gold, scale)
    tempered = cal.apply(probs)
    expected = cal.expected(tempered)
    intervals = np.array([cal.interval(e) for e in expected]) if len(expected) else np.zeros((0, 2))
    covered = (intervals[:, 0] - 1e-9 <= gold) & (gold <= intervals[:, 1] + 1e-9) if len(gold) else np.array([])
    return {
        "n": int(len(gold)),
        "ece_before": ece(probs, classes)[0] if len(gold) else None,
        "ece_after": ece(tempered, classes)[0] if len(gold) else None,
        "brier_before": brier(probs, classes) if len(gold) else None,
        "brier_after": brier(tempered, classes) if len(gold) else None,
        "coverage": float(covered.mean()) if len(gold) else None,
        "mean_width": float((intervals[:, 1] - intervals[:, 0]).mean()) if len(gold) else None,
    }


def fit(
    probs: Any,
    gold: Any,
    rows: list[int],
    scale: tuple[int, int],
    coverage: float = 0.9,
    fit_fraction: float = 0.5,
    seed: int = 0,
) -> Calibration:
    """Fit the temperature and the conformal half-width on a seeded share of the rows, and record
    the figures on the rest (the rows a report may trust them on)."""
    if not 0 < coverage < 1:
        raise ValueError(f"coverage {coverage} must be between 0 and 1")
    p, g = np.asarray(probs, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if len(g) < 4:
        raise ValueError(f"calibration needs rows with gold and a score distribution; found {len(g)}")
    order = np.random.default_rng(seed).permutation(len(g))
    n_fit = min(max(int(round(len(g) * fit_fraction)), 2), len(g) - 1 if fit_fraction < 1 else len(g))
    fit_idx, rest = order[:n_fit], order[n_fit:]
    temperature = fit_temperature(p[fit_idx], gold_classes(g[fit_idx], scale))
    halfwidth = conformal_halfwidth(g[fit_idx], expected_scores(temper(p[fit_idx], temperature), scale), coverage)
    cal = Calibration(temperature, halfwidth, coverage, list(scale), n_fit, sorted(int(rows[i]) for i in fit_idx))
    cal.holdout = evaluate(cal, p[rest], g[rest])
    return cal


def fit_level_map(
    probs: Any, gold: Any, rows: list[int], scale: tuple[int, int], coverage: float = 0.9, prior: float = LEVEL_PRIOR
) -> Calibration:
    """A calibration that is a level map fitted on every row given (a grader's training labels; the
    comparison is made on other rows), with a split-conformal half-width from the same rows (the
    scale's width when they are too few for the coverage asked)."""
    p, g = np.asarray(probs, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    levels = fit_levels(p, g, scale, prior)
    halfwidth = conformal_halfwidth(g, expected_scores(p, scale, levels), coverage)
    halfwidth = float(scale[1] - scale[0]) if math.isinf(halfwidth) else halfwidth
    return Calibration(1.0, halfwidth, coverage, list(scale), len(g), sorted(int(r) for r in rows), levels=levels)
