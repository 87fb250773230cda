"""Batch scoring speed on SmolLM2-135M (CUDA when present, else CPU), side by side in one run:

1. score-only RAIL: rows/s, and its wall time against the bare forward passes over the same
   pre-tokenized, length-bucketed batches (the limit: nothing but the model);
2. the field's standard way: generate the feedback (greedy, up to 256 new tokens) and parse the
   digit, with the mean number of tokens generated and the parse failures;
3. feedback scoring (CoT-RAIL) single-pass against two-pass (generate, then run the model again
   over prompt + feedback + cue), with the largest difference in expected score;
4. padding: padded tokens as a share of the tokens processed by RAIL;
5. where vLLM is installed (requirements-vllm*.txt): the vLLM engine on the same rows, score-only
   and feedback, rows/s and the ratio to the transformers engine, and the largest difference.

    python bench/scoring.py [--rows 200] [--gen-rows 24] [--batch 8] [--max-new-tokens 256] [--sections 1,2,3,5]
    PYTHONPATH=. .venv-vllm/bin/python bench/scoring.py    # with the vLLM rows
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raft.judge import Judge  # noqa: E402
from raft.scores import parse_result  # noqa: E402
from raft.synthetic import generate_rows  # noqa: E402


def realistic_rows(judge: Judge, n: int, lo: int = 300, hi: int = 1500, seed: int = 0) -> list[dict]:
    """Synthetic rows whose rendered prompts are lo..hi tokens, spread over that range."""
    rng = random.Random(seed)
    rows = []
    while len(rows) < n:
        signals, filler = rng.randint(1, 22), rng.randint(0, 8)
        row = generate_rows(1, seed=rng.randrange(10**9), filler=(filler, filler), signals=signals)[0]
        if lo <= len(judge.encode(judge.render(row))) <= hi:
            rows.append(row)
    return rows


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    value = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, value


@torch.inference_mode()
def bare_forward(judge: Judge, seqs: list[list[int]], batch: int) -> None:
    """The model alone on the same bucketed, left-padded batches, output head at the last position."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    batches = []
    for start in range(0, len(order), batch):
        ids, mask = judge.engine._left_pad([seqs[i] for i in order[start : start + batch]])
        batches.append((ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)))
    for ids, mask, positions in batches:
        judge.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--gen-rows", type=int, default=24, help="rows for the generation comparisons")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--sections", default="1,2,3,5", help="which measures to run (1 includes 4)")
    args = parser.parse_args()
    sections = set(args.sections.split(","))

    judge = Judge.load()
    device = judge.device
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    )
    rows = realistic_rows(judge, args.rows)
    lengths = [len(judge.encode(judge.render(r))) for r in rows]
    print(
        f"SmolLM2-135M-Instruct on {where}, {judge.model.dtype}; {len(rows)} rows of {min(lengths)}-{max(lengths)} "
        f"tokens (mean {np.mean(lengths):.0f}); batch {args.batch}",
        flush=True,
    )

    judge.score(rows[: args.batch], batch_size=args.batch)  # warm-up
    t_rail, rail = timed(lambda: judge.score(rows, batch_size=args.batch))
    if "1" in sections:
        limit(judge, rows, args.batch, t_rail)
    sub = rows[: args.gen_rows]
    if "2" in sections:
        decode(judge, rows, sub, args, t_rail)
    if "3" in sections:
        feedback(judge, sub, args)
    if "5" in sections and importlib.util.find_spec("vllm") is not None:
        engines(judge, rows, sub, args, t_rail, rail)
    elif "5" in sections:
        print("5. vLLM is not installed here: run with the requirements-vllm-cpu.txt environment for its rows")


def limit(judge: Judge, rows: list[dict], batch: int, t_rail: float) -> None:
    padding = dict(judge.padding)
    seqs = [judge.encode(judge.render(r)) for r in rows]
    t_limit, _ = timed(lambda: bare_forward(judge, seqs, batch))
    share = padding["padded_tokens"] / (padding["real_tokens"] + padding["padded_tokens"])
    print(
        f"1. score-only RAIL: {len(rows) / t_rail:.2f} rows/s ({t_rail:.1f} s); bare forward passes "
        f"{t_limit:.1f} s; RAIL / limit = {t_rail / t_limit:.2f}x (target <= 1.25x)",
        flush=True,
    )
    print(
        f"4. padding: {padding['padded_tokens']} of {padding['real_tokens'] + padding['padded_tokens']} "
        f"processed tokens = {share:.1%} (target <= 10%)",
        flush=True,
    )


