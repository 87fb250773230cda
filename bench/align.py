"""Aligning a judge to a (simulated) grader: which rows to label, and how much the judge gains.

MT Bench (rendered Prometheus rows, three GPT-4 scores each) stands in for a team: the grader's
label of a row is the GPT-4 mean rounded half up. SmolLM2-135M-Instruct scores every row once; a
labelling project fixes a seeded held-out set (fully labelled: the measurement), and training
labels are added in rounds, chosen by `random` and by `uncertain` (entropy of the untrained
judge's distribution). After each round a RAFT LoRA judge is trained from the base model with the
same budget (steps, batch, learning rate), the held-out rows are scored again, and the held-out
Pearson and quadratic-weighted kappa get 95% bootstrap intervals. Beside each fine-tuned judge
two calibrated ones are measured (`raft.align_calibrate`): `calibrate` fits a level map from the
untrained judge's distributions to the same training labels (no training, seconds), `both` fits one
to the fine-tuned judge's scores of those training rows. Prompts longer than
--max-length tokens have their response and reference cut in the middle (the same rows for
every judge), so that the run fits a CPU.

    python bench/align.py --measure             # one training step and one scoring batch, timed
    python bench/align.py --report --out DIR    # the table and plot again from a finished run's files
    python bench/align.py [--rows 40] [--heldout 16] [--rounds 8,16] [--steps 3] [--batch 2] [--parallel] [--out DIR]

The defaults fit about 40 minutes on a 2-core CPU shared with other work (measured there under
`nice -n 10`: 8 rows scored at <= 448 tokens in 97 s, one RAFT step at 2 x 448 tokens with LoRA on
the last 4 layers in about 65 s, one at 4 x 528 tokens on every layer in about 140 s); on a GPU
raise them (e.g. --rows 320 --heldout 96 --rounds 16,32,64,128 --steps 32 --batch 8
--max-length 1024 --reference --lora-layers 0).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.fit import fit_item, top_layers  # noqa: E402
from raft.align import compare_judges, kappa_interval, rescore_heldout, write_label_dataset  # noqa: E402
from raft.align_calibrate import calibrated_rows, fit_project_calibration  # noqa: E402
from raft.batch import score_file  # noqa: E402
from raft.data import read_jsonl  # noqa: E402
from raft.files import write_rows  # noqa: E402
from raft.judge import Judge  # noqa: E402
from raft.labels import LabelProject  # noqa: E402
from raft.prometheus import mean_gold  # noqa: E402
from raft.selection import next_rows  # noqa: E402
from raft.stats import bootstrap  # noqa: E402
from raft.train import TrainConfig, train  # noqa: E402

DATA = next(
    (
        p / "shared" / "benchmarks" / "mt_bench_eval.json"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "benchmarks" / "mt_bench_eval.json").is_file()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "mt_bench_eval.json",
)
"""MT Bench in ../shared/benchmarks beside the repository (looked for in every folder above it)."""


def fit_rows(rows: list[dict], judge: Judge, max_length: int, reference: bool = False) -> list[dict]:
    """Judge items of the benchmark rows cut to `max_length` tokens (`bench/fit.py`), each with the
    grader's label. Without `reference` the reference answer is left out (the no-reference template)."""
    out = []
    for r in rows:
        item = fit_item(r, judge, max_length, reference)
        grader = int(np.clip(np.floor(mean_gold(r["gpt4_score"]) + 0.5), 1, 5))
        out.append({**item, "grader": grader, "category": r["category"], "idx": r["idx"]})
    return out


def held_metrics(labels: list[int], pred: list[float]) -> dict:
    """Held-out Pearson and weighted kappa, each with its 95% bootstrap interval."""
    boot = bootstrap(labels, pred)
    return {
        "n": len(labels),
        "pearson": boot["pearson"],
        "mae": boot["mae"],
        "kappa": kappa_interval(labels, pred, (1, 5)),
    }


