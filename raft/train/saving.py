"""What a run leaves for `Judge.load(run_dir)`: the final adapter (or full model), written whole then
renamed, and judge.json, written when training starts and again beside the final weights."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from raft.models import JUDGE_MANIFEST
from raft.prompts import JudgePrompt
from raft.scores import ScoreTokens
from raft.train.config import TrainConfig


def save_judge(
    model: Any,
    tokenizer: Any,
    run_dir: Path,
    config: TrainConfig,
    score_tokens: ScoreTokens,
    dataset: dict[str, Any],
    continued_base: str | None = None,
) -> None:
    """The final adapter (or full model) and the judge manifest that `Judge.load(run_dir)` reads:
    the template text, scale, score cue and mode it was trained with travel in the run folder.
    A run continued from another run's adapter names that run's base model as its own."""
    folder = "adapter" if config.lora else "model"
    saving = run_dir / f".{folder}.saving"  # written whole, then renamed: a reader never loads half a judge
    shutil.rmtree(saving, ignore_errors=True)
    model.save_pretrained(saving)
    tokenizer.save_pretrained(saving)
    shutil.rmtree(run_dir / folder, ignore_errors=True)
    os.rename(saving, run_dir / folder)
    write_manifest(run_dir, config, score_tokens, dataset, continued_base)


def write_manifest(
    run_dir: Path,
    config: TrainConfig,
    score_tokens: ScoreTokens,
    dataset: dict[str, Any],
    continued_base: str | None = None,
) -> None:
    """judge.json, written when training starts (a stopped run serves its newest checkpoint) and
    again with the final weights; a continued run names its base model as its own."""
    folder = "adapter" if config.lora else "model"
    prompt: JudgePrompt = dataset["prompt"]
    manifest = {
        "base_model": continued_base or config.base_model,
        "continued_from": config.base_model if continued_base else None,
        "adapter": folder if config.lora else None,
        "weights": folder,
        "template": prompt.with_reference.name,
        "prompt": prompt.to_dict(),
        "scale": list(dataset["scale"]),
        "score_cue": score_tokens.cue,
        "score_token_ids": list(score_tokens.ids),
        "mode": dataset["mode"],
        "task": dataset.get("task", "absolute"),
        "loss": config.loss,
        "columns": dataset.get("columns", {}),
    }
    tmp = run_dir / (JUDGE_MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(run_dir / JUDGE_MANIFEST)
