"""Before a run starts: its estimated peak memory on the dataset's longest batch, and a warning
when that exceeds the free memory where it will run (what the Fine-tune tab shows beside its form).

Only local model folders are read (a hub id that is not on this machine gives no estimate rather
than a download); the dataset's token lengths are cached per dataset file, model and mode.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from raft.data import read_dataset_manifest, read_jsonl
from raft.loss import loss_kind
from raft.models import default_model_dir, default_ready, resolve_device
from raft.train.config import TrainConfig
from raft.train.memory import ModelShape, describe, estimate_peak, free_memory, memory_warning


def _local_base(base_model: str | None) -> Path | None:
    """The model folder a run would load, when it is on this machine already."""
    if not base_model:
        return default_model_dir() if default_ready() else None
    folder = Path(base_model)
    return folder if (folder / "config.json").is_file() else None


@functools.lru_cache(maxsize=8)
def _lengths(train_file: str, mtime: float, model: str, score_only: bool) -> tuple[tuple[int, int], ...]:
    """(tokens, labelled tokens) of each training example, as the trainer tokenises it."""
    from transformers import AutoTokenizer

    from raft.loss import IGNORE
    from raft.scores import find_score_tokens
    from raft.train.trainer import tokenize

    manifest = read_dataset_manifest(Path(train_file).parent)
    tokenizer = AutoTokenizer.from_pretrained(model)
    score_tokens = find_score_tokens(tokenizer, tuple(manifest["scale"]), manifest["score_cue"])
    examples = (tokenize(r, tokenizer, score_tokens, score_only) for r in read_jsonl(train_file))
    return tuple((len(e["input_ids"]), sum(label != IGNORE for label in e["labels"])) for e in examples)


def memory_plan(config: TrainConfig) -> dict[str, Any] | None:
    """{'estimate', 'text', 'warning'} for a run of `config`, or None when the dataset or the
    model is not on this machine (no estimate is better than a guess)."""
    base = _local_base(config.base_model)
    train_file = Path(config.data) / "train.jsonl"
    shape = ModelShape.from_folder(base) if base else None
    if shape is None or not train_file.is_file():
        return None
    device = resolve_device(config.device)
    pairs = _lengths(str(train_file), train_file.stat().st_mtime, str(base), loss_kind(config.loss).score_only)
    estimate = estimate_peak(
        shape,
        [n for n, _ in pairs],
        config.batch_size,
        config.max_length,
        config.gradient_checkpointing,
        config.lora,
        config.lora_r,
        config.loss,
        config.head_at_score,
        2 if device.type == "cuda" and config.precision in ("auto", "bf16") else 4,
        [k for _, k in pairs],
    )
    where = "the GPU" if device.type == "cuda" else "this machine"
    warning = memory_warning(estimate, free_memory(device), config.gradient_checkpointing, where)
    return {"estimate": estimate, "text": describe(estimate), "warning": warning}