def measure(args: argparse.Namespace, work: Path) -> None:
    """Time one scoring batch and one training step at the chosen sizes (to size a full run)."""
    judge = Judge.load(args.model, device="cpu")
    rows = fit_rows(
        json.loads(Path(args.data).read_text())[: max(args.batch, 8)], judge, args.max_length, args.reference
    )
    t = time.perf_counter()
    judge.score(rows[:8], mode="score_only", batch_size=8)
    print(f"score 8 rows (batch 8, <= {args.max_length} tokens): {time.perf_counter() - t:.1f} s", flush=True)
    project = LabelProject.create(
        work / "m", [{**r, "probs": [0.2] * 5, "expected_score": 3.0} for r in rows], heldout=0
    )
    for key in project.keys:
        project.label(key, project.rows[key]["grader"])
    write_label_dataset(project, work / "m-ds")
    t = time.perf_counter()
    config = TrainConfig(
        data=str(work / "m-ds"),
        output_dir=str(work / "m-run"),
        max_steps=2,
        base_model=args.model,
        batch_size=args.batch,
        max_length=args.max_length + 16,
        lora_targets=top_layers(args.lora_layers),
        device="cpu",
    )
    train(config)
    print(f"train 2 steps at batch {args.batch} (model load included): {time.perf_counter() - t:.1f} s", flush=True)
    for line in (work / "m-run" / "progress.jsonl").read_text().splitlines():
        print(line, flush=True)


def round_row(
    project: LabelProject, strategy: str, n: int, work: Path, after: list[dict] | None = None, method: str = "fine-tune"
) -> dict:
    """One round's held-out figures from its re-scored file (or `after`, a calibrated judge's rows):
    Pearson, kappa and MAE with their intervals, and the paired comparison with the untrained judge
    (`raft.align.compare_judges`)."""
    after = after if after is not None else read_jsonl(work / f"{strategy}-{n}-heldout.jsonl")
    held = sorted(project.heldout)
    pred = {int(r["key"]): r["expected_score"] for r in after}
    row = {
        "strategy": strategy,
        "method": method,
        "labels": n,
        **held_metrics([project.rows[k]["grader"] for k in held], [pred[k] for k in held]),
    }
    paired = compare_judges(project, after)["compare"]["metrics"]
    row["paired"] = {
        m: {k: paired[m][k] for k in ("diff", "lo", "hi", "p_value", "verdict")} for m in ("pearson", "mae")
    }
    return row


def report_only(args: argparse.Namespace, work: Path) -> list[dict]:
    """The table's rows recomputed from the projects and re-scored files a finished run left in `work`."""
    results = []
    for strategy in args.strategies.split(","):
        project = LabelProject.open(work / strategy)
        held = sorted(project.heldout)
        untrained = held_metrics(
            [project.rows[k]["grader"] for k in held], [project.rows[k]["expected_score"] for k in held]
        )
        results.append({"strategy": strategy, "labels": 0, **untrained, "seconds": 0.0})
        saved = json.loads((work / f"results-{strategy}.json").read_text())["results"]
        seconds = {r["labels"]: r["seconds"] for r in saved if r.get("method", "fine-tune") == "fine-tune"}
        for n in args.rounds:
            results.append({**round_row(project, strategy, n, work), "seconds": seconds.get(n, 0.0)})
            results += [r for r in saved if r["labels"] == n and r.get("method") in ("calibrate", "both")]
    return results


