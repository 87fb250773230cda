"""A training run folder: the files the trainer, the jobs and the judge agree on, and the run as a
judge (its final weights, else its newest checkpoint).

`judge.json` is written when training starts, so a run is servable from its first checkpoint: a
run that is still training, was stopped or failed serves the newest complete
`checkpoints/checkpoint-N` (a LoRA adapter, or full weights with the tokenizer) and says so; a
checkpoint still being written is passed over, and the final folder appears whole (renamed into
place once written).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINTS = "checkpoints"
RESULT_FILE = "result.json"
"""How a run ended (completed, stopped, failed), written by the trainer last."""
STOP_FILE = "STOP"
"""Asks a running trainer to stop at its next step (with a checkpoint)."""
PROGRESS_FILE = "progress.jsonl"
"""One line per logged step and evaluation, trimmed to the checkpoint a resumed run continues from."""
CONFIG_FILE = "config.yaml"
WRITTEN_LAST = "trainer_state.json"
"""The file transformers' Trainer writes last into a checkpoint (after the weights, optimizer and
RNG states): a checkpoint without it is still being written, or was cut off, and is not served."""
_CHECKPOINT = re.compile(r"^checkpoint-(\d{1,9})$")


TRAINING_STATE = {"optimizer.pt", "scheduler.pt", "scaler.pt", WRITTEN_LAST, "training_args.bin"}
"""What a Trainer checkpoint keeps to resume (with rng_state*.pth): a judge taken from it needs none of it."""


def is_training_state(name: str) -> bool:
    """Whether a checkpoint file is resume state rather than the judge."""
    return name in TRAINING_STATE or (name.startswith("rng_state") and name.endswith(".pth"))


def newest_checkpoint(run_dir: str | Path) -> tuple[int, Path] | None:
    """(step, folder) of a run's newest complete checkpoint (see WRITTEN_LAST), None when it has none yet."""
    folder = Path(run_dir) / CHECKPOINTS
    found = [
        (int(m.group(1)), p)
        for p in folder.glob("checkpoint-*")
        if (m := _CHECKPOINT.match(p.name)) and (p / WRITTEN_LAST).is_file()
    ]
    return max(found, default=None, key=lambda sp: sp[0])


def run_status(run_dir: str | Path) -> str:
    """completed, stopped or failed from the run's result file; 'still training' without one."""
    try:
        return str(json.loads((Path(run_dir) / RESULT_FILE).read_text()).get("status", "unknown"))
    except (OSError, ValueError):
        return "still training"


@dataclass
class RunWeights:
    """Where a run's judge weights are: the final folder, or a checkpoint (`step` set, `note` says so)."""

    folder: Path
    step: int | None = None
    note: str | None = None


def run_weights(run_dir: str | Path, manifest: dict[str, Any]) -> RunWeights | None:
    """The run's final weights when saved, else its newest checkpoint with a note; None when neither."""
    run_dir = Path(run_dir)
    if manifest.get("plain_base"):  # a calibrated plain model (raft.calibrated): the base is its weights
        return RunWeights(run_dir)
    final = run_dir / str(manifest.get("weights") or "model")
    if final.is_dir():
        return RunWeights(final)
    found = newest_checkpoint(run_dir)
    if found is None:
        return None
    step, folder = found
    note = (
        f"run '{run_dir.name}' has no final judge ({run_status(run_dir)}): serving its newest checkpoint, step {step}"
    )
    return RunWeights(folder, step, note)


def last_checkpoint_step(run_dir: Path) -> int:
    """The step of the newest checkpoint in a run folder, 0 when there is none."""
    found = newest_checkpoint(run_dir)
    return found[0] if found else 0


def trim_progress(run_dir: Path, step: int) -> None:
    """Drop the progress lines after `step` (all of them when 0): a resumed run writes them again."""
    path = run_dir / PROGRESS_FILE
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill
        if step > 0 and record.get("step", 0) <= step:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept))
