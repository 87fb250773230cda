"""What a training run is doing right now: one small `phase.json` in the run folder, replaced
atomically at every change, so that a job list or a page reload can name the phase with its
progress (preparing the default model, loading, validating k/n, training step k/n, saving).

progress.jsonl keeps the history of steps and metrics; phase.json only the present moment.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

PHASE_FILE = "phase.json"

PHASES = ("preparing", "loading", "validating", "training", "saving", "stopping", "ended")


def write_phase(
    run_dir: str | Path, phase: str, done: int | None = None, total: int | None = None, **extra: Any
) -> None:
    """Record the current phase (with k of n when it has them); never fails the run it describes."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase '{phase}'")
    record = {"phase": phase, "done": done, "total": total, "time": round(time.time(), 2), **extra}
    path = Path(run_dir) / PHASE_FILE
    tmp = path.with_name(f".{PHASE_FILE}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record))
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)


def read_phase(run_dir: str | Path) -> dict[str, Any] | None:
    """The last phase a run recorded, or None (not started yet, or a run from before phases)."""
    try:
        record = json.loads((Path(run_dir) / PHASE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("phase") in PHASES else None


def _of(record: dict[str, Any]) -> str:
    done, total = record.get("done"), record.get("total")
    if done is None:
        return ""
    return f" {done}/{total}" if total else f" {done}"


def describe_phase(record: dict[str, Any] | None) -> str:
    """The phase in words, e.g. "validating 3/10 (before training)" or "training step 4/100"."""
    if not record:
        return "starting the trainer"
    phase, detail = record["phase"], record.get("detail")
    if phase == "validating":
        step = record.get("step") or 0
        when = "before training" if step == 0 else f"at step {step}"
        return f"validating{_of(record)} batches ({when})"
    if phase == "training":
        return f"training step{_of(record)}"
    text = {"preparing": "preparing the model", "loading": "loading", "saving": "saving", "stopping": "stopping"}.get(
        phase, phase
    )
    if detail:
        text = detail
    return text + (f" ({_of(record).strip()})" if record.get("done") is not None and phase != "stopping" else "")


def waiting_for(record: dict[str, Any] | None) -> str:
    """What a stop requested now waits for, given the phase the run is in."""
    if not record:
        return "waiting for the trainer to start, then it stops before training"
    phase = record["phase"]
    if phase == "validating":
        return f"waiting for validation batch {(record.get('done') or 0) + 1} to finish"
    if phase == "training":
        return f"waiting for step {record.get('done')} to finish, then saving a checkpoint"
    if phase == "saving":
        return "waiting for the save to finish"
    if phase == "stopping":
        return record.get("detail") or "stopping"
    if phase in ("preparing", "loading"):
        return f"waiting for {describe_phase(record)} to finish, then it stops before training"
    return "waiting for the process to end"
