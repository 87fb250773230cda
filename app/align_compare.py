"""Align's before/after: compare a fine-tuned judge, or calibrate the project's judge to the labels
in seconds, and say what was found (verdicts, collapse, "too few to decide", advice, per row).

Thin handlers over `raft.align` (numbers), `raft.align_findings` (what they mean, kept with the
project so a reload shows the last comparison) and `raft.align_calibrate` / `raft.calibrated` (a
level map fitted on the training labels, written as a judge that serves like any other run).
"""

from __future__ import annotations

import html
import re
from typing import Any

import gradio as gr
import pandas as pd

from app.studio import RUN_PREFIX, Studio
from raft.align import compare_judges, rescore_heldout
from raft.align_calibrate import calibrated_rows, fit_project_calibration
from raft.align_findings import findings, findings_markdown, save_findings, saved_findings
from raft.calibrated import write_calibrated_judge
from raft.files import DataError
from raft.labels import LabelProject

ROW_COLUMNS = ["key", "label", "before", "after", "change", "instruction"]
"""The per-row table: the label, both judges' expected scores, and how far the error moved
(negative: the after judge is closer to your label)."""
_MD = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")


def text(value: Any) -> str:
    """User text made inert for Markdown: HTML escaped, Markdown's marks backslashed."""
    return _MD.sub(r"\\\1", html.escape(str(value), quote=False))


def row_table(found: dict[str, Any] | None) -> pd.DataFrame:
    """The per-row before/after table of a comparison (empty with its headers when none yet)."""
    return pd.DataFrame((found or {}).get("rows", []), columns=ROW_COLUMNS)


def shown(found: dict[str, Any] | None) -> tuple[str, pd.DataFrame]:
    """(Markdown, per-row table) of a comparison's findings."""
    if not found:
        return "No comparison yet: calibrate, or fine-tune and compare, to see before / after here.", row_table(None)
    return findings_markdown(found, f"**{text(found['judge'])}**"), row_table(found)


def last_comparison(project: LabelProject | None) -> tuple[str, pd.DataFrame]:
    """The project's newest kept comparison (what a reload shows)."""
    kept = saved_findings(project) if project is not None else []
    return shown(kept[0] if kept else None)


def compare(
    studio: Studio,
    project: LabelProject,
    judge_choice: str | None,
    progress: Any = None,
) -> tuple[str, pd.DataFrame]:
    """Score the labelled held-out rows with another judge, compare with the project's judge, keep
    the findings with the project and show them."""
    if not judge_choice:
        raise gr.Error("Choose the judge to compare (a run trained on your labels, or a calibrated one).")
    judge = studio.judge(judge_choice)
    if progress is not None:
        progress(0, desc="scoring the held-out rows again")
    tag = re.sub(r"[^A-Za-z0-9_-]", "_", judge_choice)[:60]
    try:
        after = rescore_heldout(project, judge, project.folder / f"after-{tag}.jsonl")
        report = compare_judges(project, after)
    except (DataError, ValueError) as exc:
        raise gr.Error(str(exc)) from None
    found = findings(project, report, after, judge_choice, calibrated=judge.calibration is not None)
    save_findings(project, found)
    return shown(found)


def _fresh_name(studio: Studio, project: LabelProject) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", project.folder.name)[:40].strip("_-") or "labels"
    n = 1
    while (studio.runs_dir / f"calibrated-{stem}-{n}").exists():
        n += 1
    return f"calibrated-{stem}-{n}"


def calibrate(studio: Studio, project: LabelProject) -> tuple[str, pd.DataFrame, str]:
    """Fit a level map from the project's judge to the training labels (seconds: no model runs),
    write it as a judge (a run), compare it on the held-out labels and keep the findings.
    Returns (findings, per-row table, the new judge's picker choice)."""
    if not studio.settings.allow_training:
        raise gr.Error("Calibrating writes a new judge, and new judges are off on this studio (as training is).")
    judge_choice = project.meta.get("judge") or None
    try:
        cal = fit_project_calibration(project)
        after = calibrated_rows(project, cal)
        report = compare_judges(project, after)
        base = studio.resolve_model(judge_choice)
    except (DataError, ValueError) as exc:
        raise gr.Error(str(exc)) from None
    name = _fresh_name(studio, project)
    try:
        write_calibrated_judge(
            studio.runs_dir / name,
            base,
            cal,
            prompt=project.prompt,
            scale=project.scale,
            name=judge_choice or "default model",
            fitted_on={"project": project.folder.name, "training_labels": cal.n_fit},
        )
    except (FileExistsError, ValueError, OSError) as exc:
        raise gr.Error(f"could not write the calibrated judge: {exc}") from None
    choice = RUN_PREFIX + name
    found = findings(project, report, after, choice, calibrated=True)
    found["levels"] = [round(v, 3) for v in cal.levels or []]
    save_findings(project, found)
    markdown, table = shown(found)
    return markdown, table, choice
