"""The report card on real data: MT Bench (320 rendered Prometheus rows, GPT-4 gold), split by
question 60/40 with a seed; SmolLM2-135M-Instruct untrained, RAFT LoRA and CE LoRA (equal steps)
scored on the held-out questions by RAIL (and CE also by decode); every metric with its bootstrap
interval, and the paired differences of the judges.

Each training row is written once per GPT-4 score (three integer targets): RAFT's squared error
averaged over them is the error against their mean plus a constant, and CE learns their spread.

    python bench/real.py [--steps 40] [--batch 4] [--max-length 1536] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raft.batch import score_file  # noqa: E402
from raft.data import prepare_dataset, read_jsonl  # noqa: E402
from raft.files import write_rows  # noqa: E402
from raft.judge import Judge  # noqa: E402
from raft.report import build_report, load_scored, to_markdown, write_report  # noqa: E402
from raft.train import TrainConfig, train  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "mt_bench_eval.json"


def split(rows: list[dict], seed: int, share: float = 0.6) -> tuple[list[dict], list[dict]]:
    """Rows split by question (`idx`): no question is on both sides."""
    questions = sorted({r["idx"] for r in rows})
    random.Random(seed).shuffle(questions)
    train_q = set(questions[: round(len(questions) * share)])
    return [r for r in rows if r["idx"] in train_q], [r for r in rows if r["idx"] not in train_q]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--max-length", type=int, default=1536)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for the scored files and reports (default: a temp dir)")
    args = parser.parse_args()

    work = Path(args.out or tempfile.mkdtemp(prefix="raft-real-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = json.loads(Path(args.data).read_text())
    train_rows, test_rows = split(rows, args.seed)
    expanded = [{**r, "orig_score": s} for r in train_rows for s in r["gpt4_score"]]
    write_rows(work / "train.jsonl", expanded)
    write_rows(work / "test.jsonl", test_rows)
    stats = prepare_dataset(work / "train.jsonl", work / "ds", seed=args.seed)
    print(
        f"MT Bench: {len(rows)} rows, {len({r['idx'] for r in rows})} questions; train {len(train_rows)} rows "
        f"({stats['rows_kept']} examples, one per GPT-4 score), test {len(test_rows)} rows; work in {work}",
        flush=True,
    )

    scored: dict[str, Path] = {}

    def score(name: str, judge: Judge, mode: str) -> None:
        start = time.time()
        out = work / f"{name}.jsonl"
        summary = score_file(judge, work / "test.jsonl", out, mode=mode, batch_size=4, max_new_tokens=16)
        print(f"{name}: {summary} in {time.time() - start:.0f} s", flush=True)
        scored[name] = out

    score("untrained-RAIL", Judge.load(device="cpu"), "score_only")
    for loss in ("raft", "ce"):
        start = time.time()
        config = TrainConfig(
            data=str(work / "ds"),
            output_dir=str(work / f"run-{loss}"),
            loss=loss,
            max_steps=args.steps,
            batch_size=args.batch,
            learning_rate=args.lr,
            max_length=args.max_length,
            gradient_checkpointing=True,
            eval_steps=10**9,
            save_steps=10**9,
            device="cpu",
            seed=args.seed,
        )
        run = Path(config.output_dir)
        if not (run / "judge.json").is_file():  # a rerun with the same --out reuses finished runs
            train(config, resume=(run / "config.yaml").is_file())
        losses = [r["loss"] for r in read_jsonl(run / "progress.jsonl") if "loss" in r]
        print(f"{loss}: {args.steps} steps in {time.time() - start:.0f} s; loss {losses[0]:.3f} -> {losses[-1]:.3f}")
        judge = Judge.load(run, device="cpu")
        score(f"{loss.upper()}-RAIL", judge, "score_only")
        if loss == "ce":
            score("CE-decode", judge, "decode")

    cards = {}
    for name, path in scored.items():
        cards[name] = build_report(load_scored(path), by=["category"], seed=args.seed)
        write_report(cards[name], work / f"{name}.json")
        print(f"\n## {name}\n\n{to_markdown(cards[name]).split(chr(10) + 'By `category`')[0]}")
        print("score mass:", _mean([r.get("score_mass") for r in load_scored(path)]))
    for a, b in (("RAFT-RAIL", "untrained-RAIL"), ("RAFT-RAIL", "CE-RAIL"), ("CE-RAIL", "CE-decode")):
        report = build_report(load_scored(scored[a]), other=load_scored(scored[b]), names=(a, b), seed=args.seed)
        write_report(report, work / f"{a}-vs-{b}.html")
        text = to_markdown(report)
        print("\n" + text[text.index(f"{a} vs {b}") :])
    print(f"\nScored files, JSON cards and HTML comparisons in {work}")


def _mean(values: list) -> str:
    good = [v for v in values if v is not None]
    return f"{sum(good) / len(good):.3f}" if good else "n/a"


if __name__ == "__main__":
    main()
