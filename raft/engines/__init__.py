"""Where a judge's model runs: one file per backend, each a class with the `Engine` methods and a
`load(model, adapter, device, trust_remote_code, engine_args) -> (engine, manifest)` classmethod.

A new backend is one file here and one line in `ENGINES`; the judge and everything above it stay
as they are. Backends are imported only when chosen (vLLM is an optional install).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from raft.engines.base import Engine, Sample


@dataclass(frozen=True)
class EngineKind:
    """One row of the engine table, read by the judge, the CLI and the studio."""

    name: str
    target: str
    """"module:class" of the backend, imported only when chosen."""
    label: str
    """What people call it (the studio's choice, the CLI's help)."""
    package: str
    """The package it needs installed; an engine whose package is absent is not offered."""


ENGINES: dict[str, EngineKind] = {
    row.name: row
    for row in (
        EngineKind("hf", "raft.engines.transformers:TransformersEngine", "transformers", "transformers"),
        EngineKind("vllm", "raft.engines.vllm:VllmEngine", "vLLM", "vllm"),
    )
}


def available_engines() -> list[str]:
    """The engines whose package is installed here, in table order."""
    return [row.name for row in ENGINES.values() if importlib.util.find_spec(row.package) is not None]


def engines_help() -> str:
    """One line naming each engine by what people call it (the CLI's `--engine` help)."""
    return "; ".join(f"{row.name}: {row.label}" for row in ENGINES.values()) + " (default hf)"


def load_engine(
    name: str,
    model: str | Path | None = None,
    adapter: str | Path | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    engine_args: dict[str, Any] | None = None,
) -> tuple[Engine, dict[str, Any]]:
    """(engine, judge manifest) of a hub id, folder or run folder on the named backend."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine '{name}'; choose one of {', '.join(ENGINES)}")
    module, cls = ENGINES[name].target.split(":")
    return getattr(import_module(module), cls).load(model, adapter, device, trust_remote_code, engine_args)


__all__ = ["ENGINES", "Engine", "EngineKind", "Sample", "available_engines", "engines_help", "load_engine"]
