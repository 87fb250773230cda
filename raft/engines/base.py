"""The engine interface: what a judge needs from wherever its model runs.

A judge asks an engine for four things, all on token ids (the judge renders and tokenizes):
next-token log-probabilities at given token ids after each prompt (RAIL), generated text,
generation whose score distribution is read where the judge's `cut` says (CoT-RAIL), and the
context limit; plus the tokenizer. Everything else (prompts, items, context cutting, RAIL,
calibration, errors) is the judge's, the same for every engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

Progress = Callable[[int, int], None]
"""progress(done, total), called after each batch."""
OnTokens = Callable[[int, list[int]], None]
"""on_tokens(row, new token ids) as a row's tokens are generated (row = prompt * n_samples + sample);
the end-of-turn token is not passed. Backends that cannot stream call it once per finished row."""
Cut = Callable[[list[int]], tuple[list[int], list[int], bool]]
"""cut(generated ids) -> (prefix, suffix, cue written): the score is read after prompt + prefix + suffix."""


@dataclass
class Sample:
    """One generated feedback: its text up to the cue, the scored ids, and the score log-probs there."""

    text: str
    prefix: list[int]
    """Generated ids kept before the score position."""
    suffix: list[int]
    """Ids appended after them (the cue when the model did not write it; else empty)."""
    logprobs: np.ndarray
    """Full-vocabulary log-probabilities of the requested token ids after prompt + prefix + suffix."""
    cue_written: bool


@runtime_checkable
class Engine(Protocol):
    """A model that scores and generates on token ids; see `raft.engines.transformers` for one."""

    tokenizer: Any
    padding: dict[str, int]
    """Real and padded token counts of the last `next_token_logprobs` call (zero padding if none)."""

    def context_limit(self) -> int | None:
        """The most tokens the model reads at once (prompt and generation together)."""
        ...

    def next_token_logprobs(
        self, seqs: list[list[int]], token_ids: Sequence[int], batch_size: int = 8, progress: Progress | None = None
    ) -> np.ndarray:
        """(len(seqs), len(token_ids)) full-vocabulary log-probabilities of the next token after each sequence."""
        ...

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
        """n_samples continuations per sequence: greedy when 1, else sampled at `temperature`, seeded."""
        ...

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
        """Generate as `generate` does, and give each output the log-probs at `token_ids` after the cut."""
        ...


def scored_from_steps(
    engine: Engine,
    seqs: list[list[int]],
    outputs: list[list[tuple[list[int], list[np.ndarray]]]],
    token_ids: Sequence[int],
    cut: Cut,
) -> list[list[Sample]]:
    """Samples from generations that carry per-step log-probs at `token_ids`: read at the step where
    the model wrote the cue, else asked of `engine.next_token_logprobs` after prompt + prefix + cue
    in one more batch. `outputs[row]` holds (generated ids, per-step log-probs) per sample."""
    tokenizer = engine.tokenizer
    samples: list[list[Sample]] = [[] for _ in seqs]
    pending: list[tuple[Sample, list[int]]] = []
    for row, group in enumerate(outputs):
        for ids, steps in group:
            prefix, suffix, written = cut(list(ids))
            sample = Sample(tokenizer.decode(prefix), prefix, suffix, np.zeros(0), written)
            if written and len(prefix) < len(steps):
                sample.logprobs = np.asarray(steps[len(prefix)], dtype=np.float64)
            else:
                pending.append((sample, seqs[row] + prefix + suffix))
            samples[row].append(sample)
    if pending:
        again = engine.next_token_logprobs([seq for _, seq in pending], token_ids)
        for (sample, _), logprobs in zip(pending, again):
            sample.logprobs = logprobs
    return samples
