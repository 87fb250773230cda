"""Calibrate a judge to a grader's labels: a level map fitted on a labelling project's training labels.

The project already holds the judge's score distribution of every row, so fitting needs no model
run: the map is fitted on the labelled training rows and applied to the held-out rows' own
distributions, which then compare with the judge before like a fine-tuned judge's re-scored rows
(`raft.align.compare_judges`). A fine-tuned judge can be calibrated the same way from its scores
of the training rows (`fit_on`), which is what "both" means in `bench/align.py`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raft.calibration import Calibration, fit_level_map
from raft.files import DataError
from raft.labels import LabelProject

MIN_FIT = 3
"""Fewest training labels a level map is fitted on (fewer say more about chance than about the grader)."""


def _probs(row: dict[str, Any], k: int) -> list[float] | None:
    p = row.get("probs")
    return [float(x) for x in p] if isinstance(p, list) and len(p) == k else None


def fit_project_calibration(
    project: LabelProject, fit_on: dict[int, dict[str, Any]] | None = None, coverage: float = 0.9
) -> Calibration:
    """The level map of the project's judge (or of the judge whose scores of the training rows are
    `fit_on`, by key) fitted on the labelled training rows; held-out rows are never used."""
    labels, lo, hi = project.labels(), *project.scale
    k = hi - lo + 1
    keys, probs, gold = [], [], []
    for key in project.keys:
        if key not in labels or key in project.heldout:
            continue
        p = _probs((fit_on or project.rows).get(key, {}), k)
        if p is not None:
            keys.append(key)
            probs.append(p)
            gold.append(labels[key])
    if len(keys) < MIN_FIT:
        raise DataError(
            f"calibration needs at least {MIN_FIT} labelled training rows with the judge's score distribution "
            f"(found {len(keys)}): label a few more training rows first"
        )
    return fit_level_map(np.asarray(probs), np.asarray(gold, dtype=float), keys, (lo, hi), coverage)


def calibrated_rows(
    project: LabelProject, calibration: Calibration, scored: dict[int, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The labelled held-out rows scored again by the calibrated judge, each with its `key` (the
    shape `compare_judges` takes): the map applied to the distribution already scored (the
    project's own, or `scored`'s by key for another judge)."""
    labels, lo, hi = project.labels(), *project.scale
    out = []
    for key in project.keys:
        if key not in labels or key not in project.heldout:
            continue
        row = (scored or project.rows).get(key, {})
        p = _probs(row, hi - lo + 1)
        if p is None:
            out.append({"key": key, "expected_score": None, "error": "no score distribution to calibrate"})
            continue
        tempered = calibration.apply(np.asarray([p]))
        expected = float(calibration.expected(tempered)[0])
        out.append(
            {
                "key": key,
                "expected_score": expected,
                "probs": tempered[0].tolist(),
                "interval": calibration.interval(expected),
            }
        )
    return out
