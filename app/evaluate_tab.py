"""Evaluate tab: the report card of a scored file (a Batch result or an upload) against gold, with
intervals, groups, calibration and a second judge, and the self-contained HTML report to download."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gradio as gr

from app import honest, pair_view
from app.estimate_panel import evaluate_block
from app.own_files import NONE, result_meta, scored_file
from app.studio import Studio, bind
from app.workspace import Workspace, WorkspaceError
from raft.files import DataError
from raft.report import build_report, load_scored, to_markdown
from raft.report import fit_calibration as fit_on_rows
from raft.report_html import figures, to_html
from raft.text import md_text


def _columns(text: str) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def evaluate(
    studio: Studio,
    choice: str | None,
    upload: str | None,
    other_choice: str | None,
    other_upload: str | None,
    gold: str,
    pred: str,
    by: str,
    cal_file: str | None,
    request: gr.Request = None,
) -> tuple[Any, ...]:
    """The card (Markdown), its figures, and the HTML and JSON reports to download."""
    workspace = studio.workspace(request)
    path = scored_file(studio, workspace, choice, upload)
    if path is None:
        raise gr.Error("Choose a batch result or upload a scored file first.")
    other_path = scored_file(studio, workspace, other_choice, other_upload)
    report = _report(studio, path, other_path, gold, pred, by, cal_file)
    figs = figures(report)
    group = next((v for k, v in figs.items() if k.startswith("by ")), None)
    card = header(path, report) + to_markdown(report)
    files = _write_downloads(workspace, path, other_path, report, card)
    return (
        card,
        figs["metrics"],
        group,
        figs.get("reliability"),
        figs["scatter"],
        figs.get("comparison"),
        files,
    )


def _report(
    studio: Studio, path: Path, other_path: Path | None, gold: str, pred: str, by: str, cal_file: str | None
) -> dict:
    """The report of a scored file against gold (and a second judge's file), with the whole-file
    rubric the rows were scored with; a file that cannot be read is refused without its folder."""
    try:
        cal = studio.calibration(cal_file)
        rows = load_scored(path)
        other = load_scored(other_path) if other_path else None
        trained, trained_name = honest.judge_training_rows(studio, (result_meta(path) or {}).get("judge"))
        report = build_report(
            rows,
            gold=gold.strip() or None,
            pred=pred.strip() or "expected_score",
            by=_columns(by),
            other=other,
            names=(_name(path), _name(other_path) if other_path else "B"),
            calibration=cal,
            trained=trained,
            trained_name=trained_name,  # escaped where the card is written (raft.report)
        )
    except (DataError, ValueError) as exc:
        raise gr.Error(str(exc).replace(str(path.parent) + "/", "")) from None
    rubric = (result_meta(path) or {}).get("rubric")
    if isinstance(rubric, dict):
        report["rubric"] = rubric  # the whole-file rubric the rows were scored with travels into the report
    return report


def _write_downloads(workspace: Workspace, path: Path, other_path: Path | None, report: dict, card: str) -> list[str]:
    """The HTML and JSON reports, named after what they are about, written to the visitor's
    workspace and offered for download."""
    stem = download_stem(path, other_path)
    texts = {
        f"{stem}-report.html": to_html(report, card.split("\n\n", 1)[1], title=plain_title(path, report)),
        f"{stem}-report.json": json.dumps(report, indent=2),
    }
    try:
        for name, text in texts.items():  # charged to the quota as they are written, like their copies
            workspace.write_text(workspace.reports / name, text)
        files = workspace.offer([workspace.reports / name for name in texts])
    except WorkspaceError as exc:
        raise gr.Error(str(exc)) from None
    return files


def _name(path: Path) -> str:
    """A scored file as the report names it: 'file · judge' for a Batch result, else the file's name."""
    meta = result_meta(path)
    return f"{meta.get('file')} · {meta.get('judge')}"[:80] if meta else path.name[:60]


def download_stem(path: Path, other: Path | None = None) -> str:
    """A download's name from what it is about (file and judge, and the judge compared), not a hash:
    'newcomer-run-1', 'newcomer-run-1-vs-default-model'."""

    def words(p: Path) -> str:
        meta = result_meta(p) or {}
        return f"{Path(str(meta.get('file') or p.name)).stem}-{meta.get('judge') or ''}"

    text = words(path) + (f"-vs-{(result_meta(other) or {}).get('judge') or other.stem}" if other else "")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.replace("run: ", "")).strip("-._")[:80] or "report"


def plain_title(path: Path, report: dict) -> str:
    """The HTML report's heading as text (to_html escapes it): which judge, which file, how many rows."""
    meta = result_meta(path) or {}
    return f"{meta.get('judge') or 'the judge in the file'} on {meta.get('file') or path.name} · n = {report['n']}"


