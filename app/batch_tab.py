"""Batch tab: upload a file, map columns, score every row with progress, download, see agreement."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from app import honest, judge_rubric, mapping, pair_view, plots
from app.messages import for_visitor, guarded
from app.own_files import check_upload
from app.studio import (
    DEFAULT_CHOICE,
    ENGINE_CHOICES,
    GPU_MAX_S,
    MODE_CHOICES,
    MODE_INFO,
    SEVERAL_ENGINES,
    Studio,
    bind,
    gpu,
    model_dropdown,
)
from app.workspace import Workspace, WorkspaceError
from raft.batch import check_source, download_rows, meta_path
from raft.data import parse_columns, read_jsonl
from raft.engines import available_engines
from raft.files import SUFFIXES, DataError, count_rows, peek_columns, read_records, write_csv_download
from raft.jobs import Job, JobError
from raft.metrics import agreement, confusion
from raft.rubrics import Rubric
from raft.text import md_text


def detect_columns(studio: Studio, path: str | None) -> list[str]:
    """The upload's column names (from its first rows)."""
    file = check_upload(studio, path)
    try:
        return peek_columns(file)
    except DataError as exc:
        raise gr.Error(str(exc)) from None


def output_path(folder: Path, file: Path, model: str, mode: str, settings: str) -> Path:
    """Same input, judge, mode and settings (mapping, calibration) -> same output file, so a rerun resumes it."""
    digest = hashlib.sha256(file.read_bytes() + f"|{model}|{mode}|{settings}".encode()).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", file.stem)[:40].lstrip("._-") or "rows"
    return folder / f"{stem}-{digest}.jsonl"


def results_view(rows: list[dict[str, Any]], gold_field: str, scale: tuple[int, int]) -> tuple[Any, ...]:
    """Table, metrics markdown, scatter and confusion table of scored rows (gold and response
    under their field names: the batch wrote the mapped columns there)."""
    table = pd.DataFrame(
        [
            {
                "row": r.get("row"),
                "expected_score": plots.rounded(r.get("expected_score")),
                "mode_score": r.get("mode_score"),
                "score_mass": plots.rounded(r.get("score_mass")),
                "gold": r.get(gold_field),
                "response": str(r.get("orig_response") or "")[:120],
                "error": r.get("error"),
            }
            for r in rows
        ],
        columns=TABLE_COLUMNS,
    )
    gold = [r.get(gold_field) for r in rows]
    pred = [r.get("expected_score") for r in rows]
    errors = sum(1 for r in rows if r.get("error"))
    if all(g in (None, "") for g in gold):
        missing = f"No gold column '{md_text(gold_field, 60)}'."
        return table, f"Scored {len(rows)} rows, {errors} with errors. {missing}", None, None
    m = agreement(gold, pred)
    fmt = {
        k: "n/a" if m[k] is None else f"{m[k]:.3g}" for k in ("pearson", "spearman", "kendall", "rmse", "mae", "exact")
    }
    if m["n"] < plots.MIN_N:
        fmt.update(pearson="n/a", spearman="n/a", kendall="n/a")
    markdown = (
        f"Scored {len(rows)} rows, {errors} with errors. Against gold on n = {m['n']} rows "
        f"({m['n_missing_pred']} without a prediction): Pearson **{fmt['pearson']}**, Spearman "
        f"{fmt['spearman']}, Kendall {fmt['kendall']}, RMSE {fmt['rmse']}, MAE {fmt['mae']}, "
        f"exact agreement {fmt['exact']}" + (f" (correlations need n ≥ {plots.MIN_N})" if m["n"] < plots.MIN_N else "")
    )
    pairs = [(float(g), float(p)) for g, p in zip(gold, pred) if g not in (None, "") and p is not None]
    scatter = plots.agreement_scatter([g for g, _ in pairs], [p for _, p in pairs], scale)
    values = list(range(scale[0], scale[1] + 1))
    table_c = pd.DataFrame(confusion(gold, pred, scale), columns=[f"pred {v}" for v in values])
    table_c.insert(0, "gold", values)
    return table, markdown, scatter, table_c


