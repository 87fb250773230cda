"""A calibrated judge: a base judge plus a level map fitted to a grader's labels, as a run folder.

Calibrating to one's own labels takes seconds (no model runs: the level map is fitted on the score
distributions the judge already wrote), and the result must then be a judge like any other: served
in the pickers, used by Score and Batch, exported. So it is written as a run folder whose
`judge.json` holds the calibration beside the usual template text, scale and cue:

- the base is a fine-tuned run: its weights are copied (a LoRA adapter is a few MB; full weights are
  hard-linked where the file system allows) and its manifest is kept, with `calibration` added;
- the base is a plain model (the default model, a hub id): no weights are copied; the manifest says
  `plain_base: true` and names the base model (None for the default model), so that
  `raft.models.resolve_model` loads the base itself.

`Judge.from_manifest` reads `calibration` from any manifest, so an exported folder keeps it too.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from raft.calibration import Calibration
from raft.insample import TRAINED_ROWS
from raft.judge_manifest import trained_rubric
from raft.models import JUDGE_MANIFEST, read_manifest
from raft.output import copy_file, write_text
from raft.prompts import SCORE_CUE, JudgePrompt
from raft.runs import is_training_state, run_weights


def _copy_weights(src: Path, dest: Path) -> None:
    """Copy a weights folder, hard-linking files where possible (full weights are large); a
    checkpoint's resume state (optimizer, RNG, trainer state) stays behind."""

    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    def resume_state(folder: str, names: list[str]) -> list[str]:
        return [name for name in names if is_training_state(name)]

    shutil.copytree(src, dest, copy_function=link_or_copy, ignore=resume_state)


def _from_run(base: Path, found: dict[str, Any], partial: Path, calibration: Calibration, name: str) -> dict[str, Any]:
    """A run's weights copied into `partial`, with its training rows; its manifest as the calibrated
    judge's, naming the rubric it was trained with (what Score and Batch propose for it)."""
    if tuple(found.get("scale", calibration.scale)) != tuple(calibration.scale):
        raise ValueError(f"the calibration is for {tuple(calibration.scale)}, the judge's scale is {found['scale']}")
    weights = run_weights(base, found)
    if weights is None:
        raise ValueError(f"'{name or base.name}' has no weights yet: calibrate it after its first checkpoint")
    folder = "adapter" if found.get("adapter") else "model"
    _copy_weights(weights.folder, partial / folder)
    if (base / TRAINED_ROWS).is_file():  # its base's training rows are still in sample for it
        copy_file(base / TRAINED_ROWS, partial / TRAINED_ROWS)
    manifest = {**found, "weights": folder, "adapter": folder if found.get("adapter") else None}
    manifest.pop("note", None)
    manifest.pop("checkpoint_step", None)
    manifest["rubric"] = trained_rubric(base, found)
    return manifest


def write_calibrated_judge(
    out_dir: str | Path,
    base: str | Path | None,
    calibration: Calibration,
    prompt: JudgePrompt | None = None,
    scale: tuple[int, int] | None = None,
    name: str = "",
    fitted_on: dict[str, Any] | None = None,
) -> Path:
    """Write the calibrated judge of `base` (a run folder, a hub id, or None for the default model).

    A run folder's own template, scale and cue are kept; for a plain model `prompt` and `scale`
    are those its scores were made with. `name` names the base as the user knows it (never a
    server path); `fitted_on` says which labels fitted the map. The folder must not exist."""
    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"'{out.name}' exists already; choose a new name")
    found = read_manifest(base) if base and Path(base).is_dir() else None
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        if found:
            manifest = _from_run(Path(base), found, partial, calibration, name)
        else:
            spec = prompt or JudgePrompt.resolve(None, "score_only")
            manifest = {
                "base_model": str(base) if base else None,
                "adapter": None,
                "weights": None,
                "plain_base": True,
                "template": spec.with_reference.name,
                "prompt": spec.to_dict(),
                "scale": list(scale or calibration.scale),
                "score_cue": SCORE_CUE,
                "mode": "score_only",
                "loss": None,
            }
        manifest["calibration"] = asdict(calibration)
        manifest["calibrated"] = {"from": name or (Path(base).name if base else "default model"), **(fitted_on or {})}
        write_text(partial / JUDGE_MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out
