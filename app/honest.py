"""Honest evaluation in the studio: which scored rows were the judge's own training rows.

A run records the hashes of its training rows (`raft.insample`); Batch says how many of the rows it
scored were among them and gives the figures on the others, and Evaluate's report card reports
the others apart (`raft.report.build_report(trained=...)`).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from app.studio import RUN_PREFIX, Studio
from raft.insample import trained_hashes, training_mask
from raft.metrics import agreement


def judge_training_rows(studio: Studio, choice: str | None) -> tuple[set[str] | None, str]:
    """(training-row hashes, the judge's name as shown) of a model choice; None for a plain model,
    a run that recorded none, or a choice that no longer resolves."""
    choice = (choice or "").strip()
    if not choice.startswith(RUN_PREFIX):
        return None, choice or "the judge"
    try:
        model = studio.resolve_model(choice)
    except ValueError:
        return None, choice
    return trained_hashes(Path(model)) if model else None, choice[len(RUN_PREFIX) :]


def batch_note(rows: list[dict[str, Any]], hashes: set[str] | None, name: str, gold_field: str) -> str:
    """A line for the Batch summary: how many scored rows the judge trained on and, when some did,
    the agreement on the others alone ("" when the judge recorded no training rows)."""
    if hashes is None:
        return ""
    name = html.escape(name, quote=False)
    mask = training_mask(rows, hashes)
    k = sum(mask)
    if not k:
        return f"\n\nNone of these {len(rows)} rows were {name}'s training rows."
    rest = [r for r, m in zip(rows, mask) if not m]
    line = (
        f"\n\n**{k} of these {len(rows)} rows were {name}'s training rows**: it has seen their labels, so the "
        "figures above flatter it."
    )
    gold = [r.get(gold_field) for r in rest]
    if all(g in (None, "") for g in gold):
        return line
    m = agreement(gold, [r.get("expected_score") for r in rest])
    if m["n"] < 2:
        return line + f" Only {m['n']} other rows with gold: too few for figures of their own."
    fmt = {k: "n/a" if m[k] is None else f"{m[k]:.3g}" for k in ("pearson", "mae", "exact")}
    return line + (
        f" On the other {m['n']} rows with gold (never trained on): Pearson **{fmt['pearson']}**, "
        f"MAE {fmt['mae']}, exact agreement {fmt['exact']}."
    )
