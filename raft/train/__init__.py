"""Regression-aware fine-tuning: `TrainConfig` beside the `train` loop that runs it.

`train` (and with it torch and transformers) is imported on first use, so that reading a config
or listing its keys (`python -m raft train --help`) starts in a fraction of a second."""

from typing import Any

from raft.train.config import TrainConfig

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from raft.train.trainer import train

        return train
    raise AttributeError(f"module 'raft.train' has no attribute {name!r}")
