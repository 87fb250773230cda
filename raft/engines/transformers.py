"""The transformers engine: a causal LM (with a peft adapter, for a LoRA run) on one device.

Scoring sorts sequences by length and batches them left padded, position ids following the
attention mask, so padding and batch size do not change a result; the output head runs at the
last position only. Feedback is scored in the generation's own pass (`raft.generation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raft.engines.base import Cut, OnTokens, Progress, Sample
from raft.generation import RowStreamer, generate_scored, left_pad, run_generate
from raft.models import load_model


class TransformersEngine:
    """A loaded transformers model and its tokenizer."""

    def __init__(self, model: Any, tokenizer: Any):
        self.model, self.tokenizer = model, tokenizer
        self.padding: dict[str, int] = {}

    @classmethod
    def load(
        cls,
        model: str | Path | None,
        adapter: str | Path | None = None,
        device: str | None = None,
        trust_remote_code: bool = False,
        engine_args: dict[str, Any] | None = None,
    ) -> tuple[TransformersEngine, dict[str, Any]]:
        """(engine, manifest) for a hub id, folder or run folder (None: the default model)."""
        if engine_args:
            raise ValueError("engine arguments are for the vllm engine; the transformers engine takes none")
        lm, tokenizer, manifest = load_model(model, adapter, device, trust_remote_code=trust_remote_code)
        return cls(lm, tokenizer), manifest

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def context_limit(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return left_pad(seqs, self.tokenizer.pad_token_id, self.device)

    def _streamer(self, on_tokens: OnTokens | None, offset: int = 0) -> RowStreamer | None:
        return RowStreamer(on_tokens, set(self.tokenizer.all_special_ids), offset) if on_tokens else None

    @torch.inference_mode()
    def next_token_logprobs(
        self, seqs: list[list[int]], token_ids: Sequence[int], batch_size: int = 8, progress: Progress | None = None
    ) -> np.ndarray:
        """Full-vocabulary log-probabilities of `token_ids` after each sequence, in bucketed batches."""
        out = np.zeros((len(seqs), len(token_ids)), dtype=np.float64)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        ids_t = torch.tensor(list(token_ids), device=self.device)
        self.padding = {"real_tokens": sum(len(s) for s in seqs), "padded_tokens": 0}
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = self._left_pad([seqs[i] for i in chunk])
            self.padding["padded_tokens"] += int(mask.numel() - mask.sum())
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits
            out[chunk] = torch.log_softmax(logits[:, -1, :].float(), dim=-1)[:, ids_t].double().cpu().numpy()
            if progress:
                progress(min(start + batch_size, len(order)), len(order))
        return out

    @torch.inference_mode()
    def generate(
        self,
        seqs: list[list[int]],
        max_new_tokens: int = 256,
        n_samples: int = 1,
        temperature: float = 1.0,
        batch_size: int = 8,
        seed: int = 0,
        on_tokens: OnTokens | None = None,
    ) -> list[list[str]]:
        """Continuations, n_samples per sequence (greedy when 1, else seeded sampling), in batches."""
        texts: list[list[str]] = [[] for _ in seqs]
        for start in range(0, len(seqs), batch_size):
            chunk = list(range(start, min(start + batch_size, len(seqs))))
            ids, mask = self._left_pad([seqs[i] for i in chunk])
            streamer = self._streamer(on_tokens, start * n_samples)
            out = run_generate(
                self.model,
                ids,
                mask,
                self.tokenizer.pad_token_id,
                max_new_tokens,
                n_samples,
                temperature,
                seed + start,
                streamer,
            )
            decoded = self.tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
            for j, text in enumerate(decoded):
                texts[chunk[j // n_samples]].append(text)
        return texts

    def generate_scored(
        self,
        seqs: list[list[int]],
        token_ids: Sequence[int],
        cut: Cut,
        max_new_tokens: int = 256,
        n_samples: int = 1,
        temperature: float = 1.0,
        seed: int = 0,
        on_tokens: OnTokens | None = None,
    ) -> list[list[Sample]]:
        """One generation pass; where the cue was not written it is scored on the generation's KV cache."""
        return generate_scored(
            self.model,
            self.tokenizer,
            token_ids,
            cut,
            seqs,
            max_new_tokens,
            n_samples,
            temperature,
            seed,
            self._streamer(on_tokens),
        )
