"""The judge: score items with a causal LM by RAIL (expected score over the score tokens).

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
from raft.files import DataError
from raft.generation import Sample, generate_scored, left_pad, run_generate
from raft.models import load_model, resolve_model
from raft.prompts import SCORE_CUE, JudgePrompt, Template, TemplateError, apply_chat, check_judge_mode
from raft.scores import ScaleError, ScoreTokens, check_scale, find_score_tokens, parse_result, split_feedback

OVERFLOW = ("truncate", "refuse")
ENGINES = ("hf", "vllm")
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

    @property
    def low_mass(self) -> bool:
        return self.score_mass is not None and self.score_mass < LOW_MASS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rail(
    score_probs: np.ndarray, values: Sequence[int], calibration: Calibration | None = None
) -> tuple[float, int, list[float], float]:
    """(expected score, mode, renormalised probs, raw mass) from raw score-token probabilities;
    with a calibration, the renormalised distribution is tempered first."""
    mass = float(score_probs.sum())
    q = score_probs / mass
    if calibration is not None:
        q = calibration.apply(q)
    return float(np.dot(q, values)), int(values[int(np.argmax(q))]), q.tolist(), mass


class Judge:
    """A loaded model with its tokenizer, template, scale and score tokens."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompt: JudgePrompt | str | Path | None = None,
        scale: tuple[int, int] = (1, 5),
        name: str = "",
        mode: str = "score_only",
        cue: str = SCORE_CUE,
        calibration: Calibration | None = None,
    ):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.scale = check_scale(scale)
        self.mode = check_judge_mode(mode)
        """The default way to judge: the mode the judge was trained in."""
        self.score_tokens: ScoreTokens = find_score_tokens(tokenizer, self.scale, cue)
        self.prompt_spec = JudgePrompt.resolve(prompt, "score_only") if isinstance(prompt, (str, Path)) else prompt
        """The templates the judge reads; None: the built-in defaults of the scoring mode."""
        self.padding: dict[str, int] = {}
        """Real and padded token counts of the last `next_token_probs` call."""
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

        `engine` is "hf" (transformers, here) or "vllm" (`raft.vllm_judge`, engine_args passed to
        `vllm.LLM`); both read the same manifest and give the same judgments. `calibration` (a file
        from `python -m raft calibrate`) tempers the score distribution and adds an interval.

        A run folder's manifest is the judge's one source of truth: its template text, scale, score
        cue and mode are used as trained, and a `template` or `scale` that differs is refused.
        """
        if engine not in ENGINES:
            raise ValueError(f"unknown engine '{engine}'; choose one of {', '.join(ENGINES)}")
        if engine == "vllm":
            from raft.vllm_judge import VllmJudge

            name, adapter_dir, manifest = resolve_model(model, adapter)
            lm, tokenizer = VllmJudge.start_engine(name, adapter_dir, device, trust_remote_code, engine_args or {})
            return VllmJudge.from_manifest(lm, tokenizer, manifest, model, template, scale, calibration)
        lm, tokenizer, manifest = load_model(model, adapter, device, trust_remote_code=trust_remote_code)
        return cls.from_manifest(lm, tokenizer, manifest, model, template, scale, calibration)

    @classmethod
    def from_manifest(
        cls,
        lm: Any,
        tokenizer: Any,
        manifest: dict[str, Any],
        model: str | Path | None = None,
        template: str | Path | None = None,
        scale: tuple[int, int] | None = None,
        calibration: str | Path | Calibration | None = None,
    ) -> Judge:
        """A judge on a loaded model, configured by its manifest (a plain model's is nearly empty)."""
        prompt = JudgePrompt.from_dict(manifest["prompt"]) if "prompt" in manifest else manifest.get("template")
        if template and isinstance(prompt, JudgePrompt):
            diff = JudgePrompt.resolve(template, manifest.get("mode", "score_only")).differs_from(prompt)
            if diff:
                raise TemplateError(f"{model} was trained with other prompt text: {diff}; leave the template out")
        trained_scale = tuple(manifest["scale"]) if "scale" in manifest else None
        if scale and trained_scale and tuple(scale) != trained_scale:
            raise ScaleError(f"{model} was trained on the scale {trained_scale}, not {tuple(scale)}")
        return cls(
            lm,
            tokenizer,
            prompt if isinstance(prompt, JudgePrompt) else template or prompt,
            scale or trained_scale or (1, 5),
            name=str(model or manifest.get("base_model", "")),
            mode=manifest.get("mode", "score_only"),
            cue=manifest.get("score_cue", SCORE_CUE),
            calibration=Calibration.load(calibration) if isinstance(calibration, (str, Path)) else calibration,
        )

    def context_limit(self) -> int | None:
        """The most tokens the model reads at once (prompt and generation together)."""
        return getattr(self.model.config, "max_position_embeddings", None)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def score_token_ids(self) -> list[int]:
        return list(self.score_tokens.ids)

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

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return left_pad(seqs, self.tokenizer.pad_token_id, self.device)

    @torch.inference_mode()
    def next_token_probs(
        self, seqs: list[list[int]], batch_size: int = 8, progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """Raw (full-vocabulary softmax) probabilities of the score tokens after each sequence.

        Sequences are sorted by length and batched with left padding; position ids follow the
        attention mask, so padding and batch size do not change the result. The output head runs
        at the last position only. `padding` keeps the real and padded token counts of the call.
        """
        out = np.zeros((len(seqs), len(self.score_tokens.ids)), dtype=np.float64)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        ids_t = torch.tensor(self.score_tokens.ids, device=self.device)
        self.padding = {"real_tokens": sum(len(s) for s in seqs), "padded_tokens": 0}
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = self._left_pad([seqs[i] for i in chunk])
            self.padding["padded_tokens"] += int(mask.numel() - mask.sum())
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits
            probs = torch.softmax(logits[:, -1, :].float(), dim=-1)[:, ids_t]
            out[chunk] = probs.double().cpu().numpy()
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
    ) -> list[list[str]]:
        """Generated continuations, n_samples per sequence (greedy when n_samples is 1, else seeded sampling)."""
        texts: list[list[str]] = [[] for _ in seqs]
        for start in range(0, len(seqs), batch_size):
            chunk = list(range(start, min(start + batch_size, len(seqs))))
            ids, mask = self._left_pad([seqs[i] for i in chunk])
            out = run_generate(
                self.model, ids, mask, self.tokenizer.pad_token_id, max_new_tokens, n_samples, temperature, seed + start
            )
            new = out[:, ids.shape[1] :]
            decoded = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            for j, text in enumerate(decoded):
                texts[chunk[j // n_samples]].append(text)
        return texts

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
    ) -> list[Judgment]:
        """Judge every item; an invalid item gets a Judgment with `error` set, the rest are scored.

        `mode` defaults to the judge's own (the one it was trained in). Sampling (n_samples > 1) is
        seeded by `seed` through its own generator; the process-wide random state is left alone.

        Rows are bucketed by length (sorted, then batched) so that little padding is computed.
        A prompt longer than the model's context is cut in the middle of the response and flagged
        (`overflow="truncate"`) or refused with an error (`overflow="refuse"`).
        """
        mode = check_judge_mode(mode or self.mode)
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
        if mode == "score_only":
            self._score_only(idx, prompts, results, batch_size, progress)
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
            )
            if progress:
                progress(min(start + batch_size, len(idx)), len(idx))
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
        self, seqs: list[list[int]], max_new_tokens: int, n_samples: int, temperature: float, seed: int
    ) -> list[list[Sample]]:
        """n_samples feedbacks per prompt, each with the score distribution after its cue (single pass)."""
        return generate_scored(
            self.model, self.tokenizer, self.score_tokens, seqs, max_new_tokens, n_samples, temperature, seed
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
    ) -> None:
        if mode == "decode":
            texts = self.generate([prompts[i] for i in part], max_new_tokens, 1, temperature, batch_size, seed)
            for i, (text,) in zip(part, texts):
                feedback, score = parse_result(text, self.scale)
                r = results[i]
                r.feedback = feedback
                if score is None:
                    r.error = "no score found in the generated text"
                else:
                    r.expected_score, r.mode_score = float(score), int(round(score))
            return
        samples = self.feedback_samples([prompts[i] for i in part], max_new_tokens, n_samples, temperature, seed)
        if not single_pass:  # the research code's way: run the model again over prompt + feedback + cue
            flat = [(i, s) for i, group in zip(part, samples) for s in group]
            fresh = self.next_token_probs([prompts[i] + s.prefix + s.suffix for i, s in flat], batch_size)
            for (_, s), p in zip(flat, fresh):
                s.probs = torch.from_numpy(p)
        for i, group in zip(part, samples):
            rows = [rail(s.probs.numpy(), self.score_tokens.values, self.calibration) for s in group]
            r = results[i]
            r.samples = [row[0] for row in rows]
            r.expected_score = float(np.mean(r.samples))
            r.probs = np.mean([row[2] for row in rows], axis=0).tolist()
            r.mode_score = int(self.score_tokens.values[int(np.argmax(r.probs))])
            r.score_mass = float(np.mean([row[3] for row in rows]))
            r.interval = self.calibration.interval(r.expected_score) if self.calibration else None
            r.feedback = split_feedback(group[0].text, self.score_tokens.cue)