def gpu_seconds(studio: Studio, path: str | None, columns: str, model: str, mode: str, *rest: Any, **kw: Any) -> float:
    """ZeroGPU time to ask for a batch: by its rows and mode, capped (a longer batch resumes on rerun)."""
    try:
        rows = count_rows(path) or 100
    except (DataError, OSError, TypeError):
        rows = 100
    per_row = 0.2 if mode == "score_only" else 3.0
    return min(GPU_MAX_S, 30 + rows * per_row)


def row_progress(progress: Any, total: int, generated: bool) -> dict[str, Any]:
    """score_file's progress callbacks for the bar: rows scored after each batch, and while a
    batch generates feedback its tokens too, so the bar says something from the first batch on."""
    state = {"rows": 0, "tokens": 0}

    def rows(n: int) -> None:
        state["rows"] = n
        progress(min(n / total, 1.0), desc=f"scoring: {n} of {total} rows")

    def tokens(row: int, ids: list[int]) -> None:
        state["tokens"] += len(ids)
        if state["tokens"] % 32 == 0:
            done = state["rows"]
            progress(min(done / total, 1.0), desc=f"scoring: {done} of {total} rows, {state['tokens']} feedback tokens")

    return {"progress": rows, **({"on_tokens": tokens} if generated else {})}


@gpu(duration=gpu_seconds)
def score_batch(
    studio: Studio,
    path: str | None,
    columns: str,
    model: str,
    mode: str,
    batch_size: int,
    gold_field: str,
    calibration_file: str | None = None,
    engine: str = "hf",
    rubric: str | None = None,
    criterion: str = "",
    level1: str = "",
    level2: str = "",
    level3: str = "",
    level4: str = "",
    level5: str = "",
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),
) -> tuple[Any, ...]:
    """Score every row of the upload into the visitor's workspace as a batch job (raft.jobs: a
    subprocess with its state on disk, so a reloaded page finds it again and a rerun resumes row by
    row; an identical run going on is joined, not repeated), follow it on the bar, then return the
    views and the two downloads.

    A file whose columns (mapped, with the whole-file rubric) lack a field the judge reads is
    refused before the job starts, naming every missing field. The gold column is the one the
    mapping gave `orig_score`."""
    job = start_batch(
        studio, path, columns, model, mode, batch_size, gold_field, calibration_file, engine,
        rubric, criterion, level1, level2, level3, level4, level5, request,
    )  # fmt: skip
    shown = None
    while True:
        job = studio.jobs.get(job.id)
        now = batch_progress(studio, job)
        if now != shown:
            shown = now
            progress(now[0], desc=now[1])
        if not job.active:
            break
        time.sleep(POLL_S)
    return finish(studio, job, studio.workspace(request))


POLL_S = 0.25
"""How often a waiting Score click reads its job's status file."""


def start_batch(
    studio: Studio,
    path: str | None,
    columns: str,
    model: str,
    mode: str,
    batch_size: int,
    gold_field: str,
    calibration_file: str | None = None,
    engine: str = "hf",
    rubric: str | None = None,
    criterion: str = "",
    level1: str = "",
    level2: str = "",
    level3: str = "",
    level4: str = "",
    level5: str = "",
    request: gr.Request = None,
) -> Job:
    """Check the upload and the mapping, keep a copy of the file beside its output in the
    visitor's workspace, and start (or join) the batch job that scores it."""
    file = check_upload(studio, path)
    cal = studio.calibration(calibration_file)
    workspace = studio.workspace(request)
    whole_file = mapping.rubric_of(rubric, criterion, level1, level2, level3, level4, level5)
    if engine not in available_engines():
        raise gr.Error(f"the engine '{str(engine)[:20]}' is not available here")
    total, columns_used, scale, resolved = check_batch(studio, file, columns, model, whole_file)
    key = f"{columns or ''}|{whole_file.to_dict() if whole_file else ''}|{cal.__dict__ if cal else ''}|{engine}"
    out = output_path(workspace.batch, file, model or DEFAULT_CHOICE, mode, key)
    side_files = {".rubric.json": whole_file.to_dict() if whole_file else None, ".cal.json": cal}
    source = stage_inputs(workspace, file, out, side_files, calibration_file)
    # the job's own process writes the output, charged as it writes against the workspace's quota
    # and the total cap, measured on disk there: it stops at them, keeping the rows already scored
    command = [sys.executable, "-m", "raft", "score", "--input", str(source), "--out", str(out)]
    command += workspace.job_bounds()
    command += ["--mode", mode, "--batch-size", str(int(batch_size)), "--chunk-rows", "32", "--engine", engine]
    command += ["--exact-columns", "--input-name", file.name, "--scale", f"{scale[0]},{scale[1]}"]
    command += optional_flags(studio, out, columns if columns_used else "", resolved, side_files)
    info = {
        "out": str(out),
        "file": file.name,
        "judge": model or DEFAULT_CHOICE,
        "mode": mode,
        "total": total,
        "gold_field": gold_field or "orig_score",
        "scale": list(scale),
        "columns": columns_used,
        "rubric": whole_file.to_dict() if whole_file else None,
    }
    try:
        return studio.jobs.start_batch(command, info)
    except JobError as exc:
        raise gr.Error(str(exc)) from None


