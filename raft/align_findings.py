"""What a before/after comparison found, said in words: a verdict per metric, a warning when a judge
gives (nearly) one score to everything, "too few to decide" below a stated number of held-out
labels, advice drawn from the labels, and the per-row table. Kept with the project, so that a
reload (or the CLI) shows the same findings.

`raft.align.compare_judges` computes the numbers; this module reads them. The studio's Align tab and
`python -m raft label compare` print `findings_markdown` of the same `findings`.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from raft.labels import LabelProject
from raft.output import write_text

MIN_DECIDE = 10
"""Fewest held-out labels on which a comparison names a winner; below, it says "too few to decide"
(a bootstrap interval over a handful of rows is mostly noise, and its verdict would mislead)."""
COLLAPSE_SD = 0.25
"""A judge whose expected scores spread less than this (standard deviation, in score points) ..."""
COLLAPSE_SHARE = 0.9
"""... or that rounds this share of the rows to one score, gives (nearly) one score to everything."""
FEW_LABELS = 30
"""Fewer training labels than this: calibrate first (a level map needs few; fine-tuning many)."""
SKEWED = 0.5
"""One level holding more than this share of the labels: the labels are skewed."""
METRICS = ("pearson", "spearman", "mae", "exact")
COMPARISONS = "comparisons"
"""The project's sub-folder that keeps each comparison's findings (one JSON file each)."""


def collapse(pred: Any, scale: tuple[int, int]) -> dict[str, Any] | None:
    """How a judge collapsed, or None: the spread and the share of rows at its most common
    rounded score, when the spread is under COLLAPSE_SD or the share at least COLLAPSE_SHARE."""
    p = np.asarray([x for x in pred if x is not None], dtype=np.float64)
    if len(p) < 3:
        return None
    rounded = np.clip(np.floor(p + 0.5), scale[0], scale[1]).astype(int)
    score, count = Counter(rounded.tolist()).most_common(1)[0]
    sd, share = float(p.std()), count / len(p)
    if sd >= COLLAPSE_SD and share < COLLAPSE_SHARE:
        return None
    return {
        "sd": round(sd, 3),
        "share": round(share, 3),
        "score": int(score),
        "lo": round(float(p.min()), 2),
        "hi": round(float(p.max()), 2),
        "n": len(p),
    }


def advice(project: LabelProject, calibrated: bool = False) -> list[str]:
    """What to do next, from the labels themselves: skewed levels -> stratified selection; few
    training labels -> calibrate first (label more, once the judge compared is calibrated); few
    held-out labels -> label more held-out rows."""
    labels, held = project.labels(), project.heldout
    train = [v for k, v in labels.items() if k not in held]
    n_held = sum(1 for k in labels if k in held)
    out = []
    if labels:
        level, count = Counter(labels.values()).most_common(1)[0]
        if count / len(labels) > SKEWED:
            out.append(
                f"Your labels are skewed: {count} of {len(labels)} are {level}. Choose the next rows by "
                f"**stratified** (spread over the judge's levels), or a judge learns to say {level} to everything."
            )
    if len(train) < FEW_LABELS and calibrated:
        out.append(
            f"This judge is calibrated on {len(train)} training labels; fine-tuning needs about {FEW_LABELS} or "
            "more: label more training rows first, then fine-tune and compare it with this one."
        )
    elif len(train) < FEW_LABELS:
        out.append(
            f"Only {len(train)} training labels: **calibrate first** (a level map learns your scale from a few "
            f"labels in seconds); fine-tuning needs more (about {FEW_LABELS} or more) and a few epochs, not many steps."
        )
    if n_held < MIN_DECIDE:
        out.append(
            f"Only {n_held} held-out labels: label at least {MIN_DECIDE} held-out rows before trusting a comparison."
        )
    return out


def _verdict(d: dict[str, Any], decided: bool) -> str:
    if not decided:
        return "too few to decide"
    said = str(d.get("verdict") or "n/a")
    return said.replace("A better", "after better").replace("B better", "before better")


def findings(
    project: LabelProject, report: dict[str, Any], after: list[dict[str, Any]], judge: str, calibrated: bool = False
) -> dict[str, Any]:
    """The findings of one comparison (`report` from `compare_judges`, `after` the new judge's
    held-out rows, each with its `key`; `calibrated`: that judge is a calibrated one): verdicts,
    collapse warnings, advice and the per-row table."""
    comp = report["compare"]
    n = int(comp["n"])
    decided = n >= MIN_DECIDE
    labels, held = project.labels(), project.heldout
    keys = [k for k in project.keys if k in labels and k in held]
    before = {k: float(project.rows[k]["expected_score"]) for k in keys}
    now = {
        int(r["key"]): (None if r.get("error") or r.get("expected_score") is None else float(r["expected_score"]))
        for r in after
        if r.get("key") is not None
    }
    scale = project.scale
    verdicts = {}
    for metric in METRICS:
        d = comp["metrics"][metric]
        verdicts[metric] = {
            "before": d["b"],
            "after": d["a"],
            "diff": d["diff"],
            "lo": d["lo"] if decided else None,
            "hi": d["hi"] if decided else None,
            "p_value": d["p_value"] if decided else None,
            "verdict": _verdict(d, decided),
        }
    kappa = {name: report.get(f"kappa_{name}", {}).get("value") for name in ("before", "after")}
    return {
        "judge": judge,
        "calibrated": calibrated,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "n": n,
        "scale": list(scale),
        "min_decide": MIN_DECIDE,
        "decided": decided,
        "verdicts": verdicts,
        "kappa": kappa,
        "collapse": {
            "after": collapse([now.get(k) for k in keys], scale),
            "before": collapse([before[k] for k in keys], scale),
        },
        "advice": advice(project, calibrated),
        "rows": _per_row(project, keys, labels, before, now),
    }


def _per_row(
    project: LabelProject, keys: list[int], labels: dict[int, Any], before: dict[int, float], now: dict[int, Any]
) -> list[dict[str, Any]]:
    """Each held-out label with both judges' scores and how far the error moved (negative: closer)."""
    rows = []
    for k in keys:
        a, b = now.get(k), before[k]
        rows.append(
            {
                "key": k,
                "label": labels[k],
                "before": round(b, 2),
                "after": None if a is None else round(a, 2),
                "change": None if a is None else round(abs(a - labels[k]) - abs(b - labels[k]), 2),
                "instruction": str(project.item(k)["orig_instruction"])[:120],
            }
        )
    return rows


