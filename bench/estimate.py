"""System estimates on real data: how much a (weak) judge's scores add to a few human labels.

MT Bench (320 rendered Prometheus rows, 80 questions) stands in for a team's system output: the
"human" label of a row is the mean of its three GPT-4 scores, and SmolLM2-135M-Instruct (untrained)
scores every row once by RAIL (prompts cut in the middle to fit --max-length tokens,
`bench/fit.py`; the scored file is cached in --out, so a rerun reuses it). Then, for each n in
--ns and each of --draws random draws, all but n labels are hidden and the mean label of the 320
rows is estimated three ways: the labels alone (a t interval), and PPI++ with power tuning
(`raft.estimate`). The truth is the mean of all 320 labels, so each draw's 95% interval either
covers it or not; the table gives coverage, mean width and the effective number of labels
(n times the labels-only variance over the PPI variance).

    python bench/estimate.py [--ns 20,40,80,160] [--draws 200] [--max-length 512] [--out DIR]
    python bench/estimate.py --plot-png docs/estimate-bench.png   # also render the plot via chromium
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.fit import fit_item  # noqa: E402
from raft.batch import score_file  # noqa: E402
from raft.data import read_jsonl  # noqa: E402
from raft.estimate import ppi_mean  # noqa: E402
from raft.files import write_rows  # noqa: E402
from raft.judge import Judge  # noqa: E402
from raft.prometheus import mean_gold  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "mt_bench_eval.json"
CACHE = Path.home() / ".cache" / "raft-judge-studio" / "bench-estimate"


def scored_rows(args: argparse.Namespace) -> list[dict]:
    """Every benchmark row scored once by the default model (reused from --out when complete)."""
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    rows = json.loads(Path(args.data).read_text())
    out = work / f"scored-{args.max_length}.jsonl"
    have = read_jsonl(out) if out.is_file() else []
    if len([r for r in have if "expected_score" in r]) < len(rows):
        start = time.time()
        judge = Judge.load(device="cpu")
        source = work / f"rows-{args.max_length}.jsonl"
        if not source.is_file():
            items = [
                {
                    **fit_item(r, judge, args.max_length),
                    "human": mean_gold(r["gpt4_score"]),
                    "category": r["category"],
                    "idx": r["idx"],
                    "response_source": r["response_source"],
                }
                for r in rows
            ]
            write_rows(source, items)
        summary = score_file(judge, source, out, mode="score_only", batch_size=8, chunk_rows=32)
        print(f"scored: {summary} in {time.time() - start:.0f} s", flush=True)
        have = read_jsonl(out)
    return sorted(have, key=lambda r: r["row"])


def draws(human: np.ndarray, judge: np.ndarray, ns: list[int], n_draws: int, seed: int) -> list[dict]:
    """For each n: n_draws random sets of n labelled rows (the rest judged only); coverage of the
    truth (the mean of all labels), mean width and effective labels of PPI++ and the labels alone."""
    truth = float(human.mean())
    rng = np.random.default_rng(seed)
    out = []
    for n in ns:
        cover = {"ppi": 0, "labels_only": 0}
        width: dict[str, list[float]] = {"ppi": [], "labels_only": []}
        effective, lambdas = [], []
        for _ in range(n_draws):
            chosen = np.zeros(len(human), dtype=bool)
            chosen[rng.choice(len(human), n, replace=False)] = True
            r = ppi_mean(human[chosen], judge[chosen], judge[~chosen])
            for key in cover:
                cover[key] += r[key]["lo"] <= truth <= r[key]["hi"]
                width[key].append(r[key]["hi"] - r[key]["lo"])
            effective.append(r["effective_labels"])
            lambdas.append(r["ppi"]["lambda"])
        out.append(
            {
                "n": n,
                "draws": n_draws,
                "truth": truth,
                **{f"coverage_{k}": cover[k] / n_draws for k in cover},
                **{f"width_{k}": float(np.mean(width[k])) for k in width},
                "effective_labels": float(np.median(effective)),
                "lambda": float(np.median(lambdas)),
            }
        )
    return out


def table(results: list[dict]) -> str:
    """The README's table."""
    lines = [
        "| labels n | PPI++ coverage | labels-alone coverage | PPI++ mean width | labels-alone mean width "
        "| width ratio | effective labels (median) | lambda (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['n']} | {r['coverage_ppi']:.1%} | {r['coverage_labels_only']:.1%} | {r['width_ppi']:.3f} "
            f"| {r['width_labels_only']:.3f} | {r['width_ppi'] / r['width_labels_only']:.3f} "
            f"| {r['effective_labels']:.1f} | {r['lambda']:.2f} |"
        )
    return "\n".join(lines)


