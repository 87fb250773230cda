"""The judge report card as Markdown: tables of the metrics with their intervals, by group, the
calibration and two judges compared (what the CLI prints and `raft.report.write_report` writes).

Apart from `raft.report`, which builds the card's data; `raft.report` re-exports `to_markdown`.
"""

from __future__ import annotations

from typing import Any

from raft.columns import word
from raft.levels import binary_lines
from raft.stats import METRICS
from raft.text import md_text


def _fmt(x: Any, digits: int = 3) -> str:
    """A number to `digits` significant digits (0.298, 1.23, 12.3), 'n/a' for none."""
    return "n/a" if x is None else f"{x:.{digits}g}"


def _ci(m: dict[str, Any]) -> str:
    return f"{_fmt(m['value'])} [{_fmt(m['lo'])}, {_fmt(m['hi'])}]"


def in_sample_markdown(section: dict[str, Any], n: int, level: int) -> list[str]:
    """The card's lines on training rows: a warning and the metrics on the other rows."""
    k, rest, who = section["n_training"], section["n_rest"], md_text(section["judge"], 80)
    if not k:
        return ["", f"None of the {n} rows with gold were {who}'s training rows: the card measures unseen rows."]
    lines = [
        "",
        f"**{k} of the {n} rows with gold were {who}'s training rows**: it has seen their labels, so the "
        "figures above flatter it.",
    ]
    if section["metrics_rest"] is None:
        return lines + [f"Only {rest} other rows: too few for metrics of their own; evaluate on rows it never saw."]
    return lines + [
        f"On the other {rest} rows (never trained on):",
        "",
        f"| metric | value [{level}% CI] |",
        "|---|---|",
        *(f"| {m} | {_ci(section['metrics_rest'][m])} |" for m in METRICS),
    ]


def to_markdown(report: dict[str, Any]) -> str:
    """The card as Markdown tables (what the CLI prints and the README quotes). Every value from the
    data (column names, group values, judge names) is escaped (`raft.text.md_text`): it shows as
    text wherever the Markdown is rendered, and never breaks a table."""
    level = int(round(report["level"] * 100))
    gold, pred = md_text(word(report["gold"]), 80), md_text(report["pred"], 80)  # "score", not "orig_score"
    lines = [
        f"Judge report: {report['n']} rows with gold **{gold}** and prediction **{pred}** "
        f"({report['n_rows']} rows read, {report['n_errors']} with errors); {level}% bootstrap intervals from "
        f"{report['n_boot']} resamples (seed {report['seed']}).",
        "",
        "| metric | value [" + f"{level}% CI] |",
        "|---|---|",
        *(f"| {m} | {_ci(report['metrics'][m])} |" for m in METRICS),
    ]
    if "levels" in report:  # cards written before weighted kappa have no levels
        lv = report["levels"]
        lo, hi = lv["scale"]
        lines.append(f"| weighted kappa (quadratic, scale {lo}..{hi}) | {_ci(lv['weighted_kappa'])} |")
        if "binary" in lv:
            lines += binary_lines(lv["binary"])
    if "in_sample" in report:
        lines += in_sample_markdown(report["in_sample"], report["n"], level)
    for column, groups in report["groups"].items():
        lines += _group_lines(column, groups)
    lines += _calibration_lines(report)
    if "compare" in report:
        lines += _compare_lines(report["names"], report["compare"], level)
    return "\n".join(lines) + "\n"


def _group_lines(column: str, groups: dict[str, Any]) -> list[str]:
    """A table of the metrics by each value of one column."""
    name = md_text(column, 80)
    lines = ["", f"By **{name}**:", "", "| " + name + " | n | " + " | ".join(METRICS) + " |"]
    lines.append("|---|---|" + "---|" * len(METRICS))
    for value, group in groups.items():
        cells = " | ".join(_ci(group["metrics"][m]) for m in METRICS)
        lines.append(f"| {md_text(value, 120)} | {group['n']} | {cells} |")
    return lines


def _calibration_lines(report: dict[str, Any]) -> list[str]:
    """ECE and Brier, what a calibration file did on the rows it was not fitted on, interval coverage."""
    lines = []
    if "calibration" in report:
        c = report["calibration"]
        lines += ["", f"Calibration against the rounded gold: ECE {_fmt(c['ece'])}, Brier {_fmt(c['brier'])}."]
    if "calibration_file" in report:
        f = report["calibration_file"]
        h = f["rows_not_used_to_fit"]
        lines.append(
            f"With the calibration (T = {_fmt(f['temperature'])}), on {h['n']} rows not used to fit it: ECE "
            f"{_fmt(h['ece_before'])} -> {_fmt(h['ece_after'])}, interval coverage {_fmt(h['coverage'])} "
            f"(target {f['coverage_target']:.2f}, mean width {_fmt(h['mean_width'], 2)})."
        )
    if "intervals" in report:
        lines.append(f"Intervals in the scored file cover the gold on {report['intervals']['coverage']:.1%} of rows.")
    return lines


def _compare_lines(names: list[str], comp: dict[str, Any], level: int) -> list[str]:
    """Judge A against judge B: each metric, the difference with its interval, p-value and verdict."""
    a, b = (md_text(name, 80) for name in names)
    lines = [
        "",
        f"{a} vs {b} on the {comp['n']} rows both scored (difference {a} - {b}, paired bootstrap interval, "
        "paired permutation p-value; a winner is named only where both tests agree):",
        "",
        f"| metric | {a} | {b} | {a} - {b} [{level}% CI] | p | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for m in METRICS:
        d = comp["metrics"][m]
        winner = d["verdict"].replace("A better", f"{a} better").replace("B better", f"{b} better")
        p = "n/a" if d["p_value"] is None else f"{d['p_value']:.3g}"
        lines.append(
            f"| {m} | {_fmt(d['a'])} | {_fmt(d['b'])} | {_fmt(d['diff'])} [{_fmt(d['lo'])}, {_fmt(d['hi'])}] "
            f"| {p} | {winner} |"
        )
    return lines
