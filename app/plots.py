"""Plotly figures for the studio: score distributions, histograms, training curves, agreement."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from raft.report_html import layout

COLORS = ["#2563eb", "#f97316", "#16a34a", "#9333ea"]


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    return layout(fig, title, x, y, height=340)


def score_distribution(judgments: list[tuple[str, Any]], values: list[int]) -> go.Figure:
    """Bars of the renormalised score probabilities per judge, a dashed line at each expected score."""
    fig = go.Figure()
    for i, (name, j) in enumerate(judgments):
        color = COLORS[i % len(COLORS)]
        fig.add_bar(
            x=values,
            y=j.probs,
            name=f"{name}: E = {j.expected_score:.2f}",
            marker_color=color,
            opacity=0.85 if len(judgments) == 1 else 0.6,
        )
        fig.add_vline(
            x=j.expected_score,
            line_dash="dash",
            line_color=color,
            annotation_text=f"E = {j.expected_score:.2f}",
            annotation_position="top",
        )
    fig.update_layout(barmode="group", xaxis=dict(tickmode="array", tickvals=values), yaxis=dict(range=[0, 1.05]))
    return _layout(fig, "Score-token distribution and expected score", "score", "probability")


def histogram(counts: dict[str, int], title: str, x: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), marker_color=COLORS[0]))
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
        fig.update_yaxes(type="log")
    if not rows:
        fig.add_annotation(
            text="no training steps logged yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
    return _layout(fig, "Training loss", "step", "loss")


def eval_curve(progress: list[dict[str, Any]]) -> go.Figure:
    """Validation Pearson, Spearman, Kendall (left axis) and RMSE (right axis) by step."""
    rows = [r for r in progress if r.get("eval")]
    fig = go.Figure()
    steps = [r["step"] for r in rows]
    for i, key in enumerate(("pearson", "spearman", "kendall")):
        fig.add_scatter(
            x=steps, y=[r["eval"].get(key) for r in rows], name=key, mode="lines+markers", line=dict(color=COLORS[i])
        )
    fig.add_scatter(
        x=steps,
        y=[r["eval"].get("rmse") for r in rows],
        name="rmse",
        mode="lines+markers",
        line=dict(color=COLORS[3], dash="dash"),
        yaxis="y2",
    )
    fig.update_layout(yaxis2=dict(title="RMSE", overlaying="y", side="right"))
    if not rows:
        fig.add_annotation(
            text="no validation yet (needs a validation split)",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
        )
    return _layout(fig, "Validation (RAIL)", "step", "correlation")


def agreement_scatter(gold: list[float], pred: list[float], scale: tuple[int, int]) -> go.Figure:
    """Expected score against gold, jittered on gold, with the diagonal."""
    rng = np.random.default_rng(0)
    fig = go.Figure()
    fig.add_scatter(
        x=np.asarray(gold) + rng.uniform(-0.12, 0.12, len(gold)),
        y=pred,
        mode="markers",
        marker=dict(color=COLORS[0], opacity=0.6),
        name="rows",
    )
    fig.add_scatter(x=list(scale), y=list(scale), mode="lines", line=dict(color="gray", dash="dash"), name="y = x")
    return _layout(fig, "Expected score vs gold", "gold score", "expected score")
