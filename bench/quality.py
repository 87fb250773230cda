"""The papers' comparison on what runs here: SmolLM2-135M with LoRA on synthetic judge data with
noisy gold scores, trained with each loss of the table (RAFT and CE by default; `--losses` picks any
rows of raft.loss.LOSSES, e.g. emd) for the same steps, then scored on held-out rows by RAIL
(expected score) and by decode (the written digit). Untrained model as the baseline.

    python bench/quality.py [--losses raft,ce] [--steps 120] [--batch 4] [--train 480] [--test 120] [--noise 0.6]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raft.data import prepare_dataset, read_jsonl  # noqa: E402
from raft.files import write_rows  # noqa: E402
from raft.judge import Judge  # noqa: E402
from raft.loss import LOSSES  # noqa: E402
from raft.metrics import agreement  # noqa: E402
from raft.synthetic import generate_rows  # noqa: E402
from raft.train import TrainConfig, train  # noqa: E402


def evaluate(judge: Judge, items: list[dict], gold: list[float]) -> dict[str, dict]:
    out = {}
    rail = judge.score(items, mode="score_only", batch_size=8)
    out["RAIL"] = {
        **agreement(gold, [r.expected_score for r in rail]),
        "mass": sum(r.score_mass for r in rail) / len(rail),
    }
    decoded = judge.score(items, mode="decode", batch_size=8, max_new_tokens=16)
    out["decode"] = {**agreement(gold, [r.expected_score for r in decoded]), "mass": None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", default="raft,ce", help=f"comma-separated, of: {', '.join(LOSSES)}")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--train", type=int, default=480)
    parser.add_argument("--test", type=int, default=120)
    parser.add_argument("--noise", type=float, default=0.6)
    parser.add_argument("--lr", type=float, default=3e-4)
    args = parser.parse_args()
    losses = [name.strip() for name in args.losses.split(",") if name.strip()]
    if unknown := [name for name in losses if name not in LOSSES]:
        parser.error(f"unknown loss {', '.join(unknown)}; choose from {', '.join(LOSSES)}")

    work = Path(tempfile.mkdtemp(prefix="raft-quality-"))
    rows = generate_rows(args.train + args.test, seed=11, noise=args.noise)
    write_rows(work / "train.jsonl", rows[: args.train])
    prepare_dataset(work / "train.jsonl", work / "ds", seed=0)
    test = rows[args.train :]
    gold = [float(r["orig_score"]) for r in test]

    table = {}
    start = time.time()
    table["untrained"] = evaluate(Judge.load(device="cpu"), test, gold)
    print(f"untrained scored in {time.time() - start:.0f} s", flush=True)
    for loss in losses:
        start = time.time()
        config = TrainConfig(
            data=str(work / "ds"),
            output_dir=str(work / loss),
            loss=loss,
            max_steps=args.steps,
            batch_size=args.batch,
            learning_rate=args.lr,
            lora_r=16,
            lora_alpha=32,
            eval_steps=10**9,
            save_steps=10**9,
            device="cpu",
            seed=0,
        )
        run = train(config)
        took = time.time() - start
        losses = [r["loss"] for r in read_jsonl(run / "progress.jsonl") if "loss" in r]
        print(f"{loss}: {args.steps} steps in {took:.0f} s; loss {losses[0]:.3f} -> {losses[-1]:.3f}", flush=True)
        table[loss] = evaluate(Judge.load(run, device="cpu"), test, gold)

    print(
        f"\nSmolLM2-135M-Instruct, LoRA r16, {args.steps} steps x batch {args.batch}, {args.train} training rows, "
        f"{args.test} held-out rows, gold noise sd {args.noise}"
    )
    print(
        f"{'model':<11}{'scoring':<8}{'Pearson':>9}{'Spearman':>10}{'Kendall':>9}{'RMSE':>7}{'no score':>10}{'mass':>7}"
    )
    for model, methods in table.items():
        for method, m in methods.items():
            cells = [f"{m[k]:.3f}" if m[k] is not None else "n/a" for k in ("pearson", "spearman", "kendall", "rmse")]
            mass = f"{m['mass']:.2f}" if m["mass"] is not None else ""
            print(
                f"{model:<11}{method:<8}{cells[0]:>9}{cells[1]:>10}{cells[2]:>9}{cells[3]:>7}"
                f"{m['n_missing_pred']:>10}{mass:>7}"
            )


if __name__ == "__main__":
    main()
