"""Feedback generation with single-pass CoT-RAIL: the score distribution is read from the logits
that the generation itself produced right after the score cue. Where the model did not write the
cue, the cue is appended and scored with the generation's own KV cache, not a fresh pass.

Either way the distribution is the next-token distribution after prompt + `prefix` + `suffix`
(`Sample`), the very sequence that tests/test_scoring.py scores again in a fresh pass to compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList
from transformers.generation.streamers import BaseStreamer

from raft.engines.base import Cut, OnTokens, Sample


def _row_cache(cache: DynamicCache, row: int, length: int, config: Any) -> DynamicCache:
    out = DynamicCache(config=config)
    for idx, layer in enumerate(cache.layers):
        out.update(layer.keys[row : row + 1, :, :length], layer.values[row : row + 1, :, :length], idx)
    return out


def left_pad(seqs: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and their attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in seqs], device=device)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=device)
    return ids, mask


class SeededSampling(LogitsProcessor):
    """Draws the next token at `temperature` from its own `torch.Generator` and leaves only that token
    possible, so that a greedy `generate` emits it: seeded sampling that never reads or reseeds the
    process-wide random state (another request, or training, keeps its own stream)."""

    def __init__(self, temperature: float, generator: torch.Generator):
        self.temperature, self.generator = temperature, generator

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        choice = torch.multinomial(probs, 1, generator=self.generator)
        return torch.full_like(scores, float("-inf")).scatter_(1, choice, 0.0)


class RowStreamer(BaseStreamer):
    """Passes each generated token to on_tokens(row + offset, [id]) until the row emits a stop token
    (transformers' own streamers take one row only)."""

    def __init__(self, on_tokens: OnTokens, stop_ids: set[int], offset: int = 0):
        self.on_tokens, self.stop_ids, self.offset = on_tokens, stop_ids, offset
        self.prompt_seen, self.done = False, set()

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate passes the prompt first
            self.prompt_seen = True
            return
        for row, token in enumerate(value.reshape(-1).tolist()):
            if row in self.done:
                continue
            if token in self.stop_ids:
                self.done.add(row)
            else:
                self.on_tokens(row + self.offset, [token])

    def end(self) -> None:
        pass


def run_generate(
    model: Any,
    ids: torch.Tensor,
    mask: torch.Tensor,
    pad_id: int,
    max_new_tokens: int,
    n_samples: int = 1,
    temperature: float = 1.0,
    seed: int = 0,
    streamer: BaseStreamer | None = None,
    **extra: Any,
) -> Any:
    """model.generate: greedy for one sample; for several, each row repeated n_samples times (in
    the order `num_return_sequences` gives) and sampled at `temperature` with a generator seeded by `seed`."""
    processors = LogitsProcessorList()
    if n_samples > 1:
        ids, mask = ids.repeat_interleave(n_samples, dim=0), mask.repeat_interleave(n_samples, dim=0)
        generator = torch.Generator(device=ids.device).manual_seed(seed)
        processors.append(SeededSampling(temperature, generator))
    return model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        logits_processor=processors,
        pad_token_id=pad_id,
        streamer=streamer,
        **extra,
    )


@torch.inference_mode()
def generate_scored(
    model: Any,
    tokenizer: Any,
    token_ids: Sequence[int],
    cut: Cut,
    seqs: list[list[int]],
    max_new_tokens: int = 256,
    n_samples: int = 1,
    temperature: float = 1.0,
    seed: int = 0,
    streamer: BaseStreamer | None = None,
) -> list[list[Sample]]:
    """Generate n_samples feedbacks per prompt (greedy when 1) and score each in the same pass:
    log-probs at `token_ids` after prompt + prefix + suffix, as `cut` splits each generation."""
    device = next(model.parameters()).device
    ids, mask = left_pad(seqs, tokenizer.pad_token_id, device)
    width = ids.shape[1]
    out = run_generate(
        model,
        ids,
        mask,
        tokenizer.pad_token_id,
        max_new_tokens,
        n_samples,
        temperature,
        seed,
        streamer,
        return_dict_in_generate=True,
        output_logits=True,
    )
    new = out.sequences[:, width:].tolist()
    # transformers 5.20 renamed past_key_values to cache (the vLLM environment pins an older one)
    cache_name = "cache" if hasattr(out, "cache") else "past_key_values"
    generated_cache = getattr(out, cache_name)
    mask = mask.repeat_interleave(n_samples, dim=0)
    score_ids = torch.tensor(list(token_ids), device=device)
    results: list[list[Sample]] = [[] for _ in seqs]
    for row, gen in enumerate(new):
        prefix, suffix, written = cut(gen)
        if written and len(prefix) < len(out.logits):
            logits = out.logits[len(prefix)][row]
        else:
            cached = generated_cache.get_seq_length() - width  # generated tokens with keys in the cache
            keep = min(len(prefix), cached)
            feed = prefix[keep:] + suffix
            cache = _row_cache(generated_cache, row, width + keep, model.config)
            row_mask = torch.cat([mask[row], torch.ones(keep + len(feed), dtype=mask.dtype, device=device)])
            start = int(mask[row].sum()) + keep
            positions = torch.arange(start, start + len(feed), device=device).unsqueeze(0)
            logits = model(
                input_ids=torch.tensor([feed], device=device),
                attention_mask=row_mask.unsqueeze(0),
                position_ids=positions,
                **{cache_name: cache},
                logits_to_keep=1,
            ).logits[0, -1]
        logprobs = torch.log_softmax(logits.float(), dim=-1)[score_ids].double().cpu().numpy()
        results[row // n_samples].append(Sample(tokenizer.decode(prefix), prefix, suffix, logprobs, written))
    return results
