"""The report card's figures (plotly) and its HTML: one self-contained file, plotly.js inline, no
network, that a person can mail. The studio's Evaluate tab shows the same figures."""

from __future__ import annotations

import html
import re
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from raft.stats import METRICS
from raft.text import md_plain

BLUE, ORANGE, GREY = "#2563eb", "#f97316", "#6b7280"
MIN_N = 5
"""Fewer paired rows than this and a correlation is not drawn: on 2 rows it is always -1 or 1."""
ERRORS = ("rmse", "mae")
"""Metrics in score units (lower is better), drawn on their own axis apart from the correlations."""


def sig(x: Any, digits: int = 3) -> str:
    """A number as a person reads it: 3 significant digits, 'n/a' for none."""
    return "n/a" if x is None else f"{float(x):.{digits}g}"


def mean_by_gold(gold: list[float], pred: list[float]) -> list[dict[str, Any]]:
    """The mean prediction per gold value in gold order (per half-point bin when gold is continuous)."""
    g, p = np.asarray(gold, dtype=float), np.asarray(pred, dtype=float)
    keys = g if len(np.unique(g)) <= 21 else np.round(g * 2) / 2
    return [
        {"gold": float(k), "expected": float(p[keys == k].mean()), "n": int((keys == k).sum())} for k in np.unique(keys)
    ]


def layout(fig: go.Figure, title: str, x: str, y: str, height: int = 360) -> go.Figure:
    """The look every figure of the studio and its reports shares."""
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        template="plotly_white",
        height=height,
        margin=dict(l=55, r=20, t=50, b=45),
        legend=dict(orientation="h", y=-0.22),
    )
    return fig


def _error_bars(metrics: dict[str, Any]) -> dict[str, Any]:
    values = [m["value"] or 0.0 for m in metrics.values()]
    return dict(
        type="data",
        symmetric=False,
        array=[(m["hi"] - v) if m["hi"] is not None else 0 for m, v in zip(metrics.values(), values)],
        arrayminus=[(v - m["lo"]) if m["lo"] is not None else 0 for m, v in zip(metrics.values(), values)],
    )


def _split_bars(fig: go.Figure, shown: dict[str, dict[str, Any]], colors: list[str] | str, n: int) -> go.Figure:
    """Agreement metrics (left) and errors in score units (right) as bars on separate axes, 3 digits
    shown; correlations on fewer than MIN_N rows are left out."""
    left = [m for m in shown if m not in ERRORS and not (n < MIN_N and m in CORRELATIONS)]
    right = [m for m in shown if m in ERRORS]
    color_of = dict(zip(shown, colors if isinstance(colors, list) else [colors] * len(shown)))
    for col, names in ((1, left), (2, right)):
        part = {m: shown[m] for m in names}
        fig.add_bar(
            x=names,
            y=[m["value"] for m in part.values()],
            error_y=_error_bars(part),
            marker_color=[color_of[m] for m in names],
            text=[sig(m["value"]) for m in part.values()],
            hovertemplate="%{x}: %{y:.3g}<extra></extra>",
            showlegend=False,
            row=1,
            col=col,
        )
    return fig


CORRELATIONS = ("pearson", "spearman", "kendall")


def metric_bars(report: dict[str, Any]) -> go.Figure:
    """Each metric with its bootstrap interval: agreement on one axis, errors on another, with n."""
    shown = {m: report["metrics"][m] for m in METRICS}
    fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35], subplot_titles=("agreement", "error (score units)"))
    _split_bars(fig, shown, BLUE, report["n"])
    title = f"Agreement with {int(report['level'] * 100)}% bootstrap intervals (n = {report['n']})"
    return layout(fig, title, "", "")


def group_bars(report: dict[str, Any], column: str, metric: str = "pearson") -> go.Figure:
    """One metric per group of `column`, with intervals and each group's n (none drawn under MIN_N rows)."""
    groups = report["groups"][column]
    shown = {value: g["metrics"][metric] for value, g in groups.items()}
    small = metric in CORRELATIONS
    fig = go.Figure(
        go.Bar(
            x=[f"{v} (n={groups[v]['n']})" for v in shown],
            y=[None if small and groups[v]["n"] < MIN_N else m["value"] for v, m in shown.items()],
            error_y=_error_bars(shown),
            marker_color=ORANGE,
            text=[
                sig(m["value"]) if not (small and groups[v]["n"] < MIN_N) else f"n < {MIN_N}" for v, m in shown.items()
            ],
            hovertemplate="%{x}: %{y:.3g}<extra></extra>",
        )
    )
    return layout(fig, f"{metric} by {column}", column, metric)


def reliability(report: dict[str, Any]) -> go.Figure:
    """Accuracy against confidence per confidence bin (the diagonal is perfect calibration)."""
    table = [b for b in report["calibration"]["reliability"] if b["n"] > 0]  # an empty bin has no accuracy
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color=GREY), name="perfect")
    fig.add_scatter(
        x=[b["confidence"] for b in table],
        y=[b["accuracy"] for b in table],
        mode="lines+markers",
        marker=dict(size=[6 + 20 * b["n"] / max(1, report["n"]) for b in table], color=BLUE),
        text=[f"n={b['n']}" for b in table],
        hovertemplate="confidence %{x:.3g}, accuracy %{y:.3g} (%{text})<extra></extra>",
        name=f"judge (ECE {sig(report['calibration']['ece'])}, n = {report['n']})",
    )
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1])
    return layout(fig, "Reliability of the most likely score", "confidence", "accuracy")


