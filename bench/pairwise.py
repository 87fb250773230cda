"""Pairwise judging on real data: MT Bench pairs (every two answers to one question with different
gold, the gold the mean of three GPT-4 scores; ties left out), judged by the untrained default
model (SmolLM2-135M-Instruct) in both orders with the relative-grading template: accuracy against
the preference, AUC, Brier score and position consistency with bootstrap intervals, the position
bias (mean gap between the orders) and the raw mass on A and B.

    python bench/pairwise.py [--pairs 60] [--max-tokens 1536] [--seed 0] [--model MODEL]

`--pairs` draws that many pairs at random (by --seed) among those whose prompt fits --max-tokens
(0: all), so that a CPU run stays affordable; the count left out for length is printed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raft.judge import Judge  # noqa: E402
from raft.pair_report import pair_metrics  # noqa: E402
from raft.pairs import pairs_from_scores  # noqa: E402
from raft.prompts import apply_chat  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "mt_bench_eval.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--model", help="judge (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--pairs", type=int, default=60, help="pairs drawn at random (0: all)")
    parser.add_argument("--max-tokens", type=int, default=1536, help="leave out pairs whose prompt is longer")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    pairs, counts = pairs_from_scores(args.data)
    judge = Judge.load(args.model, device="cpu")
    template = judge.pair_prompt("score_only")

    def length(pair: dict) -> int:
        return len(judge.encode(apply_chat(judge.tokenizer, template.for_item(pair).fill(pair))))

    fitting = [p for p in pairs if not args.max_tokens or length(p) <= args.max_tokens]
    random.Random(args.seed).shuffle(fitting)
    chosen = fitting[: args.pairs] if args.pairs else fitting
    start = time.time()
    judged = judge.compare(chosen, batch_size=args.batch_size)
    seconds = time.time() - start
    kept = [(p, j) for p, j in zip(chosen, judged) if j.p_a is not None]
    metrics = pair_metrics(
        [p["orig_preference"] for p, _ in kept],
        [j.p_a for _, j in kept],
        [j.p_ab for _, j in kept],
        [j.p_ba for _, j in kept],
        n_boot=args.n_boot,
        seed=args.seed,
    )
    summary = {
        "data": Path(args.data).name,
        "judge": args.model or "SmolLM2-135M-Instruct (untrained)",
        "pairs_from_scores": counts,
        "left_out_for_length": len(pairs) - len(fitting),
        "pairs_judged": len(kept),
        "errors": len(chosen) - len(kept),
        "seconds": round(seconds, 1),
        "share_A_preferred": float(np.mean([p["orig_preference"] for p, _ in kept])),
        "mean_mass_AB": float(np.mean([j.mass_ab for _, j in kept])),
        "mean_mass_BA": float(np.mean([j.mass_ba for _, j in kept])),
        **{k: metrics[k] for k in ("accuracy", "auc", "brier", "position_consistency", "position_bias")},
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
