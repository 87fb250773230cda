"""The report card on real data: MT Bench (320 rendered Prometheus rows, 80 questions, the gold the
mean of three GPT-4 scores); SmolLM2-135M-Instruct untrained, RAFT LoRA and CE LoRA (one budget:
the same steps, batch and max length) scored by RAIL (CE also by decode), every metric with its
bootstrap interval, and the paired comparisons of the judges (a winner only where both tests agree).

The rows are prepared as a user would (`prepare` on the benchmark file as shipped): RAFT regresses
on the float gold, CE trains once per GPT-4 score.

    python bench/real.py [--steps 40] [--batch 4] [--max-length 1536] [--out DIR]
        one split by question, 60% train / 40% test
    python bench/real.py --folds 5 [--steps ...] [--cut]
        K-fold cross-validation by question: every row is predicted once by a judge that never saw
        its question; the metrics and paired tests are on all 320 rows

With --cut every row is first cut in the middle to fit --max-length tokens (`bench/fit.py`), so all
rows train and every judge scores the same shorter prompts: what makes a CPU run affordable.
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

from bench.fit import fit_item, top_layers  # noqa: E402
from raft.batch import score_file  # noqa: E402
from raft.data import prepare_dataset, read_jsonl  # noqa: E402
from raft.files import write_rows  # noqa: E402
from raft.judge import Judge  # noqa: E402
from raft.report import build_report, load_scored, to_markdown, write_report  # noqa: E402
from raft.train import TrainConfig, train  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "mt_bench_eval.json"
COMPARISONS = (("RAFT-RAIL", "untrained-RAIL"), ("RAFT-RAIL", "CE-RAIL"), ("CE-RAIL", "untrained-RAIL"))


def split(rows: list[dict], seed: int, share: float = 0.6) -> tuple[list[dict], list[dict]]:
    """Rows split by question (`idx`): no question is on both sides."""
    questions = sorted({r["idx"] for r in rows})
    random.Random(seed).shuffle(questions)
    train_q = set(questions[: round(len(questions) * share)])
    return [r for r in rows if r["idx"] in train_q], [r for r in rows if r["idx"] not in train_q]


def folds(rows: list[dict], k: int, seed: int) -> list[tuple[list[dict], list[dict]]]:
    """K (train, test) pairs by question: each question's rows are in exactly one test fold."""
    questions = sorted({r["idx"] for r in rows})
    random.Random(seed).shuffle(questions)
    out = []
    for f in range(k):
        test_q = set(questions[f::k])
        out.append(([r for r in rows if r["idx"] not in test_q], [r for r in rows if r["idx"] in test_q]))
    return out


class Bench:
    """One budget (steps, batch, max length, learning rate) for every judge trained, and the scoring."""

    def __init__(self, args: argparse.Namespace, work: Path):
        self.args, self.work = args, work

    def train(self, loss: str, rows: list[dict], name: str) -> Judge:
        """Prepare `rows` as shipped and train one LoRA judge on them (a finished run is reused)."""
        folder = self.work / name
        folder.mkdir(parents=True, exist_ok=True)
        write_rows(folder / "train.jsonl", rows)
        stats = prepare_dataset(folder / "train.jsonl", folder / "ds", seed=self.args.seed)
        start = time.time()
        config = TrainConfig(
            data=str(folder / "ds"),
            output_dir=str(folder / "run"),
            loss=loss,
            max_steps=self.args.steps,
            batch_size=self.args.batch,
            learning_rate=self.args.lr,
            max_length=self.args.max_length,
            gradient_checkpointing=self.args.lora_layers == 0,
            lora_targets=top_layers(self.args.lora_layers),
            eval_steps=10**9,
            save_steps=10**9,
            device="cpu",
            seed=self.args.seed,
        )
        run = Path(config.output_dir)
        if not (run / "judge.json").is_file() or not (run / "result.json").is_file():
            train(config, resume=(run / "checkpoints").is_dir())
        losses = [r["loss"] for r in read_jsonl(run / "progress.jsonl") if "loss" in r]
        print(
            f"{name}: {stats['rows_kept']} rows ({stats['fractional_gold']} with a fractional gold), "
            f"{self.args.steps} steps in {time.time() - start:.0f} s; loss {losses[0]:.3f} -> {losses[-1]:.3f}",
            flush=True,
        )
        return Judge.load(run, device="cpu")

    def score(self, name: str, judge: Judge, rows: list[dict], mode: str = "score_only") -> Path:
        """Score rows into work/name.jsonl (a finished file is reused) and return its path."""
        out = self.work / f"{name}.jsonl"
        write_rows(self.work / f"{name}.input.jsonl", rows)
        start = time.time()
        summary = score_file(judge, self.work / f"{name}.input.jsonl", out, mode=mode, batch_size=4, max_new_tokens=16)
        print(f"{name}: {summary} in {time.time() - start:.0f} s", flush=True)
        return out


