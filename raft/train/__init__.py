"""Regression-aware fine-tuning: `TrainConfig` beside the `train` loop that runs it."""

from raft.train.config import TrainConfig
from raft.train.trainer import train

__all__ = ["TrainConfig", "train"]
