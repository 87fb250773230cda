"""Training memory: what a step holds, an estimate of a run's peak, and the CPU heap kept small.

Measured on SmolLM2-135M (LoRA, batch 4, MT Bench's longest rows of ~2,030 tokens, CPU, fp32;
`python bench/train_memory.py --whole`): with gradient checkpointing on, the tensors a step holds
are the checkpoints (one hidden state per layer) and one layer's recomputed activations, about
2 GB, yet the process peaked at 7.1-7.8 GB. The rest was glibc's heap: its mmap threshold grows
to the size of each freed block (up to 32 MiB), after which a layer's 10-20 MB temporaries come
from the heap, whose freed pages stay resident. `keep_heap_small` fixes the threshold so that
large blocks go back to the system when freed.

The estimate (`estimate_peak`) is arithmetic on the model's config and the dataset's longest
batch, with per-token constants taken from what a Llama-style layer saves for its backward pass
(`saved_activation_bytes` measures that on a real step); `memory_warning` compares it with the
free memory of the machine (or of the GPU) and says what to change.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from raft.loss import LOSSES

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_THRESHOLD = 64 * 1024
"""Blocks this large or larger are mmapped and returned on free (glibc's own default before it adapts)."""
PROCESS_OVERHEAD = 400 * 2**20
"""Python, torch and the tokenizer in a training process before the weights (measured: ~380 MiB)."""


def keep_heap_small(threshold: int = HEAP_THRESHOLD) -> bool:
    """Fix glibc's mmap and trim thresholds so freed activations leave the process (Linux/glibc
    only; elsewhere, or with RAFT_GLIBC_HEAP=default, a no-op). Returns whether it was set."""
    if not sys.platform.startswith("linux") or os.environ.get("RAFT_GLIBC_HEAP") == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_TRIM_THRESHOLD, 4 * threshold))


