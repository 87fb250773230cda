"""One item's verdict and RAIL, the expected score read from the score tokens' probabilities.

Apart from the judge so that its scoring paths (`raft.judge_scoring`) can fill verdicts without
importing the judge itself; `raft.judge` re-exports all three names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from raft.calibration import Calibration

LOW_MASS = 0.5
"""Below this raw probability mass on the score tokens, the prompt or token mapping is suspect."""


@dataclass
class Judgment:
    """One item's verdict. probs are renormalised over the scale; score_mass is the raw mass."""

    expected_score: float | None = None
    mode_score: int | None = None
    probs: list[float] | None = None
    score_mass: float | None = None
    feedback: str | None = None
    error: str | None = None
    samples: list[float] | None = None
    flag: str | None = None
    """A warning that does not stop scoring, e.g. a response cut to fit the context."""
    interval: list[float] | None = None
    """[lo, hi] around the expected score at the calibration's coverage (with a calibration only)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rail(
    score_probs: np.ndarray, values: Sequence[int], calibration: Calibration | None = None
) -> tuple[float, int, list[float], float]:
    """(expected score, mode, renormalised probs, raw mass) from raw score-token probabilities;
    with a calibration, the renormalised distribution is tempered first and the expected score
    weighs each level by its level map's value (the mode stays the most likely level)."""
    mass = float(score_probs.sum())
    q = score_probs / mass
    worth = values
    if calibration is not None:
        q = calibration.apply(q)
        worth = calibration.values(values)
    return float(np.dot(q, worth)), int(values[int(np.argmax(q))]), q.tolist(), mass