def check_batch(
    studio: Studio, file: Path, columns: str, model: str, whole_file: Rubric | None
) -> tuple[int, dict[str, str], tuple[int, int], str | None]:
    """(rows, mapping, scale, resolved model) of a batch, or a readable refusal naming the file.

    The whole file is read once within the request's budget before the judge loads: a file that
    decodes past it is refused before a row is scored or written."""
    try:
        total = sum(1 for _ in read_records(file, label=file.name)) or 1
        columns_used = parse_columns(columns)
        scale = studio.model_scale(model)
        check_source(file, columns_used, scale, whole_file.check(scale) if whole_file else None)
        return total, columns_used, scale, studio.resolve_model(model)
    except (DataError, ValueError) as exc:
        raise gr.Error(str(exc).replace(str(file), file.name)) from None


def stage_inputs(
    workspace: Workspace, file: Path, out: Path, side_files: dict[str, Any], calibration_file: str | None
) -> Path:
    """Copy the upload (once) and write the rubric and calibration beside the batch's output, where
    its job reads them; charged to the workspace as written. Returns the upload's copy."""
    try:
        with workspace.writing():  # the job's inputs, charged as written; the job charges its own output
            source = sidecar(out, ".input" + file.suffix.lower())
            if not source.is_file():
                workspace.copy(file, source)
            for suffix, value in side_files.items():
                if value is not None and suffix == ".cal.json":
                    workspace.copy(Path(calibration_file), sidecar(out, suffix))
                elif value is not None:
                    workspace.write_text(sidecar(out, suffix), json.dumps(value, ensure_ascii=False))
    except WorkspaceError as exc:
        raise gr.Error(str(exc)) from None
    return source


def optional_flags(
    studio: Studio, out: Path, columns: str, resolved: str | None, side_files: dict[str, Any]
) -> list[str]:
    """The `raft score` options a batch passes only when it has them: the column mapping's own text
    (parsed the same way there), the model, the device, and the rubric and calibration files."""
    flags = []
    if columns:
        flags += ["--columns", columns]
    if resolved:
        flags += ["--model", str(resolved)]
    if studio.settings.device:
        flags += ["--device", str(studio.settings.device)]
    for suffix, value in side_files.items():
        if value is not None:
            flags += ["--rubric" if suffix == ".rubric.json" else "--calibration", str(sidecar(out, suffix))]
    return flags