def plot(results: list[dict], out: Path, caption: str) -> Path:
    """Coverage and mean width against n, PPI++ beside the labels alone, as a plotly HTML file."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("coverage of the true mean (target 95%)", "mean 95% interval width")
    )
    ns = [r["n"] for r in results]
    for key, name, colour in (("ppi", "labels + judge (PPI++)", "#2563eb"), ("labels_only", "labels alone", "#f97316")):
        fig.add_scatter(
            x=ns,
            y=[r[f"coverage_{key}"] for r in results],
            mode="lines+markers",
            name=name,
            line={"color": colour},
            legendgroup=key,
            row=1,
            col=1,
        )
        fig.add_scatter(
            x=ns,
            y=[r[f"width_{key}"] for r in results],
            mode="lines+markers",
            name=name,
            line={"color": colour},
            legendgroup=key,
            showlegend=False,
            row=1,
            col=2,
        )
    fig.add_hline(y=0.95, line_dash="dash", line_color="#6b7280", row=1, col=1)
    fig.update_xaxes(title_text="labelled rows n (of 320)", type="log", tickvals=ns, ticktext=[str(n) for n in ns])
    fig.update_yaxes(range=[0.8, 1.01], tickformat=".0%", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(
        width=1000,
        height=420,
        template="plotly_white",
        margin={"t": 90, "b": 80},
        title={"text": caption, "font": {"size": 13}},
    )
    fig.write_html(out, include_plotlyjs=True)
    return out


def to_png(html_path: Path, png: Path) -> Path:
    """The plot's HTML rendered by Debian's chromium (headless, via playwright) to a PNG."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1020, "height": 440})
        page.goto(html_path.resolve().as_uri())
        page.wait_for_selector(".main-svg")
        page.screenshot(path=str(png), full_page=True)
        browser.close()
    return png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--ns", default="20,40,80,160", help="labels kept per draw")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(CACHE), help="folder for the scored file and results")
    parser.add_argument("--plot-png", default=None, help="also render the plot to this PNG (chromium)")
    parser.add_argument("--score-only", action="store_true", help="only score the rows (cache them)")
    args = parser.parse_args()
    rows = scored_rows(args)
    if args.score_only:
        return
    good = [r for r in rows if not r.get("error") and r.get("expected_score") is not None]
    human = np.array([r["human"] for r in good], dtype=np.float64)
    judge = np.array([r["expected_score"] for r in good], dtype=np.float64)
    pearson = float(np.corrcoef(human, judge)[0, 1])
    print(
        f"{len(good)} rows scored ({len(rows) - len(good)} with errors); truth (mean GPT-4 score) {human.mean():.3f}, "
        f"judge mean {judge.mean():.3f}, Pearson {pearson:.3f}",
        flush=True,
    )
    start = time.time()
    results = draws(human, judge, [int(n) for n in args.ns.split(",")], args.draws, args.seed)
    print(f"{args.draws} draws per n in {time.time() - start:.1f} s\n", flush=True)
    print(table(results))
    work = Path(args.out)
    summary = {
        "args": vars(args),
        "n_rows": len(good),
        "truth": float(human.mean()),
        "judge_mean": float(judge.mean()),
        "pearson": pearson,
        "results": results,
    }
    (work / "results.json").write_text(json.dumps(summary, indent=2))
    caption = (
        f"MT Bench, {len(good)} rows; judge: untrained SmolLM2-135M-Instruct by RAIL (Pearson {pearson:.2f} "
        f"with the GPT-4 mean); {args.draws} random draws per n"
    )
    html_path = plot(results, work / "estimate-bench.html", caption)
    if args.plot_png:
        print(f"plot: {to_png(html_path, Path(args.plot_png))}")
    print(f"results and plot in {work}")


if __name__ == "__main__":
    main()