def header(path: Path, report: dict) -> str:
    """The card's title: which judge, which file, how many rows; and the whole-file rubric the rows
    were scored with, when the Batch result records one (every name escaped: it is user text)."""
    meta = result_meta(path) or {}
    judge = md_text(meta.get("judge") or "the judge in the file", 80)
    source = md_text(meta.get("file") or path.name, 80)
    title = f"### {judge} on {source} · n = {report['n']} rows with gold\n\n"
    rubric = meta.get("rubric")
    if isinstance(rubric, dict) and rubric.get("criteria"):
        name = f" (preset {md_text(rubric.get('name'), 40)})" if rubric.get("name") else ""
        title += f"Scored with the whole-file rubric{name}: {md_text(rubric['criteria'], 300)}\n\n"
    return title


def fit_calibration(
    studio: Studio, choice: str | None, upload: str | None, gold: str, coverage: float, request: gr.Request = None
) -> str:
    """Fit a temperature and conformal intervals on half of a scored file's rows; returns CAL.json."""
    workspace = studio.workspace(request)
    path = scored_file(studio, workspace, choice, upload)
    if path is None:
        raise gr.Error("Choose a batch result or upload a scored file first.")
    try:
        cal = fit_on_rows(load_scored(path), gold.strip() or None, float(coverage))
    except (DataError, ValueError) as exc:
        raise gr.Error(str(exc)) from None
    try:
        with workspace.writing():
            saved = cal.save(workspace.reports / f"calibration-{path.stem[:40]}.json")
        return workspace.offer([saved])[0]
    except WorkspaceError as exc:
        raise gr.Error(str(exc)) from None


def build(studio: Studio) -> dict[str, Any]:
    with gr.Tab("Evaluate", id="evaluate"):
        gr.Markdown(
            "The report card of a scored file against gold: every metric with its 95% bootstrap interval, per "
            "group, the calibration of the score distribution, and a second judge compared on the same rows."
        )
        results = [NONE]  # filled from the server on page load and after every batch
        with gr.Row():
            with gr.Column():
                choice = gr.Dropdown(results, value=NONE, label="Batch result", elem_id="ev-batch")
                upload = gr.File(label="...or a scored file (.jsonl, .csv, .json, .parquet)", elem_id="ev-file")
            with gr.Column():
                other_choice = gr.Dropdown(results, value=NONE, label="Compare with (optional)")
                other_upload = gr.File(label="...or a second scored file")
            with gr.Column():
                gold = gr.Textbox(
                    "",
                    label="Gold column",
                    info="empty: the column the batch mapped to the score, else gpt4_score, score",
                )
                pred = gr.Textbox("expected_score", label="Prediction column", info="expected_score: the RAIL score")
                by = gr.Textbox(
                    "", label="Group by (columns, comma-separated)", placeholder="category, response_source"
                )
                with gr.Accordion("Calibration (optional)", open=False):
                    cal_file = gr.File(
                        label="CAL.json (from `calibrate` or Fit below)", file_types=[".json"], height=90
                    )
                    with gr.Row():
                        coverage = gr.Slider(
                            0.5,
                            0.99,
                            value=0.9,
                            step=0.01,
                            label="Interval coverage",
                            info="share of gold scores the calibrated intervals should contain",
                        )
                        fit_btn = gr.Button("Fit calibration")
        run = gr.Button("Evaluate", variant="primary", elem_id="ev-button")
        card = gr.Markdown(elem_id="ev-card")
        with gr.Row():
            metrics_plot = gr.Plot(label="Metrics", elem_id="ev-metrics")
            group_plot = gr.Plot(label="By group")
        with gr.Row():
            reliability_plot = gr.Plot(label="Reliability")
            scatter_plot = gr.Plot(label="Expected vs gold")
        compare_plot = gr.Plot(label="Two judges")
        downloads = gr.File(label="Report (HTML, JSON)", file_count="multiple", interactive=False, elem_id="ev-files")
        evaluate_block(studio, scored_file, [choice, upload, gold, pred, by])
        pair = pair_view.evaluate_view(studio)

    run.click(
        bind(evaluate, studio),
        [choice, upload, other_choice, other_upload, gold, pred, by, cal_file],
        [card, metrics_plot, group_plot, reliability_plot, scatter_plot, compare_plot, downloads],
        api_name="evaluate",
    )
    fit_btn.click(bind(fit_calibration, studio), [choice, upload, gold, coverage], cal_file, api_name="calibrate")
    return {"results": [choice, other_choice], "pair": pair}