def batch_progress(studio: Studio, job: Job) -> tuple[float, str]:
    """(fraction, words) of a batch job: preparing the default model, loading the judge, or rows
    scored of the total with the rate and the time left (and feedback tokens while a batch
    generates), all read from the job's status file."""
    info = studio.jobs.batch_info(job)
    state = info.get("status") or {}
    name = md_text(str(info.get("judge", DEFAULT_CHOICE)), 80)
    try:
        total = int(state.get("total") or info.get("total") or 1)
        rows, first = int(state.get("rows") or 0), int(state.get("first") or 0)
        since = float(state.get("since") or 0)
    except (TypeError, ValueError):  # a status file being written or damaged: nothing to say yet
        total, rows, first, since = int(info.get("total") or 1), 0, 0, 0.0
    phase = state.get("phase", "loading")
    if phase == "preparing" and job.active:
        return 0, f"preparing the default model for {name} (first use: a 517 MB download, then a conversion)"
    if phase in ("loading", "preparing") and job.active:
        return 0, f"loading the judge {name}"
    words = f"scoring: {rows} of {total} rows"
    if job.active:
        words += pace(rows - first, total - rows, time.time() - since if since else 0.0)
        if state.get("tokens"):
            words += f", {state['tokens']} feedback tokens"
    return min(rows / total, 1.0), words


def pace(done: int, left: int, seconds: float) -> str:
    """The rate and the time left (", 0.2 rows/s, about 2 min left") once this run has scored rows."""
    if done <= 0 or seconds <= 0:
        return ", the first rows are being scored"
    rate = done / seconds
    remaining = left / rate
    when = f"{remaining:.0f} s" if remaining < 90 else f"{remaining / 60:.0f} min"
    speed = f"{rate:.2g}" if rate < 10 else f"{rate:.0f}"
    return f", {speed} rows/s, about {when} left"


def sidecar(out: Path, suffix: str) -> Path:
    """A file a batch job reads (the upload's copy, the rubric, the calibration), in a hidden folder
    beside the results so that no list of results shows it."""
    folder = out.parent / ".sources"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (out.stem + suffix)


def own_batch(studio: Studio, job_id: str | None, workspace: Workspace) -> Job | None:
    """A batch job by id if it scores into this visitor's workspace, else None (ids are looked up)."""
    try:
        job = studio.jobs.get(str(job_id or ""))
    except JobError:
        return None
    out = studio.jobs.batch_info(job).get("out")
    return job if job.kind == "batch" and out and Path(out).parent == workspace.batch else None


def latest_batch(studio: Studio, request: gr.Request = None) -> str:
    """The visitor's newest batch job, running or ended, or "": what a reloaded page follows (its
    progress while it runs, its results once it has ended), as the Fine-tune tab does for jobs."""
    workspace = studio.workspace(request)
    for job in studio.jobs.list("batch"):  # newest first
        if own_batch(studio, job.id, workspace):
            return job.id
    return ""


def follow_batch(
    studio: Studio,
    path: str | None,
    columns: str,
    model: str,
    mode: str,
    batch_size: int,
    gold_field: str,
    calibration_file: str | None = None,
    engine: str = "hf",
    rubric: str | None = None,
    criterion: str = "",
    level1: str = "",
    level2: str = "",
    level3: str = "",
    level4: str = "",
    level5: str = "",
    request: gr.Request = None,
) -> tuple[str, str, str]:
    """A Score click's first step: start (or join) the job and hand its id to the tab's timer, which
    shows its phase and rows from the first seconds on; the click's next step waits for the results
    (so the timer, told they are shown by this click, does not make them again)."""
    job = start_batch(
        studio, path, columns, model, mode, batch_size, gold_field, calibration_file, engine,
        rubric, criterion, level1, level2, level3, level4, level5, request,
    )  # fmt: skip
    return job.id, f"**{job.status}** · {batch_progress(studio, job)[1]}", job.id


def watch_batch(studio: Studio, job_id: str | None, shown: str | None, request: gr.Request = None) -> tuple[Any, ...]:
    """Called by the tab's timer: the followed job's progress while it runs, and its results once
    when it has ended (a reloaded page gets both); nothing changes when no job is followed."""
    skip = (gr.skip(),) * 5
    job = own_batch(studio, job_id, studio.workspace(request)) if job_id else None
    if job is None:
        return "", *skip, shown
    fraction, words = batch_progress(studio, job)
    info = studio.jobs.batch_info(job)
    what = f"{md_text(str(info.get('file') or 'rows'), 60)} · judge {md_text(str(info.get('judge') or ''), 80)}"
    if job.active:
        return f"**{job.status}** · {what} · {words} ({100 * fraction:.0f}%)", *skip, shown
    if shown == job.id:  # its results are shown (by this timer once, or by the click that waits for them)
        return f"**{job.status}** · {what} · {words}", *skip, shown
    try:
        views = finish(studio, job, studio.workspace(request))
    except gr.Error as exc:
        return f"⚠️ {exc.message}", *skip, job.id
    return f"**{job.status}** · {what} · {words}", *views, job.id


