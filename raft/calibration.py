"""Calibration of a judge's score distribution, and intervals for its expected score.

- Temperature: the score-token logits divided by T (fitted to minimise the gold's negative
  log-likelihood). The judge's renormalised probabilities are the softmax of those logits, so
  tempering them is `p ** (1/T)` renormalised: no logits need to be kept.
- Split-conformal intervals: on rows with gold, the (1 - alpha) quantile of |gold - expected| with
  the finite-sample correction gives a half-width q; `[E - q, E + q]` (clipped to the scale) then
  covers the gold of a new exchangeable row with probability at least the chosen coverage.
- ECE (top-label, equal-width bins) and the multi-class Brier score against the rounded gold.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

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


def expected_scores(probs: Any, scale: tuple[int, int]) -> np.ndarray:
    return np.asarray(probs, dtype=np.float64) @ np.arange(scale[0], scale[1] + 1, dtype=np.float64)


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

    def apply(self, probs: Any) -> np.ndarray:
        return temper(probs, self.temperature)

    def interval(self, expected: float) -> list[float]:
        lo, hi = self.scale
        return [max(lo, expected - self.halfwidth), min(hi, expected + self.halfwidth)]

    def save(self, path: str | Path) -> Path:
        Path(path).write_text(json.dumps(asdict(self), indent=2))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        try:
            data = json.loads(Path(path).read_text())
            cal = cls(**data)
            if not (cal.temperature > 0 and 0 < cal.coverage < 1 and cal.halfwidth >= 0 and len(cal.scale) == 2):
                raise ValueError("values out of range")
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a calibration file written by `python -m raft calibrate` ({exc})") from None
        return cal


def evaluate(cal: Calibration, probs: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    """ECE and Brier before and after the temperature, and the coverage of the intervals."""
    scale = tuple(cal.scale)
    classes = gold_classes(gold, scale)
    tempered = cal.apply(probs)
    expected = expected_scores(tempered, scale)
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
