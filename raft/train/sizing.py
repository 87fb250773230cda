"""Training sized to the data: the steps a form proposes for a dataset, a few epochs over its rows.

A fixed default (100 steps) is 19 epochs of 21 labels at batch 4 — enough to learn one score for
everything — and a sliver of a 100,000-row dataset. The proposal is `PROPOSED_EPOCHS` passes over
the training rows at the form's batch size and accumulation, capped at `MAX_PROPOSED` steps for
large datasets (the note then says what share of an epoch that is).
"""

from __future__ import annotations

import math
from pathlib import Path

PROPOSED_EPOCHS = 3
MAX_PROPOSED = 2000


def training_rows(dataset_dir: str | Path) -> int:
    """The examples in a dataset folder's train.jsonl (0 when it has none)."""
    path = Path(dataset_dir) / "train.jsonl"
    if not path.is_file():
        return 0
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def propose_steps(rows: int, batch_size: int, grad_accum: int = 1, epochs: int = PROPOSED_EPOCHS) -> int:
    """Optimizer steps for `epochs` passes over `rows` examples, at least 1, at most MAX_PROPOSED."""
    per_step = max(1, int(batch_size)) * max(1, int(grad_accum))
    return max(1, min(MAX_PROPOSED, math.ceil(max(rows, 1) / per_step) * epochs))


def describe_proposal(rows: int, batch_size: int, grad_accum: int = 1) -> str:
    """What the proposal is, in words, e.g. "21 training rows: 18 steps proposed (3 epochs at 4 rows a step)"."""
    steps = propose_steps(rows, batch_size, grad_accum)
    per_step = max(1, int(batch_size)) * max(1, int(grad_accum))
    epochs = steps * per_step / max(rows, 1)
    span = f"{PROPOSED_EPOCHS} epochs" if steps < MAX_PROPOSED else f"{epochs:.2g} epochs; raise it to see every row"
    return f"{rows} training rows: {steps} steps proposed ({span} at {per_step} rows a step)"
