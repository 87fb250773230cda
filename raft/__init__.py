"""RAFT Judge Studio library: judge data, regression-aware fine-tuning and RAIL scoring."""

__version__ = "0.1.0"
