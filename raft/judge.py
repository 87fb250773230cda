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
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raft.calibration import Calibration
from raft.context import cut_middle
from raft.data import normalize_item
from raft.engines import ENGINES, Engine, Sample, load_engine
from raft.engines.base import OnTokens
from raft.files import DataError
from raft.pair_judge import compare as compare_pairs
from raft.pairwise import PairJudgment
from raft.prompts import SCORE_CUE, JudgePrompt, Template, TemplateError, apply_chat, check_judge_mode
from raft.scores import (
    ScaleError,
    ScoreTokens,
    check_scale,
    cut_at_cue,
    find_pair_tokens,
    find_score_tokens,
    parse_result,
    split_feedback,
)

OVERFLOW = ("truncate", "refuse")
LOW_MASS = 0.5
"""Below this raw probability mass on the score tokens, the prompt or token mapping is suspect."""


@dataclass
class Judgment:
    """One item's verdict. probs are renormalised over the scale; score_mass is the raw mass."""

    expected_score: float | None = None
    mode_score: int | None = None
    probs: list[float] | None = None
    score_mass: float | None = None
    feedback: str | None = None
    error: str | None = None
    samples: list[float] | None = None
    flag: str | None = None
    """A warning that does not stop scoring, e.g. a response cut to fit the context."""
    interval: list[float] | None = None
    """[lo, hi] around the expected score at the calibration's coverage (with a calibration only)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rail(
    score_probs: np.ndarray, values: Sequence[int], calibration: Calibration | None = None
) -> tuple[float, int, list[float], float]:
    """(expected score, mode, renormalised probs, raw mass) from raw score-token probabilities;
    with a calibration, the renormalised distribution is tempered first and the expected score
    weighs each level by its level map's value (the mode stays the most likely level)."""
    mass = float(score_probs.sum())
    q = score_probs / mass
    worth = values
    if calibration is not None:
        q = calibration.apply(q)
        worth = calibration.values(values)
    return float(np.dot(q, worth)), int(values[int(np.argmax(q))]), q.tolist(), mass


def _manifest_calibration(manifest: dict[str, Any]) -> Calibration | None:
    """The calibration a judge folder carries in its judge.json (a calibrated judge), else None."""
    found = manifest.get("calibration")
    return Calibration.from_dict(found) if isinstance(found, dict) else None