def saved_activation_bytes(step: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct tensors that autograd keeps for the backward pass while `step()` runs
    its forward (weights excluded: tensors that are parameters are not counted). Under gradient
    checkpointing a layer's inner tensors are not kept, only its inputs, so this is what
    checkpointing saves."""
    seen: dict[tuple[int, torch.dtype], int] = {}
    params: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        if isinstance(t, torch.nn.Parameter) or t.untyped_storage().data_ptr() in params:
            return t
        seen.setdefault((t.untyped_storage().data_ptr(), t.dtype), t.untyped_storage().nbytes())
        return t

    def note_params(module: Any) -> None:
        for p in module.parameters():
            params.add(p.untyped_storage().data_ptr())

    step_owner = getattr(step, "__self__", None)
    if isinstance(step_owner, torch.nn.Module):
        note_params(step_owner)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()
    loss.backward()
    return sum(seen.values())


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know of a decoder-only model."""

    params: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """From a transformers config (or its config.json as a dict)."""
        values = config if isinstance(config, dict) else vars(config)

        def get(key: str, default: Any = None) -> Any:
            return values.get(key, getattr(config, key, default) if not isinstance(config, dict) else default)

        hidden, layers, vocab = int(get("hidden_size")), int(get("num_hidden_layers")), int(get("vocab_size"))
        inter = int(get("intermediate_size") or 4 * hidden)
        heads = int(get("num_attention_heads") or 1)
        kv = int(get("num_key_value_heads") or heads) * hidden // heads
        per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter
        tied = bool(get("tie_word_embeddings", False))
        return cls(layers * per_layer + vocab * hidden * (1 if tied else 2), layers, hidden, inter, vocab)

    @classmethod
    def from_folder(cls, folder: str | Path) -> ModelShape | None:
        """From a model folder's config.json; None when there is none or it is not a decoder's."""
        path = Path(folder) / "config.json"
        try:
            return cls.from_config(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def lora_params(self, rank: int) -> int:
        """Adapter parameters with LoRA on every linear layer of the decoder (q, k, v, o, gate, up, down)."""
        h, i = self.hidden, self.intermediate
        return self.layers * rank * (4 * (h + h) + 3 * (h + i))


@dataclass(frozen=True)
class Estimate:
    """A step's peak, in bytes, and its parts."""

    parts: dict[str, int]
    batch: int
    tokens: int

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def estimate_peak(
    shape: ModelShape,
    lengths: Sequence[int],
    batch_size: int,
    max_length: int,
    checkpointing: bool,
    lora: bool = True,
    lora_r: int = 16,
    loss: str = "raft",
    head_at_score: bool = True,
    dtype_bytes: int = 4,
    labelled: Sequence[int] | None = None,
) -> Estimate:
    """The peak of a training step on the dataset's longest batch (the `batch_size` longest rows
    that fit `max_length`, padded to the longest): weights, gradients and Adam state, activations
    (all layers, or the checkpoints plus one layer recomputed with its gradients), the logits.
    `labelled` (each row's count of labelled tokens, beside `lengths`) bounds the logits that
    `head_at_score` keeps for CE and CoT-RAFT: the positions predicting a label in some row."""
    rows = sorted(
        ((n, labelled[i] if labelled else n) for i, n in enumerate(lengths) if n <= max_length), reverse=True
    )[: max(batch_size, 1)]
    kept = [n for n, _ in rows]
    b, t = len(kept), (kept[0] if kept else 0)
    trainable = shape.lora_params(lora_r) if lora else shape.params
    per_token_layer = (5 * shape.intermediate + 8 * shape.hidden) * dtype_bytes  # what one layer saves
    mask = b * t * t * 4  # the float attention mask each layer keeps beside its activations
    layer = b * t * per_token_layer + mask
    if checkpointing:
        activations = shape.layers * b * t * shape.hidden * dtype_bytes + 2 * layer
    else:
        activations = shape.layers * layer + layer  # all layers, plus the gradients of the last one
    if not head_at_score:
        positions = b * t
    elif LOSSES[loss].score_only:  # one position per row: the score token's
        positions = b
    else:  # the union of the rows' labelled positions, at most the sum of their counts
        positions = b * min(t, sum(k for _, k in rows))
    parts = {
        "weights": shape.params * dtype_bytes,
        "gradients and optimizer state": trainable * (dtype_bytes + 8),
        "activations": activations,
        "logits and loss": 3 * positions * shape.vocab * 4,  # logits, softmax, their gradient (fp32)
        "process": PROCESS_OVERHEAD,
    }
    return Estimate(parts, b, t)


def free_memory(device: str | torch.device = "cpu") -> int | None:
    """Free bytes where the run will hold its tensors: the GPU's free memory for cuda, else the
    machine's available memory (MemAvailable); None when unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


def memory_warning(
    estimate: Estimate, free: int | None, checkpointing: bool, where: str = "this machine"
) -> str | None:
    """A warning when the estimated peak exceeds `free` bytes, naming what to change; else None."""
    if free is None or estimate.total <= free:
        return None
    fixes = []
    if not checkpointing:
        fixes.append("turn on gradient checkpointing (gradient_checkpointing: true)")
    if estimate.tokens > 512:
        fixes.append(f"lower max_length (the longest batch is {estimate.batch} x {estimate.tokens} tokens)")
    if estimate.batch > 1:
        fixes.append("use a smaller batch_size with more grad_accum (the same effective batch)")
    return (
        f"Estimated peak memory {_gb(estimate.total)} exceeds the {_gb(free)} free on {where}: the run may be "
        f"killed at its longest batch. To fit, {'; or '.join(fixes) or 'use a smaller model'}."
    )


def describe(estimate: Estimate) -> str:
    """One line: the total and its largest parts."""
    parts = ", ".join(f"{k} {_gb(v)}" for k, v in sorted(estimate.parts.items(), key=lambda kv: -kv[1]) if v)
    return (
        f"estimated peak memory {_gb(estimate.total)} on the longest batch "
        f"({estimate.batch} x {estimate.tokens} tokens): {parts}"
    )
