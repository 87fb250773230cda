"""Fractional gold: a row's gold may be the mean of several raters (4.333...).

RAFT regresses on the float gold as it is. CE needs one score token per example: it gets one
example per rater score where the row carries them, else the gold rounded to the nearest score.
"""

from __future__ import annotations

import math
from typing import Any

from raft.prompts import target_text

GOLD_CANDIDATES = ("orig_score", "gpt4_score", "score", "gold")
"""Columns tried, in order, when no gold column is named; a list (several raters) counts as its mean."""


def nearest_score(gold: float) -> int:
    """The score token for a gold: the nearest whole score, halves rounded up (3.5 -> 4)."""
    return int(math.floor(float(gold) + 0.5))


def is_fractional(gold: Any) -> bool:
    return not float(gold).is_integer()


def ce_examples(examples: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Token targets for CE: each example with rater scores becomes one example per rater score;
    another fractional gold is rounded. Returns the examples and the counts (expanded, rounded)."""
    out: list[dict[str, Any]] = []
    counts = {"expanded": 0, "rounded": 0}
    for ex in examples:
        gold = ex.get("gold", ex["score"])
        raters = ex.get("item", {}).get("rater_scores")
        if raters and is_fractional(gold):
            counts["expanded"] += 1
            feedback = ex.get("item", {}).get("orig_feedback")
            for k in raters:
                out.append({**ex, "score": int(k), "gold": int(k), "target": target_text(ex["mode"], int(k), feedback)})
            continue
        if is_fractional(gold):
            counts["rounded"] += 1
        out.append(ex)
    return out, counts


def describe_ce_targets(counts: dict[str, int], total: int) -> str:
    """One log line on what CE made of fractional golds."""
    return (
        f"CE targets: {counts['expanded']} of {total} examples with a fractional gold trained once per rater "
        f"score, {counts['rounded']} rounded to the nearest score"
    )
