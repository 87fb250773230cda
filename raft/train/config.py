"""The training configuration: one dataclass, loadable from YAML, with `--key value` overrides.

Every field is type- and range-checked when a config is made (`__post_init__`), with a message
that names the field; YAML text is size-capped and its aliases refused (no expansion bombs).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from raft.errors import RaftError

MAX_YAML_BYTES = 64 * 1024
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)
DEVICE = re.compile(r"^(cpu|mps|cuda(:\d{1,2})?)$")


class ConfigError(RaftError, ValueError):
    """A config value of the wrong type or out of range, naming the field."""


class _NoAliases(yaml.SafeLoader):
    """Safe YAML without aliases: a few bytes of anchors cannot expand into megabytes."""

    def compose_node(self, parent, index):  # noqa: D102
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"YAML aliases (*name) are not allowed in a config (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)


def load_yaml(text: str, source: str = "config") -> Any:
    """YAML text parsed safely, at most MAX_YAML_BYTES, with aliases refused."""
    if len(text.encode("utf-8", "replace")) > MAX_YAML_BYTES:
        raise ConfigError(f"{source}: a config is at most {MAX_YAML_BYTES // 1024} KiB")
    try:
        return yaml.load(text, Loader=_NoAliases)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: {exc}".splitlines()[0]) from None


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
    """raft (score only), cot_raft (TRACT: feedback CE + lam * RAFT), ce (the baseline) or emd (ordinal:
    squared earth mover's distance to the raters' score distribution)."""
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
    """Apply the output head only where a label is predicted: the score positions for score-only
    RAFT, the target tokens for CE and CoT-RAFT (never the prompt's B x T x V logits)."""
    device: str | None = None
    """cpu to force the CPU; default: CUDA when present."""
    trust_remote_code: bool = False
    deepspeed: str | None = None
    """A DeepSpeed JSON config file, passed to the Trainer (ZeRO stages, offload); run under a launcher."""
    fsdp: str | None = None
    """PyTorch FSDP options for the Trainer, e.g. 'full_shard auto_wrap'; run under torchrun."""
    fsdp_config: dict | None = None
    """Further FSDP settings (the Trainer's fsdp_config), e.g. {transformer_layer_cls_to_wrap: [LlamaDecoderLayer]}."""

    def __post_init__(self) -> None:
        for name, rule in RULES.items():
            setattr(self, name, rule(name, getattr(self, name)))
        from raft.loss import LOSSES

        if self.loss not in LOSSES:
            raise ConfigError(f"config: field 'loss': choose one of {', '.join(LOSSES)}, got {self.loss!r}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return cls.from_text(Path(path).read_text(), str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "config") -> TrainConfig:
        """A config from YAML text; anything but a mapping of known keys is refused, naming `source`."""
        raw = load_yaml(text, source) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: a config is a mapping of keys to values")
        unknown = {str(k) for k in raw} - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"{source}: unknown config key(s): {', '.join(sorted(unknown))[:500]}")
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
            changes[name] = _coerce(self, name, load_yaml(value, key))
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


def _number(kind: type, lo: float, hi: float, optional: bool = False) -> Any:
    """A rule: an int (or float) within [lo, hi]; numeric strings such as '1e-4' are read as numbers."""

    def check(name: str, value: Any) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, str):
            try:
                value = float(value) if kind is float else int(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and kind is int and isinstance(value, float):
            ok = value.is_integer()
            value = int(value) if ok else value
        if not ok or not math.isfinite(value) or not lo <= value <= hi:
            what = "an integer" if kind is int else "a number"
            raise ConfigError(f"config: field '{name}': needs {what} from {lo:g} to {hi:g}, got {value!r}"[:300])
        return kind(value)

    return check


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"config: field '{name}': needs true or false, got {value!r}"[:300])
    return value


def _text(optional: bool = False, choices: tuple[str, ...] = (), pattern: re.Pattern | None = None) -> Any:
    def check(name: str, value: Any) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, str) or len(value) > 4096:
            raise ConfigError(f"config: field '{name}': needs a text of at most 4096 characters, got {value!r}"[:300])
        if choices and value not in choices:
            raise ConfigError(f"config: field '{name}': choose one of {', '.join(choices)}, got {value!r}"[:300])
        if pattern is not None and not pattern.match(value):
            raise ConfigError(f"config: field '{name}': {value!r} is not a device (cpu, cuda, cuda:N, mps)"[:300])
        return value

    return check


def _scale(name: str, value: Any) -> list[int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or not 0 <= value[0] < value[1] <= 100
    ):
        raise ConfigError(f"config: field '{name}': needs [lowest, highest], two integers with lowest < highest")
    return list(value)


def _targets(name: str, value: Any) -> list[str] | str:
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        return value
    raise ConfigError(f"config: field '{name}': needs 'all-linear' or a list of module names, got {value!r}"[:300])


FSDP_OPTIONS = ("full_shard", "shard_grad_op", "hybrid_shard", "hybrid_shard_zero2", "no_shard", "offload", "auto_wrap")


def _fsdp(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    words = value.split() if isinstance(value, str) else None
    if not words or any(w not in FSDP_OPTIONS for w in words):
        raise ConfigError(f"config: field '{name}': words of {', '.join(FSDP_OPTIONS)}, got {value!r}"[:300])
    return value


def _mapping(name: str, value: Any) -> dict | None:
    if value is None or (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
        return value
    raise ConfigError(f"config: field '{name}': needs a mapping, got {value!r}"[:300])


def _max_steps(name: str, value: Any) -> int:
    value = _number(int, -1, 10_000_000)(name, value)
    if value == 0:
        raise ConfigError(f"config: field '{name}': needs -1 (train by epochs) or a positive number of steps")
    return value


RULES = {
    "data": _text(),
    "output_dir": _text(),
    "base_model": _text(optional=True),
    "template": _text(optional=True),
    "scale": _scale,
    "loss": _text(),
    "lam": _number(float, 0, 1000),
    "lora": _flag,
    "lora_r": _number(int, 1, 1024),
    "lora_alpha": _number(int, 1, 4096),
    "lora_dropout": _number(float, 0, 0.99),
    "lora_targets": _targets,
    "learning_rate": _number(float, 1e-9, 1.0),
    "lr_scheduler": _text(choices=SCHEDULERS),
    "warmup_ratio": _number(float, 0, 1),
    "epochs": _number(float, 0.01, 1000),
    "max_steps": _max_steps,
    "batch_size": _number(int, 1, 4096),
    "grad_accum": _number(int, 1, 4096),
    "max_length": _number(int, 16, 1_000_000),
    "eval_steps": _number(int, 1, 1_000_000_000),
    "eval_rows": _number(int, 0, 10_000_000),
    "eval_max_new_tokens": _number(int, 1, 4096),
    "logging_steps": _number(int, 1, 10_000_000),
    "save_steps": _number(int, 1, 1_000_000_000),
    "save_total_limit": _number(int, 1, 1000),
    "seed": _number(int, 0, 2**32 - 1),
    "precision": _text(choices=("auto", "bf16", "fp16", "fp32")),
    "gradient_checkpointing": _flag,
    "head_at_score": _flag,
    "device": _text(optional=True, pattern=DEVICE),
    "trust_remote_code": _flag,
    "deepspeed": _text(optional=True),
    "fsdp": _fsdp,
    "fsdp_config": _mapping,
}
"""One rule per field of TrainConfig: it returns the value (numbers read from text) or raises."""
