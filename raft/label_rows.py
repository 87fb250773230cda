"""Which rows of a scored file a labelling project takes: rows with a score distribution, all on one
scale, each a whole judge item once mapped (the whole-file rubric filled in where a row has none),
and which of them are held out, a seeded share fixed at creation."""

from __future__ import annotations

from typing import Any

import numpy as np

from raft.data import apply_mapping, normalize_item
from raft.files import DataError
from raft.rubrics import Rubric, with_rubric
from raft.scores import check_scale

JUDGMENT_FIELDS = ("expected_score", "mode_score", "probs", "score_mass", "feedback", "error", "samples", "flag")
JUDGMENT_FIELDS += ("interval", "row", "key")


def heldout_keys(keys: list[int], share: float, seed: int) -> list[int]:
    """The held-out rows: a seeded random share of the keys (at least one row each side when possible)."""
    if not 0.0 <= share < 1.0:
        raise DataError(f"held-out share {share} must be in [0, 1)")
    n = int(round(len(keys) * share))
    if share > 0 and len(keys) > 1:
        n = min(max(n, 1), len(keys) - 1)
    order = np.random.default_rng(seed).permutation(len(keys))
    return sorted(keys[i] for i in order[:n])


def judge_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A scored row without the judgment: the row as it was before scoring."""
    return {k: v for k, v in row.items() if k not in JUDGMENT_FIELDS}


def item_of(
    row: dict[str, Any], columns: dict[str, str], scale: tuple[int, int], rubric: Rubric | None
) -> dict[str, Any]:
    """A scored row's judge fields (instruction, response, reference, rubric), mapped, with the
    whole-file rubric where the row has none, validated (DataError names the field)."""
    raw = with_rubric(apply_mapping(judge_fields(row), columns), rubric, scale[0])
    return normalize_item(raw, scale)


def scored_rows(scored: list[dict[str, Any]], source: str) -> tuple[dict[int, dict[str, Any]], int]:
    """The rows that carry a score distribution, by key (each row given its `key`), and how many
    were left out (an error, or no `probs`); fewer than 2 such rows, or a key twice, is refused."""
    usable, left_out = {}, 0
    for i, row in enumerate(scored):
        probs = row.get("probs")
        if row.get("error") or not isinstance(probs, list) or row.get("expected_score") is None:
            left_out += 1
            continue
        key = int(row.get("row", i + 1))
        if key in usable:
            raise DataError(f"row {key} appears twice in the scored file", source or None)
        usable[key] = {**row, "key": key}
    if len(usable) < 2:
        raise DataError(f"only {len(usable)} scored rows carry a score distribution; score the file first")
    return usable, left_out


def rows_scale(usable: dict[int, dict[str, Any]], scale: tuple[int, int] | None) -> tuple[int, int]:
    """The scale of the rows' score distributions (`scale` when given, which must match them)."""
    widths = {len(r["probs"]) for r in usable.values()}
    if len(widths) != 1:
        raise DataError("the scored rows hold score distributions of different lengths (two judges mixed?)")
    scale = check_scale(tuple(scale) if scale else (1, widths.pop()))
    if scale[1] - scale[0] + 1 != len(next(iter(usable.values()))["probs"]):
        raise DataError(f"the scale {scale[0]}..{scale[1]} does not match the rows' score distributions")
    return scale


def keep_whole_items(
    usable: dict[int, dict[str, Any]],
    columns: dict[str, str],
    scale: tuple[int, int],
    rubric: Rubric | None,
    source: str,
) -> int:
    """Drop from `usable` the rows that are not whole judge items and return how many went; when
    fewer than 2 are left, refuse with the first row's reason (a missing rubric field names the fix)."""
    reasons = []
    for key in sorted(usable):
        try:
            item_of(usable[key], columns, scale, rubric)
        except DataError as exc:
            reasons.append((key, exc))
            del usable[key]
    if len(usable) < 2:
        key, exc = reasons[0]
        fix = ""
        if exc.field and ("criteria" in exc.field or "description" in exc.field):
            fix = (
                ": the rows carry no rubric of their own; give the whole file one (a rubric preset in the "
                "studio, `label create --rubric PRESET_OR_FILE` on the command line)"
            )
        raise DataError(
            f"only {len(usable)} of {len(usable) + len(reasons)} scored rows are whole judge items; row {key}: "
            f"field '{exc.field}': {exc.reason}{fix}",
            source or None,
        )
    return len(reasons)