def finish(studio: Studio, job: Job, workspace: Workspace) -> tuple[Any, ...]:
    """The views and downloads of a finished batch job; a failed one is said with its reason."""
    info = studio.jobs.batch_info(job)
    if job.status != "completed":
        why = for_visitor(job.error or job.status).strip().splitlines()
        raise gr.Error(f"the batch {job.status}: {why[0] if why else job.status}")
    out = Path(info["out"])
    name = str(info.get("file") or "rows")
    rows = sorted(read_jsonl(out), key=lambda r: r["row"])
    for r in rows:
        if r.get("error"):
            r["error"] = str(r["error"]).replace(str(out), name)
    good = sum(1 for r in rows if r.get("expected_score") is not None)
    try:
        with workspace.writing():  # charged as written (the job charged its own output as it wrote it)
            if good:  # what Evaluate and Align list: rewritten with every finish (a rerun may have added rows)
                meta = {"file": name, "judge": info.get("judge"), "time": time.time(), "rows": len(rows)}
                meta.update(scored=good, columns=info.get("columns") or {}, rubric=info.get("rubric"))
                workspace.write_text(meta_path(out), json.dumps(meta, ensure_ascii=False))
            csv_path = write_csv_download(out.with_suffix(".csv"), download_rows(rows, info.get("columns")))
    except WorkspaceError as exc:
        raise gr.Error(f"The rows are scored, but their downloads do not fit: {exc}") from None
    scale = tuple(info.get("scale") or (1, 5))
    table, summary, scatter, matrix = results_view(rows, info.get("gold_field", "orig_score"), scale)
    reused = int((info.get("result") or {}).get("skipped") or 0)
    if reused:
        summary += f"\n\nReused {reused} of {len(rows)} rows scored before (the same file, judge and settings)."
    gold = info.get("gold_field", "orig_score")
    summary += honest.batch_note(rows, *honest.judge_training_rows(studio, info.get("judge")), gold)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{Path(name).stem}-{info.get('judge') or ''}".replace("run: ", ""))
    stem = stem.strip("-._")[:80] or "rows"
    names = [f"{stem}-scored.csv", f"{stem}-scored.jsonl"]  # what it is, not a hash
    try:
        offered = workspace.offer([csv_path, out], names)
    except WorkspaceError as exc:
        raise gr.Error(f"The rows are scored, but their downloads do not fit: {exc}") from None
    return table, summary, scatter, matrix, offered


def no_results() -> tuple[Any, ...]:
    """Empty views while a new batch runs, so that the last batch's table is never read as this one's."""
    return None, "", None, None, None


def trained_rubric(studio: Studio, choice: str | None, current: str | None, own: bool = False) -> list[Any]:
    """A fine-tuned judge chosen: the rubric it was trained with, for a file whose rows carry none,
    unless the visitor chose or typed one (`own`) (app.judge_rubric)."""
    return judge_rubric.for_batch(studio, choice, current, bool(own))


TABLE_COLUMNS = ["row", "expected_score", "mode_score", "score_mass", "gold", "response", "error"]