def _f(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _collapse_line(name: str, c: dict[str, Any], calibrated: bool = False) -> str:
    fix = (
        "Label rows at the other levels and calibrate again."
        if calibrated
        else "Fine-tune with fewer steps (a few epochs), label the other levels, or calibrate instead."
    )
    return (
        f"**Warning: the judge {name} gives nearly one score to everything**: {c['share']:.0%} of the "
        f"{c['n']} held-out rows round to {c['score']} (its scores span {c['lo']}-{c['hi']}, spread "
        f"{c['sd']:.2f}). Its correlations and kappa say nothing about order; it has learnt a level, "
        f"not your scale. {fix}"
    )


def findings_markdown(f: dict[str, Any], judge: str | None = None) -> str:
    """The findings as Markdown: warnings first, then the verdict table, then advice. `judge` is
    the after judge's name as shown (escaped by the caller when it is user text)."""
    n, decided = f["n"], f["decided"]
    lines = [f"### Before / after on {n} held-out labels", ""]
    lines.append(
        f"After: {judge or f['judge']}; before: the project's judge. "
        + (
            "Difference after - before with its paired 95% bootstrap interval and permutation p-value; a "
            "winner is named only where both agree."
            if decided
            else f"**Too few to decide**: {n} held-out labels, and a verdict needs at least {f['min_decide']}; "
            "the values are shown, intervals are not."
        )
    )
    for name in ("after", "before"):
        c = f["collapse"][name]
        if c:
            lines += ["", _collapse_line(name, c, name == "after" and bool(f.get("calibrated")))]
    diff = "after - before [95% CI]" if decided else "after - before"
    lines += ["", f"| metric | before | after | {diff} | p | verdict |", "|---|---|---|---|---|---|"]
    kb, ka = f["kappa"]["before"], f["kappa"]["after"]
    lines.append(f"| weighted kappa | {_f(kb)} | {_f(ka)} | | | |")
    for metric, v in f["verdicts"].items():
        ci = f" [{_f(v['lo'])}, {_f(v['hi'])}]" if decided and v["lo"] is not None else ""
        p = "" if v["p_value"] is None else f"{v['p_value']:.3g}"
        lines.append(
            f"| {metric} | {_f(v['before'])} | {_f(v['after'])} | {_f(v['diff'])}{ci} | {p} | {v['verdict']} |"
        )
    if f.get("levels"):
        lo = f.get("scale", [1])[0]
        mapped = ", ".join(f"{lo + i} -> {v:.2f}" for i, v in enumerate(f["levels"]))
        lines += [
            "",
            f"A calibrated judge: the project's judge with a level map fitted on the training labels ({mapped}); "
            "it serves, scores and exports like any other judge.",
        ]
    if f["advice"]:
        lines += ["", "**What to do next**", ""] + [f"- {a}" for a in f["advice"]]
    return "\n".join(lines) + "\n"


def save_findings(project: LabelProject, found: dict[str, Any]) -> Path:
    """Keep the findings with the project (one file per judge compared; the latest comparison of a
    judge replaces its earlier one). The file name is made from the judge's name, never a path."""
    folder = project.folder / COMPARISONS
    folder.mkdir(exist_ok=True)
    tag = re.sub(r"[^A-Za-z0-9_-]", "_", str(found["judge"]))[:60] or "judge"
    path = folder / f"{tag}.json"
    tmp = path.with_suffix(".tmp")
    write_text(tmp, json.dumps(found, ensure_ascii=False))  # through the host's writer (raft.output)
    tmp.replace(path)
    return path


def saved_findings(project: LabelProject) -> list[dict[str, Any]]:
    """The project's kept comparisons, newest first (a damaged file is left out)."""
    folder = project.folder / COMPARISONS
    found = []
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "verdicts" in data:
            found.append(data)
    return found
