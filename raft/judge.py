"""The judge: score items by RAIL (expected score over the score tokens) on any engine.

The judge owns what is the same on every backend: prompts and items, fitting a prompt to the
context, the score cue, RAIL, calibration and per-row errors; an engine (`raft.engines`) runs
the model on token ids.

Modes:
- ``score_only``: one forward pass over prompt + score cue, left padded, logits only at the last
  position; the score distribution is read there.
- ``feedback``: generate feedback, cut it at the score cue, append the cue, read the distribution
  at the next token (TRACT's CoT-RAIL); with n samples the expected scores are averaged.
- ``decode``: the baseline; generate and parse the written digit, parse failures reported.

Its parts: `raft.judge_prompting` (items to prompt ids), `raft.judge_scoring` (the three modes'
paths), `raft.judge_manifest` (settings from a judge folder) and `raft.judgment` (the verdict, RAIL).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raft.calibration import Calibration
from raft.engines import ENGINES, Engine, Sample, load_engine
from raft.engines.base import OnTokens
from raft.judge_manifest import judge_settings
from raft.judge_prompting import JudgePrompting
from raft.judge_scoring import OVERFLOW, score_items
from raft.judgment import LOW_MASS, Judgment, rail
from raft.pair_judge import compare as compare_pairs
from raft.pairwise import PairJudgment
from raft.prompts import SCORE_CUE, JudgePrompt, check_judge_mode
from raft.scores import ScaleError, ScoreTokens, check_scale, cut_at_cue, find_score_tokens

__all__ = ["LOW_MASS", "OVERFLOW", "Judge", "Judgment", "rail"]


class Judge(JudgePrompting):
    """An engine with the judge's template, scale, score tokens, mode and calibration."""

    def __init__(
        self,
        engine: Engine,
        prompt: JudgePrompt | str | Path | None = None,
        scale: tuple[int, int] = (1, 5),
        name: str = "",
        mode: str = "score_only",
        cue: str = SCORE_CUE,
        calibration: Calibration | None = None,
    ):
        self.engine, self.name = engine, name
        tokenizer = engine.tokenizer
        self.scale = check_scale(scale)
        self.mode = check_judge_mode(mode)
        """The default way to judge: the mode the judge was trained in."""
        self.score_tokens: ScoreTokens = find_score_tokens(tokenizer, self.scale, cue)
        self.cue = cue
        self._pair_tokens: ScoreTokens | None = None
        self.prompt_spec = JudgePrompt.resolve(prompt, "score_only") if isinstance(prompt, (str, Path)) else prompt
        """The templates the judge reads; None: the built-in defaults of the scoring mode."""
        self.calibration: Calibration | None = None
        if calibration is not None:
            self.calibration = self._checked(calibration)

    def _checked(self, calibration: Calibration) -> Calibration:
        if tuple(calibration.scale) != self.scale:
            raise ScaleError(
                f"the calibration is for the scale {tuple(calibration.scale)}, the judge's is {self.scale}"
            )
        return calibration

    def with_calibration(self, calibration: Calibration | None) -> Judge:
        """This judge (the same loaded model) with a temperature and intervals, or without them."""
        other = copy.copy(self)
        other.calibration = None if calibration is None else self._checked(calibration)
        return other

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        adapter: str | Path | None = None,
        template: str | Path | None = None,
        scale: tuple[int, int] | None = None,
        device: str | None = None,
        trust_remote_code: bool = False,
        calibration: str | Path | Calibration | None = None,
        engine: str = "hf",
        engine_args: dict[str, Any] | None = None,
    ) -> Judge:
        """Load a judge from a hub id, a local folder, a fine-tuned run folder, or the default model.

        `engine` names a backend of `raft.engines`: "hf" (transformers) or "vllm" (engine_args
        passed to `vllm.LLM`); all read the same manifest and give the same judgments. `calibration` (a file
        from `python -m raft calibrate`) tempers the score distribution and adds an interval.

        A run folder's manifest is the judge's one source of truth: its template text, scale, score
        cue and mode are used as trained, and a `template` or `scale` that differs is refused.
        """
        if engine not in ENGINES:
            raise ValueError(f"unknown engine '{engine}'; choose one of {', '.join(ENGINES)}")
        loaded, manifest = load_engine(engine, model, adapter, device, trust_remote_code, engine_args)
        return cls.from_manifest(loaded, manifest, model, template, scale, calibration)

    @classmethod
    def from_manifest(
        cls,
        engine: Engine,
        manifest: dict[str, Any],
        model: str | Path | None = None,
        template: str | Path | None = None,
        scale: tuple[int, int] | None = None,
        calibration: str | Path | Calibration | None = None,
    ) -> Judge:
        """A judge on a loaded engine, configured by its manifest (a plain model's is nearly empty)."""
        return cls(engine, **judge_settings(manifest, model, template, scale, calibration))

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    @property
    def model(self) -> Any:
        """The transformers model of a transformers engine (training and tests read it)."""
        return self.engine.model

    @property
    def device(self) -> torch.device:
        """Where the engine's tensors live (the CPU for engines that run elsewhere)."""
        return getattr(self.engine, "device", torch.device("cpu"))

    @property
    def padding(self) -> dict[str, int]:
        """Real and padded token counts of the last `next_token_probs` call."""
        return self.engine.padding

    def context_limit(self) -> int | None:
        """The most tokens the model reads at once (prompt and generation together)."""
        return self.engine.context_limit()

    @property
    def score_token_ids(self) -> list[int]:
        return list(self.score_tokens.ids)

    def compare(
        self,
        pairs: Sequence[dict[str, Any]],
        mode: str | None = None,
        both_orders: bool = True,
        batch_size: int = 8,
        n_samples: int = 1,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[PairJudgment]:
        """The probability that response A beats response B for each pair, both orders combined
        (`raft.pair_judge.compare`: swapping A and B in a pair gives exactly 1 - P)."""
        return compare_pairs(
            self, pairs, mode, both_orders, batch_size, n_samples, max_new_tokens, temperature, seed, progress
        )

    def next_token_probs(
        self, seqs: list[list[int]], batch_size: int = 8, progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """Raw (full-vocabulary softmax) probabilities of the score tokens after each sequence."""
        return np.exp(self.engine.next_token_logprobs(seqs, self.score_tokens.ids, batch_size, progress))

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
        """Generated continuations, n_samples per sequence (greedy when n_samples is 1, else seeded sampling)."""
        return self.engine.generate(seqs, max_new_tokens, n_samples, temperature, batch_size, seed, on_tokens)

    def score(
        self,
        items: Sequence[dict[str, Any]],
        mode: str | None = None,
        batch_size: int = 8,
        n_samples: int = 1,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
        single_pass: bool = True,
        overflow: str = "truncate",
        on_tokens: OnTokens | None = None,
        on_done: Callable[[list[int], list[Judgment]], None] | None = None,
    ) -> list[Judgment]:
        """Judge every item; an invalid item gets a Judgment with `error` set, the rest are scored.

        `mode` defaults to the judge's own (the one it was trained in). Sampling (n_samples > 1) is
        seeded by `seed` through its own generator; the process-wide random state is left alone.

        Rows are bucketed by length (sorted, then batched) so that little padding is computed.
        A prompt longer than the model's context is cut in the middle of the response and flagged
        (`overflow="truncate"`) or refused with an error (`overflow="refuse"`).
        `on_tokens(item * n_samples + sample, new ids)` streams generated tokens (feedback, decode).
        `on_done(indices, judgments)` is called as soon as those items' judgments are final (the refused items
        first, then each batch), so a caller can write them to disk before the next batch runs.
        """
        return score_items(
            self, items, mode, batch_size, n_samples, max_new_tokens, temperature, seed, progress,
            single_pass, overflow, on_tokens, on_done,
        )  # fmt: skip

    def feedback_samples(
        self,
        seqs: list[list[int]],
        max_new_tokens: int,
        n_samples: int,
        temperature: float,
        seed: int,
        on_tokens: OnTokens | None = None,
    ) -> list[list[Sample]]:
        """n_samples feedbacks per prompt, each with the score log-probs after its cue (single pass)."""
        st = self.score_tokens
        return self.engine.generate_scored(
            seqs,
            st.ids,
            lambda ids: cut_at_cue(self.tokenizer, ids, st),
            max_new_tokens,
            n_samples,
            temperature,
            seed,
            on_tokens,
        )