def build(studio: Studio) -> dict[str, Any]:
    with gr.Tab("Batch", id="batch"):
        gr.Markdown(
            "Score every row of a file with a judge. Map the columns (recognised by name), give a rubric for the "
            "whole file if rows have none; with a gold column you get agreement metrics, and the result appears "
            "in the Evaluate tab."
        )
        with gr.Row():
            with gr.Column():
                upload = gr.File(
                    label="Rows to score (.csv, .jsonl, .json, .parquet)",
                    file_types=list(SUFFIXES),
                    elem_id="batch-file",
                )
                form = mapping.build("batch", mapping.MAPPED[:5], need_score=False)
            with gr.Column():
                model = model_dropdown(studio, elem_id="batch-model")
                mode = gr.Radio(
                    MODE_CHOICES,
                    value="score_only",
                    label="Mode",
                    elem_id="batch-mode",
                    info=MODE_INFO,
                )
                batch_size = gr.Slider(1, 64, value=8, step=1, label="Batch size", info="rows scored together")
                gold = gr.Textbox("orig_score", visible=False)  # gold follows the mapping; kept for API callers
                engine = gr.Radio(ENGINE_CHOICES, value="hf", label="Engine", visible=SEVERAL_ENGINES)
                with gr.Accordion("Calibration (optional)", open=False):
                    calibration = gr.File(
                        label="CAL.json from `calibrate` or the Evaluate tab", file_types=[".json"], height=90
                    )
                run = gr.Button("Score all rows", variant="primary", elem_id="batch-button")
        summary = gr.Markdown(elem_id="batch-summary")
        table = gr.Dataframe(
            headers=TABLE_COLUMNS, label="Results", elem_id="batch-table", interactive=False, wrap=True
        )
        with gr.Row():
            scatter = gr.Plot(label="Expected vs gold")
            matrix = gr.Dataframe(headers=["gold"], label="Confusion (rounded scores)", interactive=False)
        downloads = gr.File(
            label="Download (CSV, JSONL)", file_count="multiple", interactive=False, elem_id="batch-downloads"
        )
        job = gr.Textbox("", visible=False, elem_id="batch-job")
        status = gr.Markdown(elem_id="batch-status")
        shown = gr.State(None)
        timer = gr.Timer(2.0)
        rubric_own = gr.State(False)  # a rubric chosen or typed by the visitor: no judge replaces it
        pair = pair_view.batch_view(studio)

    form_outputs = [form["columns"], *form["dropdowns"].values(), form["rubric"], form["criterion"], *form["levels"]]
    rubric_outputs = [form["rubric"], form["criterion"], *form["levels"]]
    upload.upload(
        guarded(lambda p: detect_columns(studio, p)), upload, form["columns"], api_name="batch_columns"
    ).success(mapping.filled(form), form["columns"], form_outputs, api_name=False).then(
        lambda: False, None, rubric_own, api_name=False, show_progress="hidden"
    ).then(  # a new file's fill proposes the first preset; a fine-tuned judge's own rubric replaces it
        bind(trained_rubric, studio), [model, form["rubric"]], rubric_outputs, api_name=False, show_progress="hidden"
    )
    model.change(studio.model_mode, model, mode, api_name="batch_model_mode")
    model.change(
        bind(trained_rubric, studio),
        [model, form["rubric"], rubric_own],
        rubric_outputs,
        api_name="batch_trained_rubric",
        show_progress="hidden",
    )
    gr.on(
        [c.input for c in mapping.rubric_inputs(form)],
        lambda: True,
        None,
        rubric_own,
        api_name=False,
        show_progress="hidden",
    )
    batch_inputs = [upload, form["text"], model, mode, batch_size, gold, calibration, engine]
    batch_inputs += mapping.rubric_inputs(form)
    started = run.click(bind(follow_batch, studio), batch_inputs, [job, status, shown], api_name="batch_start")
    views = [table, summary, scatter, matrix, downloads]
    cleared = started.success(no_results, None, views, api_name=False, show_progress="hidden")
    scored = cleared.success(
        bind(score_batch, studio),
        batch_inputs,
        [table, summary, scatter, matrix, downloads],
        api_name="score_batch",
    )
    polled = {"show_progress": "hidden"}  # reads of state on disk: no "processing" overlay
    timer.tick(
        bind(watch_batch, studio), [job, shown], [status, table, summary, scatter, matrix, downloads, shown],
        api_name="batch_watch", **polled,
    )  # fmt: skip
    return {
        "models": [model, *pair["models"]],
        "scored": scored,
        "job": job,
        "latest": bind(latest_batch, studio),
        "pair_scored": pair["scored"],
    }
