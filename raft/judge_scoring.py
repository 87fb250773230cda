"""The judge's scoring paths: fit each item's prompt to the context, then read the score
distribution in one forward pass (score_only) or after generated text (feedback, decode).

`Judge.score` runs `score_items`; apart from the judge so that its class keeps only the settings
and the prompts that every path shares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from raft.context import cut_middle
from raft.engines import Sample
from raft.engines.base import OnTokens
from raft.files import DataError
from raft.judgment import Judgment, rail
from raft.prompts import check_judge_mode
from raft.scores import parse_result, split_feedback

OVERFLOW = ("truncate", "refuse")

Done = Callable[[list[int], list[Judgment]], None]
Progress = Callable[[int, int], None]


def score_items(
    judge: Any,
    items: Sequence[dict[str, Any]],
    mode: str | None,
    batch_size: int,
    n_samples: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    progress: Progress | None,
    single_pass: bool,
    overflow: str,
    on_tokens: OnTokens | None,
    on_done: Done | None,
) -> list[Judgment]:
    """Every item judged by a `raft.judge.Judge`: the arguments are those of `Judge.score`."""
    mode = check_judge_mode(mode or judge.mode)
    if judge.pairwise:
        raise ValueError("this judge was trained to compare two responses: give it pairs (compare)")
    if overflow not in OVERFLOW:
        raise ValueError(f"unknown overflow policy '{overflow}'; choose one of {', '.join(OVERFLOW)}")
    reserve = len(judge.encode(judge.score_tokens.cue)) + (1 if mode == "score_only" else max_new_tokens + 1)
    results, prompts = _fit_all(judge, items, mode, reserve, overflow)
    idx = sorted(prompts, key=lambda i: len(prompts[i]))
    refused = [i for i in range(len(items)) if i not in prompts]
    if on_done and refused:
        on_done(refused, results)
    if mode == "score_only":
        _score_only_batches(judge, idx, prompts, results, batch_size, progress, on_done)
        return results
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        generated_rows(
            judge, part, prompts, results, mode, batch_size, n_samples, max_new_tokens, temperature,
            single_pass, seed + start, on_tokens,
        )  # fmt: skip
        if progress:
            progress(min(start + batch_size, len(idx)), len(idx))
        if on_done:
            on_done(part, results)
    return results


def _fit_all(
    judge: Any, items: Sequence[dict[str, Any]], mode: str, reserve: int, overflow: str
) -> tuple[list[Judgment], dict[int, list[int]]]:
    """A verdict per item (its error set where the item is invalid) and the prompt ids of the rest."""
    results = [Judgment() for _ in items]
    prompts: dict[int, list[int]] = {}
    for i, item in enumerate(items):
        try:
            prompts[i], results[i].flag = fit_prompt(judge, item, mode, reserve, overflow)
        except (DataError, KeyError) as exc:
            results[i].error = str(exc)
    return results, prompts


def fit_prompt(
    judge: Any, item: dict[str, Any], mode: str, reserve: int, overflow: str
) -> tuple[list[int], str | None]:
    """Prompt ids that fit the context with `reserve` tokens to spare, and a flag if cut."""
    ids = judge.encode(judge.prompt(item, mode))
    limit = judge.context_limit()
    if not limit or len(ids) + reserve <= limit:
        return ids, None
    excess = len(ids) + reserve - limit
    where = f"the prompt is {len(ids)} tokens, and with {reserve} more it exceeds the context of {limit}"
    if overflow == "refuse":
        raise DataError(where, field="orig_response")
    text = str(item["orig_response"]).strip()
    offsets = judge.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    keep = len(offsets) - excess - 16  # room for the marker and re-tokenisation
    if keep < 16:
        raise DataError(where + ", even with the response cut", field="orig_response")
    ids = judge.encode(judge.prompt({**item, "orig_response": cut_middle(text, offsets, keep)}, mode))
    if len(ids) + reserve > limit:
        raise DataError(where + ", even with the response cut", field="orig_response")
    return ids, f"response cut in the middle to fit the context: {len(offsets) - keep} of {len(offsets)} tokens"


def _score_only_batches(
    judge: Any,
    idx: list[int],
    prompts: dict[int, list[int]],
    results: list[Judgment],
    batch_size: int,
    progress: Progress | None,
    on_done: Done | None,
) -> None:
    """Score-only rows in one engine call, or batch by batch when `on_done` wants each batch at once."""
    if not on_done or getattr(judge.engine, "whole_calls", False):  # one call: the engine batches
        score_only_rows(judge, idx, prompts, results, batch_size, progress)
        if on_done:
            on_done(idx, results)
        return
    padding: dict[str, int] = {}
    for start in range(0, len(idx), batch_size):  # the same batches one call would make
        part = idx[start : start + batch_size]
        score_only_rows(judge, part, prompts, results, batch_size)
        padding = {k: padding.get(k, 0) + v for k, v in judge.engine.padding.items()}
        if progress:
            progress(min(start + batch_size, len(idx)), len(idx))
        on_done(part, results)
    judge.engine.padding = padding


def score_only_rows(
    judge: Any,
    idx: list[int],
    prompts: dict[int, list[int]],
    results: list[Judgment],
    batch_size: int,
    progress: Progress | None = None,
) -> None:
    """RAIL over the score tokens read right after each prompt and the score cue."""
    cue = judge.encode(judge.score_tokens.cue)
    probs = judge.next_token_probs([prompts[i] + cue for i in idx], batch_size, progress)
    for i, p in zip(idx, probs):
        r = results[i]
        r.expected_score, r.mode_score, r.probs, r.score_mass = rail(p, judge.score_tokens.values, judge.calibration)
        r.interval = judge.calibration.interval(r.expected_score) if judge.calibration else None


def generated_rows(
    judge: Any,
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
    """One batch judged after generation: the written digit (decode) or RAIL after the feedback."""
    per = 1 if mode == "decode" else n_samples
    stream = (lambda row, ids: on_tokens(part[row // per] * per + row % per, ids)) if on_tokens else None
    seqs = [prompts[i] for i in part]
    if mode == "decode":
        texts = judge.generate(seqs, max_new_tokens, 1, temperature, batch_size, seed, stream)
        _read_decoded(judge, part, texts, results)
        return
    samples = judge.feedback_samples(seqs, max_new_tokens, n_samples, temperature, seed, stream)
    if not single_pass:
        _rescore(judge, part, prompts, samples, batch_size)
    _read_feedback(judge, part, samples, results)


def _read_decoded(judge: Any, part: list[int], texts: list[list[str]], results: list[Judgment]) -> None:
    """The score written in each generated text, or an error where none is found."""
    for i, (text,) in zip(part, texts):
        feedback, score = parse_result(text, judge.scale)
        r = results[i]
        r.feedback = feedback
        if score is None:
            r.error = "no score found in the generated text"
        else:
            r.expected_score, r.mode_score = float(score), int(round(score))


def _rescore(
    judge: Any, part: list[int], prompts: dict[int, list[int]], samples: list[list[Sample]], batch_size: int
) -> None:
    """The research code's way: run the model again over prompt + feedback + cue for each sample."""
    flat = [(i, s) for i, group in zip(part, samples) for s in group]
    fresh = judge.engine.next_token_logprobs(
        [prompts[i] + s.prefix + s.suffix for i, s in flat], judge.score_tokens.ids, batch_size
    )
    for (_, s), logprobs in zip(flat, fresh):
        s.logprobs = logprobs


def _read_feedback(judge: Any, part: list[int], samples: list[list[Sample]], results: list[Judgment]) -> None:
    """Each item's samples averaged: expected score, distribution, mode and mass (CoT-RAIL)."""
    values = judge.score_tokens.values
    for i, group in zip(part, samples):
        rows = [rail(np.exp(s.logprobs), values, judge.calibration) for s in group]
        r = results[i]
        r.samples = [row[0] for row in rows]
        r.expected_score = float(np.mean(r.samples))
        r.probs = np.mean([row[2] for row in rows], axis=0).tolist()
        r.mode_score = int(values[int(np.argmax(r.probs))])
        r.score_mass = float(np.mean([row[3] for row in rows]))
        r.interval = judge.calibration.interval(r.expected_score) if judge.calibration else None
        r.feedback = split_feedback(group[0].text, judge.score_tokens.cue)