def run_strategy(strategy: str, scored: list[dict], args: argparse.Namespace, work: Path) -> list[dict]:
    """Rounds of labels by one strategy; after each, a judge trained from the base and measured."""
    project = LabelProject.create(work / strategy, scored, heldout=args.heldout / len(scored), seed=args.seed)
    for key in sorted(project.heldout):  # the measurement set: every held-out row labelled
        project.label(key, project.rows[key]["grader"], labeller="simulated")
    held = sorted(project.heldout)
    labels = [project.rows[k]["grader"] for k in held]
    results = [
        {
            "strategy": strategy,
            "labels": 0,
            **held_metrics(labels, [project.rows[k]["expected_score"] for k in held]),
            "seconds": 0.0,
        }
    ]
    for n in args.rounds:
        t = time.perf_counter()
        have = project.counts()["train_labelled"]
        for key in next_rows(project, strategy, n - have, seed=args.seed):
            project.label(key, project.rows[key]["grader"], labeller="simulated")
        t_cal = time.perf_counter()
        cal = fit_project_calibration(project)
        row = round_row(project, strategy, n, work, calibrated_rows(project, cal), "calibrate")
        row["seconds"], row["levels"] = round(time.perf_counter() - t_cal, 3), cal.levels
        results.append(row)
        print(json.dumps(row), flush=True)
        t = time.perf_counter()
        data = work / f"{strategy}-{n}-ds"
        write_label_dataset(project, data, seed=args.seed)
        config = TrainConfig(
            data=str(data),
            output_dir=str(work / f"{strategy}-{n}-run"),
            base_model=args.model,
            max_steps=args.steps,
            batch_size=args.batch,
            learning_rate=args.lr,
            max_length=args.max_length + 16,
            eval_steps=10**6,
            save_steps=10**6,
            seed=args.seed,
            device="cpu",
            lora_targets=top_layers(args.lora_layers),
        )
        run = train(config)
        tuned = Judge.load(str(run), device="cpu")
        after = rescore_heldout(project, tuned, work / f"{strategy}-{n}-heldout.jsonl")
        row = round_row(project, strategy, n, work)
        row["seconds"] = round(time.perf_counter() - t, 1)
        results.append(row)
        print(json.dumps(row), flush=True)
        t = time.perf_counter()  # both: the fine-tuned judge's scores of its training rows fit its level map
        labels = project.labels()
        train_keys = [k for k in project.keys if k in labels and k not in project.heldout]
        judged = tuned.score([project.item(k) for k in train_keys], mode="score_only", batch_size=8)
        cal = fit_project_calibration(project, fit_on={k: j.to_dict() for k, j in zip(train_keys, judged)})
        scored = {int(r["key"]): r for r in after}
        row = round_row(project, strategy, n, work, calibrated_rows(project, cal, scored), "both")
        row["seconds"], row["levels"] = round(time.perf_counter() - t, 1), cal.levels
        results.append(row)
        print(json.dumps(row), flush=True)
    return results


def fmt(m: dict) -> str:
    return (
        f"{m['value']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]" if m["value"] is not None and m["lo"] is not None else "n/a"
    )


