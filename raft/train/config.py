"""The training configuration: one dataclass, loadable from YAML, with `--key value` overrides."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass
class TrainConfig:
    """Everything a run needs; saved as config.yaml in its folder so that it can be reproduced."""

    data: str = ""
    """Dataset folder written by `python -m raft prepare` (train.jsonl, optional validation.jsonl)."""
    output_dir: str = "runs/run"
    base_model: str | None = None
    """Hub id or folder; None means the default model (SmolLM2-135M-Instruct)."""
    template: str | None = None
    """None: the dataset's template text (what `prepare` used). A name or file given here must hold
    the same text, else the run is refused: the template travels with the dataset, not the config."""
    scale: list[int] | None = None
    """None: the dataset's scale; a scale given here must equal it."""
    loss: str = "raft"
    """raft (score only), cot_raft (TRACT: feedback CE + lam * RAFT) or ce (the baseline)."""
    lam: float = 1.0
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: list[str] | str = "all-linear"
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    epochs: float = 1.0
    max_steps: int = -1
    """Overrides epochs when positive."""
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 2048
    """Examples longer than this (prompt + target tokens) are left out and counted in the log."""
    eval_steps: int = 50
    eval_rows: int = 128
    """Validation rows scored by RAIL at each evaluation (all when 0)."""
    eval_max_new_tokens: int = 128
    logging_steps: int = 1
    save_steps: int = 100
    save_total_limit: int = 2
    seed: int = 0
    precision: str = "auto"
    """auto (bf16 on a bf16-capable GPU, else fp32), bf16, fp16 or fp32."""
    gradient_checkpointing: bool = False
    head_at_score: bool = True
    """Score-only RAFT: apply the output head at the score positions only (no B x T x V logits)."""
    device: str | None = None
    """cpu to force the CPU; default: CUDA when present."""
    trust_remote_code: bool = False

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return cls.from_text(Path(path).read_text(), str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "config") -> TrainConfig:
        """A config from YAML text; anything but a mapping of known keys is refused, naming `source`."""
        raw = yaml.safe_load(text) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: a config is a mapping of keys to values")
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{source}: unknown config key(s): {', '.join(sorted(unknown))}")
        return cls(**raw)

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def override(self, pairs: list[str]) -> TrainConfig:
        """Apply ['--key', 'value', ...] overrides, each value parsed as YAML (so 1e-4, true, [q_proj])."""
        if len(pairs) % 2:
            raise ValueError(f"overrides come in --key value pairs, got {' '.join(pairs)}")
        names = {f.name for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for key, value in zip(pairs[::2], pairs[1::2]):
            name = key.lstrip("-").replace("-", "_")
            if not key.startswith("--") or name not in names:
                raise ValueError(f"unknown config key '{key}'; keys are {', '.join(sorted(names))}")
            changes[name] = _coerce(self, name, yaml.safe_load(value))
        return dataclasses.replace(self, **changes)


def _coerce(config: TrainConfig, name: str, value: Any) -> Any:
    """Keep strings strings (an id like '123' or 'no') where the field is a string."""
    hint = typing.get_type_hints(type(config))[name]
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if isinstance(value, list) and any(typing.get_origin(a) is list for a in args):
        return value
    if str in args and value is not None and not isinstance(value, str):
        return str(value)
    if float in args and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)  # YAML reads '1e-4' as a string
        except ValueError:
            raise ValueError(f"config key '{name}' needs a number, got {value!r}") from None
    return value
