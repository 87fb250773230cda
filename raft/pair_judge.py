"""Comparing two responses on a judge's engine: P(A) read after the verdict cue in each order, the
orders combined so that swapping A and B gives exactly 1 - P (`Judge.compare` calls this)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from raft.files import DataError
from raft.pairs import normalize_pair
from raft.pairwise import LOW_PAIR_MASS, PairJudgment, combine, swapped, win_probability
from raft.prompts import JudgePrompt, apply_chat, check_judge_mode
from raft.scores import cut_at_cue, split_feedback


def compare(
    judge: Any,
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
    """The probability that response A beats response B, for each pair (pair field names), on a
    `raft.judge.Judge` (its engine, tokenizer, cue and relative-grading templates).

    Each order is one forward pass (score_only) or one generated feedback per sample (feedback)
    after which P('A') is read renormalised over {A, B}; with `both_orders` the pair is also read
    swapped and the two combined, so that swapping A and B in a pair gives exactly 1 - P. The
    sequences of a call are sent in one canonical order, so a pair and its swap are computed on
    the same batches. An invalid pair gets a PairJudgment with `error` set.
    """
    mode = check_judge_mode(mode or ("feedback" if judge.mode == "feedback" else "score_only"))
    if mode == "decode":
        raise ValueError("pairs are judged by the probability of A and B: choose score_only or feedback")
    prompt, tokens = judge.pair_prompt(mode), judge.pair_tokens
    cue = judge.encode(tokens.cue)
    reserve = len(cue) + (1 if mode == "score_only" else max_new_tokens + 1)
    results = [PairJudgment() for _ in pairs]
    jobs = _pair_jobs(judge, pairs, prompt, reserve, both_orders, results)
    seqs = sorted({tuple(ids) for _, _, ids in jobs}, key=lambda ids: (len(ids), ids))
    read = _reads(
        judge, [list(s) for s in seqs], cue, mode, batch_size, n_samples, max_new_tokens,
                            temperature, seed, progress)  # fmt: skip
    for i, order, ids in jobs:
        p, mass, feedback = read[tuple(ids)]
        setattr(results[i], f"p_{order}", p)
        setattr(results[i], f"mass_{order}", mass)
        setattr(results[i], f"feedback_{order}", feedback)
    for r in results:
        _combine_orders(r)
    return results


def _pair_jobs(
    judge: Any,
    pairs: Sequence[dict[str, Any]],
    prompt: JudgePrompt,
    reserve: int,
    both_orders: bool,
    results: list[PairJudgment],
) -> list[tuple[int, str, list[int]]]:
    """(pair index, order "ab" or "ba", prompt ids) for each order of each valid pair; an invalid
    pair, or one too long for the context, gets its error in `results` instead."""
    limit = judge.context_limit()
    jobs: list[tuple[int, str, list[int]]] = []
    for i, raw in enumerate(pairs):
        try:
            item = normalize_pair(raw)
            template = prompt.for_item(item)
            if template.uses_reference and not item["orig_reference_answer"]:
                raise DataError("empty, but the template needs it", field="orig_reference_answer")
            orders = [("ab", item), ("ba", swapped(item))] if both_orders else [("ab", item)]
            mine = [(i, order, judge.encode(apply_chat(judge.tokenizer, template.fill(it)))) for order, it in orders]
            longest = max(len(ids) for _, _, ids in mine)
            if limit and longest + reserve > limit:
                raise DataError(
                    f"the prompt is {longest} tokens, and with {reserve} more it exceeds the context of {limit}",
                    field="orig_response_A",
                )
            jobs.extend(mine)
        except (DataError, KeyError) as exc:
            results[i].error = str(exc)
    return jobs


def _combine_orders(r: PairJudgment) -> None:
    """P(A) from both orders (or the one read), flagged when A and B got little probability mass."""
    if r.p_ab is None:
        return
    r.p_a = combine(r.p_ab, r.p_ba) if r.p_ba is not None else r.p_ab
    masses = [m for m in (r.mass_ab, r.mass_ba) if m is not None]
    if min(masses) < LOW_PAIR_MASS:
        r.flag = f"low probability mass on A and B ({min(masses):.2g}): check the template and verdict tokens"


def _reads(
    judge: Any,
    seqs: list[list[int]],
    cue: list[int],
    mode: str,
    batch_size: int,
    n_samples: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    progress: Callable[[int, int], None] | None,
) -> dict[tuple[int, ...], tuple[float, float, str | None]]:
    """{prompt ids: (P(A) renormalised, raw mass, feedback)} for each distinct prompt."""
    tokens = judge.pair_tokens
    out: dict[tuple[int, ...], tuple[float, float, str | None]] = {}
    if mode == "score_only":
        logprobs = judge.engine.next_token_logprobs([s + cue for s in seqs], tokens.ids, batch_size, progress)
        for ids, lp in zip(seqs, logprobs):
            out[tuple(ids)] = (*win_probability(lp), None)
        return out
    for start in range(0, len(seqs), batch_size):
        part = seqs[start : start + batch_size]
        samples = judge.engine.generate_scored(
            part,
            tokens.ids,
            lambda ids: cut_at_cue(judge.tokenizer, ids, tokens),
            max_new_tokens,
            n_samples,
            temperature,
            seed + start,
        )
        for ids, group in zip(part, samples):
            reads = [win_probability(s.logprobs) for s in group]
            p, mass = float(np.mean([r[0] for r in reads])), float(np.mean([r[1] for r in reads]))
            out[tuple(ids)] = (p, mass, split_feedback(group[0].text, tokens.cue))
        if progress:
            progress(min(start + batch_size, len(seqs)), len(seqs))
    return out
