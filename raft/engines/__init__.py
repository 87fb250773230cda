"""Where a judge's model runs: one file per backend, each a class with the `Engine` methods and a
`load(model, adapter, device, trust_remote_code, engine_args) -> (engine, manifest)` classmethod.

A new backend is one file here and one line in `ENGINES`; the judge and everything above it stay
as they are. Backends are imported only when chosen (vLLM is an optional install).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

from raft.engines.base import Engine, Sample

ENGINES = {
    "hf": "raft.engines.transformers:TransformersEngine",
    "vllm": "raft.engines.vllm:VllmEngine",
}
"""Engine name -> "module:class"."""


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
    module, cls = ENGINES[name].split(":")
    return getattr(import_module(module), cls).load(model, adapter, device, trust_remote_code, engine_args)


__all__ = ["ENGINES", "Engine", "Sample", "load_engine"]
