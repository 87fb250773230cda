"""The system-estimate panel (`raft.estimate`): what your graders would say about the system, with
an interval, from a few labels plus the judge's scores. Shown in the Evaluate tab (a scored file
whose gold column is filled on some rows) and in the Align tab (the project's held-out labels,
updated as labels come in). Each tab wires it with a few lines; this module owns the rest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import plotly.graph_objects as go

from app.studio import bind
from raft.estimate import estimate, project_estimate, summary
from raft.files import DataError
from raft.report import find_gold, load_scored
from raft.report_html import BLUE, GREY, ORANGE, layout
from raft.text import md_text

NAMES = (("ppi", "labels + judge (PPI++)", BLUE), ("labels_only", "labels alone", ORANGE))


def _cell(value: Any) -> str:
    """A value from the visitor's file as a Markdown table cell: shown as text (no markup, no image
    from another host: `raft.text.md_text`), its pipes escaped, bounded."""
    return md_text(value, 60)


def figure(result: dict[str, Any]) -> go.Figure:
    """Each estimate with its interval (overall, then per group), side by side per row; the judge
    alone as a cross (it has no valid interval: its bias is unknown without labels)."""
    rows = [("all rows", result)]
    for column, groups in result.get("groups", {}).items():
        rows += [(f"{column} = {value}"[:40], g) for value, g in groups.items()]
    fig = go.Figure()
    for offset, (key, name, colour) in zip((-0.15, 0.15), NAMES):
        shown = [(i, r[key]) for i, (_, r) in enumerate(rows) if r.get(key)]
        fig.add_scatter(
            x=[e["estimate"] for _, e in shown],
            y=[i + offset for i, _ in shown],
            error_x=dict(
                type="data",
                symmetric=False,
                array=[e["hi"] - e["estimate"] for _, e in shown],
                arrayminus=[e["estimate"] - e["lo"] for _, e in shown],
            ),
            mode="markers",
            marker=dict(color=colour, size=10),
            name=name,
            hovertemplate="%{x:.3f}<extra>" + name + "</extra>",
        )
    judged = [(i, r) for i, (_, r) in enumerate(rows) if r["judge_only"]["estimate"] is not None]
    fig.add_scatter(
        x=[r["judge_only"]["estimate"] for _, r in judged],
        y=[i for i, _ in judged],
        mode="markers",
        marker=dict(color=GREY, symbol="x", size=10),
        name="judge alone (biased)",
        hovertemplate="%{x:.3f}<extra>judge alone</extra>",
    )
    ticks = [f"{label} (n = {r['n_labelled']} + {r['n_unlabelled']})" for label, r in rows]
    fig.update_yaxes(tickvals=list(range(len(rows))), ticktext=ticks, autorange="reversed")
    level = int(round(result.get("level", 0.95) * 100))
    height = 220 + 50 * len(rows)
    return layout(fig, f"Mean human score with {level}% intervals", "mean score", "", height=height)


def markdown(result: dict[str, Any]) -> str:
    """The summary, then a table per group and the paired difference where asked."""
    text = summary(result)
    for column, groups in result.get("groups", {}).items():
        text += f"\nBy **{_cell(column)}**:\n\n| {_cell(column)} | labelled | judged only | PPI++ [95%] |"
        text += " labels alone | effective labels |\n|---|---|---|---|---|---|\n"
        for value, g in groups.items():
            p, lab, eff = g["ppi"], g["labels_only"], g["effective_labels"]
            ppi = f"{p['estimate']:.3f} [{p['lo']:.3f}, {p['hi']:.3f}]" if p else "n/a (under 2 labels)"
            alone = f"{lab['estimate']:.3f} [{lab['lo']:.3f}, {lab['hi']:.3f}]" if lab else "n/a"
            effective = f"{eff:.0f}" if eff is not None else "n/a"
            text += f"| {_cell(value)} | {g['n_labelled']} | {g['n_unlabelled']} | {ppi} | {alone} | {effective} |\n"
    pair = result.get("pair")
    if pair:
        a, b = _cell(pair["a"]), _cell(pair["b"])
        text += f"\n**{a} minus {b}** on {pair['n_prompts']} shared prompts (matched on **{_cell(pair['key'])}**):\n\n"
        text += summary(pair).replace("Mean human score", "Difference in mean human score")
    return text


def evaluate_estimate(
    studio: Any,
    resolve: Callable[..., Path | None],
    choice: str | None,
    upload: str | None,
    gold: str,
    pred: str,
    by: str,
    pair: str,
    request: gr.Request = None,
) -> tuple[str, go.Figure]:
    """The Evaluate tab's panel: the estimate of a scored file (rows without gold count by the
    judge alone); `resolve` finds the visitor's file (never a client path)."""
    path = resolve(studio, studio.workspace(request), choice, upload)
    if path is None:
        raise gr.Error("Choose a batch result or upload a scored file first.")
    group = next((c.strip() for c in (by or "").split(",") if c.strip()), None)
    systems = [s.strip() for s in (pair or "").split(",") if s.strip()]
    if systems and len(systems) != 2:
        raise gr.Error("Compare two systems: write two values of the first group column, separated by a comma.")
    try:
        rows = load_scored(path)
        column = (gold or "").strip() or find_gold(rows)  # as the report card: orig_score, gpt4_score, ...
        result = estimate(rows, column, (pred or "").strip() or "expected_score", group, systems or None)
    except (DataError, ValueError) as exc:
        raise gr.Error(str(exc).replace(str(path.parent) + "/", "")) from None
    return markdown(result), figure(result)


