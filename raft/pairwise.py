"""Pairwise judging: the probability that response A beats response B, read from the verdict tokens.

One forward pass per order reads the next-token log-probabilities of 'A' and 'B' after the score
cue; P(A) is renormalised over {A, B} (RAIL's pairwise form) and the raw mass they carry is kept.
Both orders are combined so that the verdict does not depend on which response is shown first:
P = (P_AB(A) + 1 - P_BA(A)) / 2, computed so that swapping A and B gives exactly 1 - P.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PAIR_FIELDS = ("orig_response_A", "orig_response_B")
PREFERENCE = "orig_preference"
"""The target of a pair: 1 when A is better, 0 when B is, a share of graders preferring A between."""
LOW_PAIR_MASS = 0.5
"""Below this raw probability mass on A and B, the template or the verdict tokens are suspect (flagged)."""


@dataclass
class PairJudgment:
    """One pair's verdict. p_ab: P(token 'A') with A shown first; p_ba: P(token 'A') with the two
    swapped (so the original A's chance there is 1 - p_ba); p_a: the two combined (or p_ab alone
    when one order was scored); mass_*: the raw probability mass on 'A' and 'B' in each order."""

    p_a: float | None = None
    p_ab: float | None = None
    p_ba: float | None = None
    mass_ab: float | None = None
    mass_ba: float | None = None
    feedback_ab: str | None = None
    feedback_ba: str | None = None
    error: str | None = None
    flag: str | None = None

    @property
    def gap(self) -> float | None:
        """How much more the first position wins than the order-free verdict says (both orders only)."""
        return position_gap(self.p_ab, self.p_ba)

    @property
    def consistent(self) -> bool | None:
        """Whether the two orders pick the same response (both orders only)."""
        if self.p_ab is None or self.p_ba is None:
            return None
        return (self.p_ab > 0.5) == (1 - self.p_ba > 0.5)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "position_gap": self.gap}


def win_probability(logprobs: Sequence[float]) -> tuple[float, float]:
    """(P(A) renormalised over {A, B}, raw mass of A and B) from the two full-vocabulary log-probs."""
    log_a, log_b = float(logprobs[0]), float(logprobs[1])
    return float(1.0 / (1.0 + np.exp(log_b - log_a))), float(np.exp(log_a) + np.exp(log_b))


def combine(p_ab: float, p_ba: float) -> float:
    """(p_ab + 1 - p_ba) / 2, computed so that combine(p_ba, p_ab) == 1 - combine(p_ab, p_ba) exactly.

    The larger side 0.5 + |d| lies in [0.5, 1], where 1 - x is exact (Sterbenz), and d flips sign
    exactly when the orders are swapped."""
    d = (p_ab - p_ba) / 2
    high = 0.5 + abs(d)
    return high if d >= 0 else 1.0 - high


def position_gap(p_ab: float | None, p_ba: float | None) -> float | None:
    """P_AB(A) - (1 - P_BA(A)): positive when the judge favours whichever response is shown first."""
    if p_ab is None or p_ba is None:
        return None
    return p_ab + p_ba - 1.0


def position_bias(judgments: Sequence[PairJudgment]) -> dict[str, float | int | None]:
    """The judge's position bias over a file: the mean gap between the two orders, the share of
    pairs whose two orders agree, and how many pairs had both orders."""
    gaps = [j.gap for j in judgments if j.gap is not None]
    agree = [bool(j.consistent) for j in judgments if j.consistent is not None]
    return {
        "position_bias": float(np.mean(gaps)) if gaps else None,
        "position_consistency": float(np.mean(agree)) if agree else None,
        "pairs_both_orders": len(gaps),
    }


def swapped(item: dict[str, Any]) -> dict[str, Any]:
    """The pair with its responses exchanged (and the preference turned round: p -> 1 - p)."""
    out = {**item, "orig_response_A": item["orig_response_B"], "orig_response_B": item["orig_response_A"]}
    if item.get(PREFERENCE) is not None:
        out[PREFERENCE] = 1.0 - float(item[PREFERENCE])
    return out
