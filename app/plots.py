"""Plotly figures for the studio: score distributions, histograms, training curves, agreement."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from raft.report_html import MIN_N, layout, mean_by_gold, sig

COLORS = ["#2563eb", "#f97316", "#16a34a", "#9333ea"]
CORRELATIONS = ("pearson", "spearman", "kendall")


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig = layout(fig, title, x, y, height=340)
    fig.update_traces(hovertemplate="%{x}: %{y:.3g}<extra>%{fullData.name}</extra>", selector=dict(type="scatter"))
    return fig


def rounded(value: Any) -> Any:
    """A float to 3 significant digits for a table cell; anything else unchanged."""
    return float(f"{value:.3g}") if isinstance(value, float) else value


def integer_steps(fig: go.Figure, steps: list[int], **axis: Any) -> None:
    """Ticks on whole steps only (never -0.5 or 1.5), about ten of them."""
    top = max(steps, default=1)
    fig.update_xaxes(tickmode="linear", tick0=0, dtick=max(1, math.ceil(top / 10)), tickformat="d", **axis)
    if len(steps) <= 1:
        fig.update_xaxes(range=[-0.5, top + 0.5], **axis)


def log_ticks(values: list[float]) -> dict[str, Any]:
    """Tick values 1, 2, 5 x 10^k covering `values`, labelled in full (0.5, not '5')."""
    positive = [v for v in values if v is not None and v > 0]
    if not positive:
        return {}
    lo, hi = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    ticks = [m * 10.0**k for k in range(lo, hi + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if min(positive) / 2 <= t <= max(positive) * 2] or [min(positive)]
    return dict(tickmode="array", tickvals=ticks, ticktext=[f"{t:.3g}" for t in ticks])


def score_distribution(judgments: list[tuple[str, Any]], values: list[int]) -> go.Figure:
    """Bars of the renormalised score probabilities per judge, a dashed line at each expected score."""
    fig = go.Figure()
    for i, (name, j) in enumerate(judgments):
        color = COLORS[i % len(COLORS)]
        fig.add_bar(
            x=values,
            y=j.probs,
            name=f"{name}: E = {j.expected_score:.3g}",
            marker_color=color,
            opacity=0.85 if len(judgments) == 1 else 0.6,
        )
        fig.add_vline(
            x=j.expected_score,
            line_dash="dash",
            line_color=color,
            annotation_text=f"E = {j.expected_score:.3g}",
            annotation_position="top",
        )
    fig.update_layout(barmode="group", xaxis=dict(tickmode="array", tickvals=values), yaxis=dict(range=[0, 1.05]))
    return _layout(fig, "Score-token distribution and expected score", "score", "probability")


def histogram(counts: dict[str, int], title: str, x: str) -> go.Figure:
    """Rows per value, the values in numeric order on a category axis (no half-way ticks)."""
    keys = sorted(counts, key=lambda k: float(k))
    fig = go.Figure(go.Bar(x=keys, y=[counts[k] for k in keys], marker_color=COLORS[0]))
    fig.update_xaxes(type="category")
    return _layout(fig, title, x, "rows")


def length_histogram(lengths: list[int]) -> go.Figure:
    fig = go.Figure(go.Histogram(x=lengths, nbinsx=30, marker_color=COLORS[1]))
    return _layout(fig, "Token lengths (prompt + target)", "tokens", "examples")


def _ema(values: list[float], alpha: float = 0.1) -> list[float]:
    out, level = [], None
    for v in values:
        level = v if level is None else alpha * v + (1 - alpha) * level
        out.append(level)
    return out


def loss_curve(progress: list[dict[str, Any]], log_scale: bool = False) -> go.Figure:
    """Training loss per step, raw and smoothed, with its score and CE parts when present."""
    rows = [r for r in progress if r.get("loss") is not None]
    fig = go.Figure()
    steps = [r["step"] for r in rows]
    losses = [r["loss"] for r in rows]
    mode = "lines+markers" if len(rows) <= 30 else "lines"
    fig.add_scatter(x=steps, y=losses, name="loss", mode=mode, line=dict(color=COLORS[0], width=1), opacity=0.5)
    if len(rows) > 2:
        fig.add_scatter(x=steps, y=_ema(losses), name="loss (smoothed)", line=dict(color=COLORS[0], width=3))
    for i, part in enumerate(("score_loss", "ce_loss"), 1):
        if any(part in r for r in rows) and any("ce_loss" in r for r in rows):
            fig.add_scatter(
                x=steps,
                y=[r.get(part) for r in rows],
                name=part,
                mode=mode,
                line=dict(color=COLORS[i], width=1, dash="dot"),
            )
    if log_scale:
        parts = [r.get(p) for r in rows for p in ("loss", "score_loss", "ce_loss")]
        fig.update_yaxes(type="log", **log_ticks([v for v in parts if isinstance(v, (int, float))]))
    integer_steps(fig, steps)
    if not rows:
        fig.add_annotation(
            text="no training steps logged yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
    return _layout(fig, "Training loss", "step", "loss")


def eval_curve(progress: list[dict[str, Any]]) -> go.Figure:
    """Validation correlations (top) and RMSE (bottom) by step, each labelled with its n; a
    correlation on fewer than MIN_N rows is not drawn (it swings from -1 to 1 by chance)."""
    rows = [r for r in progress if r.get("eval")]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, row_heights=[0.6, 0.4])
    steps = [r["step"] for r in rows]
    ns = [r["eval"].get("n") for r in rows]
    n_text = ", ".join(sorted({str(n) for n in ns if n is not None})) or "?"
    drawn = ", ".join(sorted({str(n) for n in ns if (n or 0) >= MIN_N}))
    # the legend says what is drawn: the n of the points shown, or that none is computed (never a
    # correlation's n beside the note that says correlations need more rows)
    corr_n = f"n = {drawn}" if drawn else f"not computed, n < {MIN_N}"
    for i, key in enumerate(CORRELATIONS):
        values = [r["eval"].get(key) if (r["eval"].get("n") or 0) >= MIN_N else None for r in rows]
        fig.add_scatter(
            x=steps,
            y=values,
            name=f"{key} ({corr_n})",
            mode="lines+markers",
            line=dict(color=COLORS[i]),
            customdata=ns,
            hovertemplate="step %{x}: %{y:.3g} (n = %{customdata})<extra>" + key + "</extra>",
            row=1,
            col=1,
        )
    fig.add_scatter(
        x=steps,
        y=[r["eval"].get("rmse") for r in rows],
        name=f"rmse (n = {n_text})",
        mode="lines+markers",
        line=dict(color=COLORS[3], dash="dash"),
        customdata=ns,
        hovertemplate="step %{x}: %{y:.3g} (n = %{customdata})<extra>rmse</extra>",
        row=2,
        col=1,
    )
    fig.update_yaxes(title_text="correlation", range=[-1.05, 1.05], row=1, col=1)
    fig.update_yaxes(title_text="RMSE", rangemode="tozero", row=2, col=1)
    integer_steps(fig, steps, row=1, col=1)
    integer_steps(fig, steps, row=2, col=1)
    message = None
    if not rows:
        message = "no validation yet (needs a validation split)"
    elif all((n or 0) < MIN_N for n in ns):
        message = f"correlations need at least {MIN_N} validation rows (n = {n_text})"
    if message:
        fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.8, xref="paper", yref="paper")
    fig = layout(fig, "Validation (RAIL expected score against gold)", "", "", height=400)
    fig.update_xaxes(title_text="step", row=2, col=1)
    return fig


def agreement_scatter(gold: list[float], pred: list[float], scale: tuple[int, int]) -> go.Figure:
    """Expected score against gold, jittered on gold, the mean expected score per gold value
    (in gold order), and the diagonal; the title gives Pearson with its n."""
    rng = np.random.default_rng(0)
    fig = go.Figure()
    fig.add_scatter(
        x=np.asarray(gold) + rng.uniform(-0.12, 0.12, len(gold)),
        y=pred,
        mode="markers",
        marker=dict(color=COLORS[0], opacity=0.6),
        name="rows",
    )
    means = mean_by_gold(gold, pred)
    fig.add_scatter(
        x=[m["gold"] for m in means],
        y=[m["expected"] for m in means],
        mode="lines+markers",
        line=dict(color=COLORS[1]),
        text=[f"n = {m['n']}" for m in means],
        name="mean expected per gold value",
    )
    fig.add_scatter(x=list(scale), y=list(scale), mode="lines", line=dict(color="gray", dash="dash"), name="y = x")
    title = f"Expected score vs gold (n = {len(gold)})"
    if len(gold) >= MIN_N and np.std(gold) > 0 and np.std(pred) > 0:
        title = f"Expected score vs gold: Pearson {sig(float(np.corrcoef(gold, pred)[0, 1]))} (n = {len(gold)})"
    return _layout(fig, title, "gold score", "expected score")