class Judge:
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
        prompt = JudgePrompt.from_dict(manifest["prompt"]) if "prompt" in manifest else manifest.get("template")
        if template and isinstance(prompt, JudgePrompt):
            mode = manifest.get("mode", "score_only")
            diff = JudgePrompt.resolve(template, mode, prompt.pairwise).differs_from(prompt)
            if diff:
                raise TemplateError(f"{model} was trained with other prompt text: {diff}; leave the template out")
        trained_scale = tuple(manifest["scale"]) if "scale" in manifest else None
        if scale and trained_scale and tuple(scale) != trained_scale:
            raise ScaleError(f"{model} was trained on the scale {trained_scale}, not {tuple(scale)}")
        return cls(
            engine,
            prompt if isinstance(prompt, JudgePrompt) else template or prompt,
            scale or trained_scale or (1, 5),
            name=str(model or manifest.get("base_model", "")),
            mode=manifest.get("mode", "score_only"),
            cue=manifest.get("score_cue", SCORE_CUE),
            calibration=Calibration.load(calibration)
            if isinstance(calibration, (str, Path))
            else calibration or _manifest_calibration(manifest),
        )

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

    @property
    def pairwise(self) -> bool:
        """A judge trained to compare pairs (its templates show response A and response B)."""
        return self.prompt_spec is not None and self.prompt_spec.pairwise

    @property
    def pair_tokens(self) -> ScoreTokens:
        """The verdict tokens 'A' (value 1) and 'B' (value 0) after the score cue, found once."""
        if self._pair_tokens is None:
            self._pair_tokens = find_pair_tokens(self.tokenizer, self.cue)
        return self._pair_tokens

    def pair_prompt(self, mode: str) -> JudgePrompt:
        """The relative-grading templates: the judge's own when it was trained on pairs, else the built-in ones."""
        return self.prompt_spec if self.pairwise else JudgePrompt.resolve(None, mode, pairwise=True)

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

    def _template(self, item: dict[str, Any], mode: str) -> Template:
        spec = self.prompt_spec or JudgePrompt.resolve(None, "score_only" if mode == "score_only" else "feedback")
        return spec.for_item(item)

    def _item(self, item: dict[str, Any], mode: str) -> tuple[dict[str, Any], Template]:
        clean = normalize_item(item, self.scale)
        template = self._template(clean, mode)
        if template.uses_reference and not clean["orig_reference_answer"]:
            raise DataError("empty, but the template needs it", field="orig_reference_answer")
        return clean, template

    def prompt(self, item: dict[str, Any], mode: str | None = None) -> str:
        """The chat-formatted prompt, before any assistant text."""
        clean, template = self._item(item, check_judge_mode(mode or self.mode))
        return apply_chat(self.tokenizer, template.fill(clean, self.scale))

    def render(self, item: dict[str, Any], mode: str | None = None) -> str:
        """The exact text given to the model for one item (score-only: ends with the score cue)."""
        mode = check_judge_mode(mode or self.mode)
        text = self.prompt(item, mode)
        return text + self.score_tokens.cue if mode == "score_only" else text

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

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
        mode = check_judge_mode(mode or self.mode)
        if self.pairwise:
            raise ValueError("this judge was trained to compare two responses: give it pairs (compare)")
        if overflow not in OVERFLOW:
            raise ValueError(f"unknown overflow policy '{overflow}'; choose one of {', '.join(OVERFLOW)}")
        results = [Judgment() for _ in items]
        reserve = len(self.encode(self.score_tokens.cue)) + (1 if mode == "score_only" else max_new_tokens + 1)
        prompts: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            try:
                prompts[i], results[i].flag = self._fit(item, mode, reserve, overflow)
            except (DataError, KeyError) as exc:
                results[i].error = str(exc)
        idx = sorted(prompts, key=lambda i: len(prompts[i]))
        refused = [i for i in range(len(items)) if i not in prompts]
        if on_done and refused:
            on_done(refused, results)
        if mode == "score_only":
            if not on_done or getattr(self.engine, "whole_calls", False):  # one call: the engine batches
                self._score_only(idx, prompts, results, batch_size, progress)
                if on_done:
                    on_done(idx, results)
                return results
            padding: dict[str, int] = {}
            for start in range(0, len(idx), batch_size):  # the same batches one call would make
                part = idx[start : start + batch_size]
                self._score_only(part, prompts, results, batch_size)
                padding = {k: padding.get(k, 0) + v for k, v in self.engine.padding.items()}
                if progress:
                    progress(min(start + batch_size, len(idx)), len(idx))
                on_done(part, results)
            self.engine.padding = padding
            return results
        for start in range(0, len(idx), batch_size):
            part = idx[start : start + batch_size]
            self._generated(
                part,
                prompts,
                results,
                mode,
                batch_size,
                n_samples,
                max_new_tokens,
                temperature,
                single_pass,
                seed + start,
                on_tokens,
            )
            if progress:
                progress(min(start + batch_size, len(idx)), len(idx))
            if on_done:
                on_done(part, results)
        return results

    def _fit(self, item: dict[str, Any], mode: str, reserve: int, overflow: str) -> tuple[list[int], str | None]:
        """Prompt ids that fit the context with `reserve` tokens to spare, and a flag if cut."""
        ids = self.encode(self.prompt(item, mode))
        limit = self.context_limit()
        if not limit or len(ids) + reserve <= limit:
            return ids, None
        excess = len(ids) + reserve - limit
        where = f"the prompt is {len(ids)} tokens, and with {reserve} more it exceeds the context of {limit}"
        if overflow == "refuse":
            raise DataError(where, field="orig_response")
        text = str(item["orig_response"]).strip()
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        keep = len(offsets) - excess - 16  # room for the marker and re-tokenisation
        if keep < 16:
            raise DataError(where + ", even with the response cut", field="orig_response")
        ids = self.encode(self.prompt({**item, "orig_response": cut_middle(text, offsets, keep)}, mode))
        if len(ids) + reserve > limit:
            raise DataError(where + ", even with the response cut", field="orig_response")
        return ids, f"response cut in the middle to fit the context: {len(offsets) - keep} of {len(offsets)} tokens"

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

    def _score_only(
        self,
        idx: list[int],
        prompts: dict[int, list[int]],
        results: list[Judgment],
        batch_size: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        cue = self.encode(self.score_tokens.cue)
        probs = self.next_token_probs([prompts[i] + cue for i in idx], batch_size, progress)
        for i, p in zip(idx, probs):
            r = results[i]
            r.expected_score, r.mode_score, r.probs, r.score_mass = rail(p, self.score_tokens.values, self.calibration)
            r.interval = self.calibration.interval(r.expected_score) if self.calibration else None

    def _generated(
        self,
        part: list[int],
        prompts: dict[int, list[int]],
        results: list[Judgment],
        mode: str,
        batch_size: int,
        n_samples: int,
        max_new_tokens: int,
        temperature: float,
        single_pass: bool = True,
        seed: int = 0,
        on_tokens: OnTokens | None = None,
    ) -> None:
        per = 1 if mode == "decode" else n_samples
        stream = (lambda row, ids: on_tokens(part[row // per] * per + row % per, ids)) if on_tokens else None
        if mode == "decode":
            texts = self.generate([prompts[i] for i in part], max_new_tokens, 1, temperature, batch_size, seed, stream)
            for i, (text,) in zip(part, texts):
                feedback, score = parse_result(text, self.scale)
                r = results[i]
                r.feedback = feedback
                if score is None:
                    r.error = "no score found in the generated text"
                else:
                    r.expected_score, r.mode_score = float(score), int(round(score))
            return
        samples = self.feedback_samples(
            [prompts[i] for i in part], max_new_tokens, n_samples, temperature, seed, stream
        )
        if not single_pass:  # the research code's way: run the model again over prompt + feedback + cue
            flat = [(i, s) for i, group in zip(part, samples) for s in group]
            fresh = self.engine.next_token_logprobs(
                [prompts[i] + s.prefix + s.suffix for i, s in flat], self.score_tokens.ids, batch_size
            )
            for (_, s), logprobs in zip(flat, fresh):
                s.logprobs = logprobs
        for i, group in zip(part, samples):
            rows = [rail(np.exp(s.logprobs), self.score_tokens.values, self.calibration) for s in group]
            r = results[i]
            r.samples = [row[0] for row in rows]
            r.expected_score = float(np.mean(r.samples))
            r.probs = np.mean([row[2] for row in rows], axis=0).tolist()
            r.mode_score = int(self.score_tokens.values[int(np.argmax(r.probs))])
            r.score_mass = float(np.mean([row[3] for row in rows]))
            r.interval = self.calibration.interval(r.expected_score) if self.calibration else None
            r.feedback = split_feedback(group[0].text, self.score_tokens.cue)