def decode(judge: Judge, rows: list[dict], sub: list[dict], args: argparse.Namespace, t_rail: float) -> None:
    t_rail_sub, _ = timed(lambda: judge.score(sub, batch_size=args.batch))
    seqs_sub = [judge.encode(judge.prompt(r, "decode")) for r in sub]
    t_decode, texts = timed(lambda: judge.generate(seqs_sub, args.max_new_tokens, batch_size=args.batch))
    generated = np.mean([len(judge.encode(t[0])) for t in texts])
    failures = sum(1 for (t,) in texts if parse_result(t, judge.scale)[1] is None)
    print(
        f"2. generate + parse (up to {args.max_new_tokens} new tokens, greedy) on {len(sub)} rows: "
        f"{t_decode:.1f} s vs RAIL {t_rail_sub:.1f} s: RAIL {t_decode / t_rail_sub:.1f}x faster "
        f"(target >= 5x on CPU); {generated:.0f} tokens generated per row on average; parse failures "
        f"{failures}/{len(sub)}; against RAIL's {len(rows)}-row throughput: "
        f"{(t_decode / len(sub)) / (t_rail / len(rows)):.1f}x",
        flush=True,
    )


def feedback(judge: Judge, sub: list[dict], args: argparse.Namespace) -> None:
    t_single, single = timed(
        lambda: judge.score(sub, mode="feedback", batch_size=args.batch, max_new_tokens=args.max_new_tokens)
    )
    t_two, two = timed(
        lambda: judge.score(
            sub, mode="feedback", batch_size=args.batch, max_new_tokens=args.max_new_tokens, single_pass=False
        )
    )
    diff = max(abs(a.expected_score - b.expected_score) for a, b in zip(single, two))
    print(
        f"3. feedback (CoT-RAIL) on {len(sub)} rows: single-pass {t_single:.1f} s, two-pass {t_two:.1f} s: "
        f"{t_two / t_single:.2f}x (target >= 1.2x); largest expected-score difference {diff:.2e}",
        flush=True,
    )


def engines(judge: Judge, rows: list[dict], sub: list[dict], args: argparse.Namespace, t_rail: float, rail) -> None:
    """The vLLM engine on the same rows: rows/s, the ratio to transformers, the largest difference."""
    start = time.perf_counter()
    vllm = Judge.load(device="cpu" if judge.device.type == "cpu" else None, engine="vllm")
    t_start = time.perf_counter() - start
    vllm.score(rows[: args.batch])  # warm-up
    t_v, v = timed(lambda: vllm.score(rows, batch_size=args.batch))
    diff = max(float(np.max(np.abs(np.array(a.probs) - np.array(b.probs)))) for a, b in zip(rail, v))
    print(
        f"5a. vLLM score-only: {len(rows) / t_v:.2f} rows/s ({t_v:.1f} s) vs transformers {len(rows) / t_rail:.2f} "
        f"rows/s: {t_rail / t_v:.2f}x; largest probability difference {diff:.1e}; engine start {t_start:.0f} s",
        flush=True,
    )
    if vllm.engine.threads is not None:
        print(
            f"   threads: vLLM CPU engine {vllm.engine.threads or 'chosen by vLLM, see its log'} "
            "(VLLM_CPU_OMP_THREADS_BIND="
            f"{os.environ.get('VLLM_CPU_OMP_THREADS_BIND')}, VLLM_CPU_NUM_OF_RESERVED_CPU="
            f"{os.environ.get('VLLM_CPU_NUM_OF_RESERVED_CPU')}), transformers {torch.get_num_threads()} "
            f"(torch), machine {os.cpu_count()} CPUs",
            flush=True,
        )
    kwargs = dict(mode="feedback", batch_size=args.batch, max_new_tokens=args.max_new_tokens)
    t_hf, a = timed(lambda: judge.score(sub, **kwargs))
    t_vf, b = timed(lambda: vllm.score(sub, **kwargs))
    same = sum(x.feedback == y.feedback for x, y in zip(a, b))
    worst = max(abs(x.expected_score - y.expected_score) for x, y in zip(a, b))
    print(
        f"5b. vLLM feedback (CoT-RAIL, greedy, up to {args.max_new_tokens} new tokens) on {len(sub)} rows: "
        f"{t_vf:.1f} s vs transformers single-pass {t_hf:.1f} s: {t_hf / t_vf:.2f}x; same feedback text on "
        f"{same}/{len(sub)} rows; largest expected-score difference {worst:.1e}",
        flush=True,
    )


if __name__ == "__main__":
    main()
