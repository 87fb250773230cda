"""Plotly figures of pairwise judging: P(A) against P(B) per order and combined, and the reliability plot."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from app.plots import COLORS
from raft.pairwise import PairJudgment
from raft.report_html import layout


def pair_bars(j: PairJudgment, passes: int) -> go.Figure:
    """Horizontal bars of P(A) (the original A's chance) and P(B) for each order read and the two
    combined; the title gives the number of forward passes or generations (n) they come from."""
    rows = []
    if j.p_ab is not None:
        rows.append(("A shown first", j.p_ab))
    if j.p_ba is not None:
        rows.append(("B shown first", 1.0 - j.p_ba))
    if j.p_a is not None and j.p_ba is not None:
        rows.append(("combined (order-free)", j.p_a))
    labels = [r[0] for r in rows][::-1]
    p_a = [r[1] for r in rows][::-1]
    fig = go.Figure()
    fig.add_bar(
        y=labels,
        x=p_a,
        orientation="h",
        name="P(A wins)",
        marker_color=COLORS[0],
        text=[f"A {v:.3g}" for v in p_a],
        textposition="inside",
        hovertemplate="%{y}: P(A) = %{x:.3g}<extra></extra>",
    )
    fig.add_bar(
        y=labels,
        x=[1.0 - v for v in p_a],
        orientation="h",
        name="P(B wins)",
        marker_color=COLORS[1],
        text=[f"B {1 - v:.3g}" for v in p_a],
        textposition="inside",
        hovertemplate="%{y}: P(B) = %{x:.3g}<extra></extra>",
    )
    fig.add_vline(x=0.5, line_dash="dash", line_color="gray")
    fig.update_layout(barmode="stack", xaxis=dict(range=[0, 1]), legend=dict(traceorder="normal"))
    title = f"P(A) against P(B), per order and combined (n = {passes} passes)"
    return layout(fig, title, "probability", "", height=280)


def reliability(bins: list[dict[str, Any]]) -> go.Figure:
    """Mean preference for A against mean P(A) per bin of P(A) (each point labelled with its n), and
    the diagonal a calibrated judge lies on."""
    used = [b for b in bins if b["count"]]
    n = sum(b["count"] for b in used)
    fig = go.Figure()
    fig.add_scatter(
        x=[b["mean_p_a"] for b in used],
        y=[b["mean_preference"] for b in used],
        mode="lines+markers+text",
        text=[f"n = {b['count']}" for b in used],
        textposition="top center",
        marker=dict(color=COLORS[0], size=[6 + min(14, b["count"]) for b in used]),
        name="pairs per bin of P(A)",
    )
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="gray", dash="dash"), name="calibrated")
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[-0.08, 1.12])  # room for the n above a point at 1
    return layout(fig, f"Reliability of P(A) (n = {n} pairs)", "mean P(A)", "share preferring A", height=340)