def report(scored: dict[str, Path], work: Path, seed: int, comparisons=COMPARISONS) -> None:
    """Each judge's card (overall, then the paired comparisons), printed and written to work/."""
    for name, path in scored.items():
        card = build_report(load_scored(path), by=["category"], seed=seed)
        write_report(card, work / f"{name}.json")
        print(f"\n## {name}\n\n{to_markdown(card).split(chr(10) + 'By **category**')[0]}")
        print("score mass:", _mean([r.get("score_mass") for r in load_scored(path)]))
    for a, b in comparisons:
        if a in scored and b in scored:
            card = build_report(load_scored(scored[a]), other=load_scored(scored[b]), names=(a, b), seed=seed)
            write_report(card, work / f"{a}-vs-{b}.html")
            text = to_markdown(card)
            print("\n" + text[text.index(f"{a} vs {b}") :])
    print(f"\nScored files, JSON cards and HTML comparisons in {work}", flush=True)


def run_split(bench: Bench, rows: list[dict]) -> dict[str, Path]:
    train_rows, test_rows = split(rows, bench.args.seed)
    print(f"train {len(train_rows)} rows, test {len(test_rows)} rows (by question)", flush=True)
    scored = {"untrained-RAIL": bench.score("untrained-RAIL", Judge.load(device="cpu"), test_rows)}
    for loss in ("raft", "ce"):
        judge = bench.train(loss, train_rows, f"run-{loss}")
        scored[f"{loss.upper()}-RAIL"] = bench.score(f"{loss.upper()}-RAIL", judge, test_rows)
        if loss == "ce":
            scored["CE-decode"] = bench.score("CE-decode", judge, test_rows, mode="decode")
    return scored


def run_folds(bench: Bench, rows: list[dict], k: int) -> dict[str, Path]:
    """K-fold CV by question: each fold's judges score only its held-out questions; the fold files
    are merged into one file of all rows per judge (`row` the benchmark's row number)."""
    numbered = [{**r, "bench_row": i} for i, r in enumerate(rows)]
    scored = {"untrained-RAIL": bench.score("untrained-RAIL", Judge.load(device="cpu"), numbered)}
    parts: dict[str, list[Path]] = {"RAFT-RAIL": [], "CE-RAIL": []}
    for f, (train_rows, test_rows) in enumerate(folds(numbered, k, bench.args.seed)):
        print(f"fold {f + 1}/{k}: train {len(train_rows)} rows, test {len(test_rows)} rows", flush=True)
        for loss in ("raft", "ce"):
            judge = bench.train(loss, train_rows, f"fold{f}-{loss}")
            parts[f"{loss.upper()}-RAIL"].append(bench.score(f"fold{f}-{loss.upper()}-RAIL", judge, test_rows))
            del judge
    for name, files in parts.items():
        merged = sorted((r for p in files for r in load_scored(p)), key=lambda r: r["bench_row"])
        scored[name] = write_rows(bench.work / f"{name}.jsonl", [{**r, "row": r["bench_row"]} for r in merged])
    untrained = sorted(load_scored(scored["untrained-RAIL"]), key=lambda r: r["bench_row"])
    write_rows(scored["untrained-RAIL"], [{**r, "row": r["bench_row"]} for r in untrained])
    return scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--folds", type=int, default=0, help="K-fold CV by question (0: one 60/40 split)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--max-length", type=int, default=1536)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lora-layers", type=int, default=0, help="LoRA on the last N layers only (0: all)")
    parser.add_argument("--cut", action="store_true", help="cut every row to fit --max-length (train and score)")
    parser.add_argument("--out", default=None, help="folder for the scored files and reports (default: a temp dir)")
    args = parser.parse_args()
    if args.folds == 1 or args.folds < 0:
        parser.error("--folds is 0 (one split) or at least 2")

    work = Path(args.out or tempfile.mkdtemp(prefix="raft-real-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = json.loads(Path(args.data).read_text())
    print(
        f"MT Bench: {len(rows)} rows, {len({r['idx'] for r in rows})} questions; budget per judge: {args.steps} "
        f"steps x batch {args.batch}, max length {args.max_length}, lr {args.lr}; work in {work}",
        flush=True,
    )
    start = time.time()
    if args.cut:
        rows = cut_rows(rows, args.max_length - 16)
        print(f"rows cut to fit {args.max_length - 16} prompt tokens in {time.time() - start:.0f} s", flush=True)
    bench = Bench(args, work)
    scored = run_folds(bench, rows, args.folds) if args.folds else run_split(bench, rows)
    comparisons = COMPARISONS if args.folds else (*COMPARISONS, ("CE-RAIL", "CE-decode"))
    report(scored, work, args.seed, comparisons)
    print(f"total {time.time() - start:.0f} s")


def cut_rows(rows: list[dict], max_length: int) -> list[dict]:
    """The rows as judge items (rater scores kept for CE) cut to `max_length` prompt tokens, with
    their question and category."""
    judge = Judge.load(device="cpu")
    return [{**fit_item(r, judge, max_length), "idx": r["idx"], "category": r["category"]} for r in rows]


def _mean(values: list) -> str:
    good = [v for v in values if v is not None]
    return f"{sum(good) / len(good):.3f}" if good else "n/a"


if __name__ == "__main__":
    main()