def evaluate_block(studio: Any, resolve: Callable[..., Path | None], inputs: list[Any]) -> None:
    """The panel in the Evaluate tab: `inputs` are its (choice, upload, gold, pred, by) components."""
    with gr.Accordion("System estimate: your graders' mean score, from a few labels plus the judge", open=True):
        gr.Markdown(
            "Leave the gold column empty on the rows nobody labelled: the labelled rows (a random sample) "
            "correct the judge's bias, the judged rows narrow the interval (prediction-powered inference, "
            "PPI++). The first group column gives one estimate per value."
        )
        with gr.Row():
            pair = gr.Textbox(
                "", label="Compare two systems (two values of the first group column, comma-separated)", scale=3
            )
            run = gr.Button("Estimate", elem_id="ev-estimate", scale=1)
        text = gr.Markdown(elem_id="ev-estimate-card")
        plot = gr.Plot(label="Estimates", elem_id="ev-estimate-plot")

    def handler(studio: Any, choice, upload, gold, pred, by, pair_text, request: gr.Request = None):
        return evaluate_estimate(studio, resolve, choice, upload, gold, pred, by, pair_text, request)

    run.click(bind(handler, studio), [*inputs, pair], [text, plot], api_name="estimate")


def compact(result: dict[str, Any]) -> str:
    """The estimate as a short list (the Align tab's narrow column): PPI++, labels alone, judge alone."""
    n, big_n = result["n_labelled"], result["n_unlabelled"]
    if result["ppi"] is None:
        return summary(result)
    p, lab, judge = result["ppi"], result["labels_only"], result["judge_only"]
    lines = [
        f"Mean score on your scale, 95% intervals ({n} held-out labels, {big_n} rows judged only):",
        "",
        f"- **labels + judge (PPI++): {p['estimate']:.2f} [{p['lo']:.2f}, {p['hi']:.2f}]**",
        f"- labels alone: {lab['estimate']:.2f} [{lab['lo']:.2f}, {lab['hi']:.2f}]",
        f"- judge alone: {judge['estimate']:.2f} (bias on your labels {judge['bias']:+.2f})",
        "",
    ]
    if result["effective_labels"] is not None:
        lines.append(
            f"Your {n} labels and {big_n} judged rows are worth {result['effective_labels']:.0f} labels alone."
        )
    more = result["labels_to_halve"]
    lines.append(
        f"About {more} more held-out labels would halve the interval."
        if more is not None
        else "Labelling every remaining row would not halve the interval."
    )
    return "\n".join(lines) + "\n"


def align_estimate(project: Any) -> str:
    """The Align tab's panel: the project's estimate, and how many more held-out labels would halve it."""
    if project is None:
        return ""
    result = project_estimate(project)
    left = result["n_heldout_rows"] - result["n_labelled"]
    text = "#### What your labels say about the system\n\n" + compact(result)
    more = result["labels_to_halve"]
    if more is not None and more > left:
        text += f"\nOnly {left} held-out rows are left unlabelled: halving it needs a larger held-out share.\n"
    if result["n_training_labels"]:
        text += (
            f"\nYour {result['n_training_labels']} training labels are left out of the estimate: they were "
            "picked where the judge is unsure, not at random, and would bias it.\n"
        )
    return text


def align_block(studio: Any, opener: Callable[..., Any], project: Any, trigger: Any) -> gr.Markdown:
    """The panel in the Align tab, refreshed whenever `trigger` (the agreement panel, which changes
    with every label, skip and undo) changes; `opener(studio, name, request)` opens a project."""
    panel = gr.Markdown(elem_id="align-estimate")

    def refresh(studio: Any, name: str | None, request: gr.Request = None) -> str:
        return align_estimate(opener(studio, name, request) if name else None)

    trigger.change(bind(refresh, studio), project, panel, api_name="align_estimate")
    return panel