def expected_vs_gold(report: dict[str, Any]) -> go.Figure:
    """Every row's expected score against its gold (with intervals where present), and bin means."""
    points = report["points"]
    fig = go.Figure()
    error = None
    if "intervals" in report:
        iv = report["intervals"]
        error = dict(
            type="data",
            symmetric=False,
            array=[hi - p for hi, p in zip(iv["hi"], points["pred"])],
            arrayminus=[p - lo for lo, p in zip(iv["lo"], points["pred"])],
            color="rgba(37,99,235,0.25)",
        )
    fig.add_scatter(
        x=points["gold"],
        y=points["pred"],
        mode="markers",
        marker=dict(color=BLUE, opacity=0.5),
        error_y=error,
        name="rows",
    )
    means = mean_by_gold(points["gold"], points["pred"])
    fig.add_scatter(
        x=[m["gold"] for m in means],
        y=[m["expected"] for m in means],
        mode="lines+markers",
        line=dict(color=ORANGE),
        text=[f"n={m['n']}" for m in means],
        hovertemplate="gold %{x:.3g}: mean expected %{y:.3g} (%{text})<extra></extra>",
        name="mean expected score per gold value",
    )
    lo = min(points["gold"] + points["pred"])
    hi = max(points["gold"] + points["pred"])
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(dash="dash", color=GREY), name="y = x")
    return layout(fig, f"Expected score against gold (n = {report['n']})", "gold", "expected score")


def comparison(report: dict[str, Any]) -> go.Figure:
    """A - B for each metric with its paired interval."""
    comp = report["compare"]["metrics"]
    a, b = report["names"]
    shown = {m: {"value": comp[m]["diff"], "lo": comp[m]["lo"], "hi": comp[m]["hi"]} for m in METRICS}
    colors = [BLUE if comp[m]["better"] == "A" else ORANGE if comp[m]["better"] == "B" else GREY for m in METRICS]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35], subplot_titles=("agreement", "error (score units)"))
    _split_bars(fig, shown, colors, report["compare"]["n"])
    title = f"{a} - {b} on n = {report['compare']['n']} rows (coloured where both tests name a winner)"
    return layout(fig, title, "", "difference")


def figures(report: dict[str, Any]) -> dict[str, go.Figure]:
    """Every figure the report has data for, by name."""
    out = {"metrics": metric_bars(report), "scatter": expected_vs_gold(report)}
    if "calibration" in report:
        out["reliability"] = reliability(report)
    for column in report["groups"]:
        out[f"by {column}"] = group_bars(report, column)
    if "compare" in report:
        out["comparison"] = comparison(report)
    return out


_OWN_MARKUP = re.compile(r"(?<!\\)(\*\*|`)")
"""Our own emphasis and code marks in the card's Markdown (a value's own are backslash-escaped)."""
_CELL = re.compile(r"(?<!\\)\|")


def _text(markdown: str) -> str:
    """One line of the card's Markdown as escaped HTML text: our marks dropped, the values that
    `raft.text.md_text` escaped shown as they were written, escaped once for HTML."""
    return html.escape(md_plain(_OWN_MARKUP.sub("", markdown)))


def _table(markdown: str) -> str:
    """Markdown text with tables as HTML (enough for the report's own Markdown): headings, tables
    (a cell's escaped `\\|` stays in its cell), paragraphs; every value shown as text."""
    parts, rows = [], []

    def flush() -> None:
        if rows:
            head, *body = rows
            cells = "".join(f"<th>{_text(c)}</th>" for c in head)
            trs = "".join("<tr>" + "".join(f"<td>{_text(c)}</td>" for c in r) + "</tr>" for r in body)
            parts.append(f"<table><thead><tr>{cells}</tr></thead><tbody>{trs}</tbody></table>")
            rows.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                rows.append([c.strip() for c in _CELL.split(line.strip().strip("|"))])
            continue
        flush()
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            parts.append(f"<h2>{_text(heading.group(2))}</h2>")
        elif line.strip():
            parts.append(f"<p>{_text(line)}</p>")
    flush()
    return "\n".join(parts)


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#111}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f3f4f6}td:first-child,th:first-child{text-align:left}"""


def to_html(report: dict[str, Any], markdown: str, title: str = "Judge report card") -> str:
    """One self-contained HTML file: the report's Markdown tables (as `raft.report.to_markdown`
    wrote them) and every figure, plotly.js included inline once."""
    blocks = []
    for i, fig in enumerate(figures(report).values()):
        blocks.append(fig.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False))
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{_table(markdown)}\n"
        + "\n".join(f"<div class='figure'>{b}</div>" for b in blocks)
        + "</body></html>"
    )
