"""Pairwise judges trained on real data (issue 25's evidence): MT Bench pairs (two answers to one
question with different gold, ties left out) split by question into folds; on each fold the
untrained default judge, a pairwise RAFT judge and a CE judge (the verdict letter's cross-entropy)
trained for the same steps on the other folds, all scored on the fold's pairs in both orders.
Prints accuracy, Brier score, AUC and position consistency over every pair (each scored by the
judges that never saw its question) with bootstrap intervals, and paired verdicts (RAFT against CE
and against the untrained judge) from a bootstrap over questions, since a question's pairs share
answers.

    python bench/pairwise_train.py [--folds 5] [--steps 60] [--batch 4] [--max-tokens 1024] [--questions 0]

On this 2-core CPU a step of 2 pairs (4 sequences of up to 800 tokens) takes 10-15 s: the README's
table (`--steps 40 --batch 2 --max-tokens 800`, the 81 pairs of 23 questions that fit) took about
2 hours; a GPU runs the whole of MT Bench. `--questions N` keeps N questions (drawn by --seed).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raft.files import write_rows  # noqa: E402
from raft.judge import Judge  # noqa: E402
from raft.pair_report import pair_metrics  # noqa: E402
from raft.pairs import PREFERENCE, pairs_from_scores, prepare_pairs  # noqa: E402
from raft.prompts import apply_chat  # noqa: E402
from raft.train import TrainConfig, train  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "mt_bench_eval.json"
FIELDS = (
    "orig_instruction",
    "orig_response_A",
    "orig_response_B",
    "orig_reference_answer",
    "orig_criteria",
    PREFERENCE,
)
LOSSES = ("raft", "ce")


def folds_by_question(pairs: list[dict], folds: int, seed: int) -> list[list[int]]:
    """Pair indices per fold, every question's pairs in one fold."""
    questions = sorted({p["group"] for p in pairs})
    random.Random(seed).shuffle(questions)
    fold_of = {q: i % folds for i, q in enumerate(questions)}
    return [[i for i, p in enumerate(pairs) if fold_of[p["group"]] == k] for k in range(folds)]


def train_judge(pairs: list[dict], work: Path, loss: str, args: argparse.Namespace) -> Path:
    """A LoRA judge trained with `loss` on these pairs (both orders) for the budget every loss gets."""
    write_rows(work / "pairs.jsonl", [{k: p[k] for k in FIELDS} for p in pairs])
    if not (work / "ds").exists():
        prepare_pairs(work / "pairs.jsonl", work / "ds", seed=args.seed)
    config = TrainConfig(
        data=str(work / "ds"),
        output_dir=str(work / loss),
        loss=loss,
        max_steps=args.steps,
        batch_size=args.batch,
        learning_rate=args.lr,
        lora_r=16,
        lora_alpha=32,
        max_length=args.max_tokens + 64,
        eval_steps=10**9,
        save_steps=10**9,
        device=args.device,
        seed=args.seed,
    )
    return train(config)


def paired(pairs: list[dict], a: dict, b: dict, n_boot: int, seed: int) -> dict[str, list[float]]:
    """Differences a - b in accuracy and Brier score with 95% intervals, questions resampled."""
    pref = np.array([p[PREFERENCE] for p in pairs])
    groups = sorted({p["group"] for p in pairs})
    members = [np.array([i for i, p in enumerate(pairs) if p["group"] == g]) for g in groups]
    pa, pb = np.array(a["p"]), np.array(b["p"])

    def diffs(idx: np.ndarray) -> tuple[float, float]:
        acc = np.mean((pa[idx] > 0.5) == (pref[idx] > 0.5)) - np.mean((pb[idx] > 0.5) == (pref[idx] > 0.5))
        brier = np.mean((pa[idx] - pref[idx]) ** 2) - np.mean((pb[idx] - pref[idx]) ** 2)
        return float(acc), float(brier)

    rng = np.random.default_rng(seed)
    draws = np.array(
        [diffs(np.concatenate([members[j] for j in rng.integers(0, len(groups), len(groups))])) for _ in range(n_boot)]
    )
    value = diffs(np.arange(len(pairs)))
    out = {}
    for k, name in enumerate(("accuracy", "brier")):
        lo, hi = np.percentile(draws[:, k], [2.5, 97.5])
        out[name] = [round(value[k], 3), round(float(lo), 3), round(float(hi), 3)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--max-tokens", type=int, default=1024, help="leave out pairs whose prompt is longer")
    parser.add_argument("--questions", type=int, default=0, help="questions kept at random (0: all)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: what is there)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    pairs, counts = pairs_from_scores(args.data)
    untrained = Judge.load(device=args.device)
    template = untrained.pair_prompt("score_only")
    fits = [
        p
        for p in pairs
        if len(untrained.encode(apply_chat(untrained.tokenizer, template.for_item(p).fill(p)))) <= args.max_tokens
    ]
    if args.questions:
        kept = sorted({p["group"] for p in fits})
        random.Random(args.seed).shuffle(kept)
        fits = [p for p in fits if p["group"] in set(kept[: args.questions])]
    questions = len({p["group"] for p in fits})
    print(f"{len(fits)} pairs of {counts['pairs']}, {questions} questions", flush=True)

    work = Path(tempfile.mkdtemp(prefix="raft-pairwise-"))
    judged: dict[str, dict[str, list]] = {
        m: {"p": [None] * len(fits), "ab": [None] * len(fits), "ba": [None] * len(fits)} for m in ("untrained", *LOSSES)
    }
    for k, test in enumerate(folds_by_question(fits, args.folds, args.seed)):
        train_pairs = [fits[i] for i in range(len(fits)) if i not in set(test)]
        judges = {"untrained": untrained}
        for loss in LOSSES:
            start = time.time()
            run = train_judge(train_pairs, work / f"fold{k}", loss, args)
            print(
                f"fold {k + 1}/{args.folds}: {loss} trained on {len(train_pairs)} pairs in {time.time() - start:.0f} s",
                flush=True,
            )
            judges[loss] = Judge.load(run, device=args.device)
        for name, judge in judges.items():
            for i, j in zip(test, judge.compare([fits[i] for i in test], batch_size=args.batch)):
                judged[name]["p"][i], judged[name]["ab"][i], judged[name]["ba"][i] = j.p_a, j.p_ab, j.p_ba

    pref = [p[PREFERENCE] for p in fits]
    table = {}
    for name, got in judged.items():
        m = pair_metrics(pref, got["p"], got["ab"], got["ba"], n_boot=args.n_boot, seed=args.seed)
        table[name] = {k: m[k] for k in ("accuracy", "brier", "auc", "position_consistency", "position_bias")}
    verdicts = {
        "raft - ce": paired(fits, judged["raft"], judged["ce"], args.n_boot, args.seed),
        "raft - untrained": paired(fits, judged["raft"], judged["untrained"], args.n_boot, args.seed),
        "ce - untrained": paired(fits, judged["ce"], judged["untrained"], args.n_boot, args.seed),
    }
    print(
        json.dumps(
            {
                "pairs": len(fits),
                "folds": args.folds,
                "steps": args.steps,
                "batch": args.batch,
                "metrics": table,
                "paired": verdicts,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