def table(results: list[dict]) -> str:
    lines = [
        "| strategy | method | training labels | held-out n | Pearson [95% CI] | weighted kappa [95% CI] "
        "| MAE [95% CI] | Pearson gain, paired | MAE gain, paired | time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        secs = r["seconds"]
        seconds = "-" if not secs else f"{secs / 60:.1f} min" if secs >= 60 else f"{secs:.2g} s"
        gains = [paired(r["paired"][m]) if "paired" in r else "" for m in ("pearson", "mae")]
        method = r.get("method", "fine-tune") if r["labels"] else "(untrained)"
        lines.append(
            f"| {r['strategy']} | {method} | {r['labels']} | {r['n']} | {fmt(r['pearson'])} | {fmt(r['kappa'])} "
            f"| {fmt(r['mae'])} | {gains[0]} | {gains[1]} | {seconds} |"
        )
    return "\n".join(lines)


def paired(c: dict) -> str:
    """A paired difference (after - untrained) with its interval, p and the one verdict."""
    verdict = {"A better": "**better**", "B better": "**worse**"}.get(c["verdict"], c["verdict"].split(" (")[0])
    return f"{c['diff']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}], p {c['p_value']:.2g}: {verdict}"


def plot(results: list[dict], out: Path) -> Path:
    """The learning curves (held-out Pearson and kappa against training labels) as a plotly HTML file."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("held-out Pearson", "held-out weighted kappa"))
    colours = {"random": "#636efa", "uncertain": "#ef553b"}
    strategies = list(dict.fromkeys(r["strategy"] for r in results))
    for k, strategy in enumerate(strategies):
        rs = [r for r in results if r["strategy"] == strategy and r.get("method", "fine-tune") == "fine-tune"]
        dodge = (k - (len(strategies) - 1) / 2) * 0.02 * max(r["labels"] for r in results)  # intervals side by side
        for col, metric in ((1, "pearson"), (2, "kappa")):
            m = [r[metric] for r in rs]
            fig.add_trace(
                go.Scatter(
                    x=[r["labels"] + dodge for r in rs],
                    y=[v["value"] for v in m],
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [(v["hi"] or v["value"]) - v["value"] for v in m],
                        "arrayminus": [v["value"] - (v["lo"] or v["value"]) for v in m],
                    },
                    mode="lines+markers",
                    name=strategy,
                    legendgroup=strategy,
                    showlegend=col == 1,
                    line={"color": colours.get(strategy)},
                    hovertext=[f"{r['labels']} labels" for r in rs],
                ),
                row=1,
                col=col,
            )
    ticks = sorted({0, *(r["labels"] for r in results)})
    fig.update_xaxes(title_text="training labels (0: untrained judge)", tickvals=ticks)
    fig.update_yaxes(zeroline=True, zerolinecolor="#888")
    fig.update_layout(width=1000, height=420, template="plotly_white", margin={"t": 40, "b": 40})
    fig.write_html(out, include_plotlyjs=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--rows", type=int, default=40, help="rows drawn (seeded) from the benchmark")
    parser.add_argument("--heldout", type=int, default=16, help="held-out rows (measured, never trained on)")
    parser.add_argument("--rounds", default="8,16", help="training labels after each round")
    parser.add_argument("--strategies", default="random,uncertain")
    parser.add_argument("--steps", type=int, default=3, help="RAFT steps per round (the same budget every round)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=448)
    parser.add_argument("--lora-layers", type=int, default=4, help="LoRA on the last N layers only (0: all)")
    parser.add_argument("--reference", action="store_true", help="keep the reference answer in the prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="base model (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--parallel", action="store_true", help="each strategy in its own process")
    parser.add_argument("--measure", action="store_true", help="only time one scoring batch and one training step")
    parser.add_argument("--report", action="store_true", help="only redo the table and plot from a finished --out")
    parser.add_argument("--out", default=None, help="folder for projects, runs and results (default: a temp dir)")
    args = parser.parse_args()
    args.rounds = [int(x) for x in args.rounds.split(",")]
    work = Path(args.out or tempfile.mkdtemp(prefix="raft-align-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.measure:
        measure(args, work)
        return
    if args.report:
        results = report_only(args, work)
        (work / "results.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
        plot(results, work / "align-curve.html")
        print(table(results))
        return

    start = time.perf_counter()
    scored = read_jsonl(work / "scored.jsonl") if (work / "scored.jsonl").is_file() else []
    if len(scored) < args.rows:  # score once; a rerun (or a strategy's process) reuses the scores
        judge = Judge.load(args.model, device="cpu")
        rows = json.loads(Path(args.data).read_text())
        rows = random.Random(args.seed).sample(rows, min(args.rows, len(rows)))
        write_rows(work / "rows.jsonl", fit_rows(rows, judge, args.max_length, args.reference))
        score_file(judge, work / "rows.jsonl", work / "scored.jsonl", mode="score_only", batch_size=8)
        del judge
    scored = read_jsonl(work / "scored.jsonl")
    print(f"scored {len(scored)} rows in {time.perf_counter() - start:.0f} s", flush=True)
    strategies = args.strategies.split(",")
    if args.parallel and len(strategies) > 1:  # one process per strategy: they share nothing but the scores
        argv = [a for a in sys.argv[1:] if a != "--parallel"]
        children = [subprocess.Popen([sys.executable, __file__, *argv, "--strategies", s]) for s in strategies]
        if any(child.wait() for child in children):
            raise SystemExit("a strategy's process failed; see above")
    else:
        for strategy in strategies:
            found = run_strategy(strategy, scored, args, work)
            (work / f"results-{strategy}.json").write_text(json.dumps({"args": vars(args), "results": found}))
    results = [r for s in strategies for r in json.loads((work / f"results-{s}.json").read_text())["results"]]
    (work / "results.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    plot(results, work / "align-curve.html")
    print(table(results))
    print(f"\ntotal {time.perf_counter() - start:.0f} s; results, plot and runs in {work}", flush=True)


if __name__ == "__main__":
    main()
