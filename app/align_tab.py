"""Align tab: label a scored file yourself, where the judge is unsure; see how far the judge agrees
with you on held-out rows; fine-tune it on your labels and compare before and after.

A thin view over `raft.labels` (the project and its append-only labels, in the visitor's
workspace), `raft.selection` (which row next) and `raft.align` (agreement, dataset, comparison).
Labels are on disk the moment a button is pressed: a reload shows the same project, labels and
next row. Keys 1-9 score, s skips, u undoes (outside text boxes).

A project knows the whole-file rubric its rows were scored with (a Batch result's, or a preset
chosen at *Start project* for an upload), so rows without a rubric of their own can be shown and
trained on. Every grader is their own labeller (a typed name, else the browser session): Undo takes
back only your own label, a label is accepted only for the row on your card, and a row on one
grader's card is not offered to another for `OFFER_SECONDS`. Every text from the rows is escaped,
and the response is shown verbatim (whitespace and numbered lines as written).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from app import align_compare, align_state, finetune_form
from app.estimate_panel import align_block
from app.finetune_form import FORM
from app.own_files import NONE, batch_results, project_names, projects_dir, result_meta, scored_file
from app.studio import RUN_PREFIX, Studio, bind, model_dropdown
from app.workspace import WorkspaceError
from raft.align import agreement, agreement_markdown, write_label_dataset
from raft.files import DataError
from raft.labels import OFFER_SECONDS, LabelProject
from raft.models import read_manifest
from raft.report import load_scored
from raft.rubrics import Rubric, presets
from raft.selection import STRATEGIES, describe, next_rows
from raft.text import md_text, verbatim_html

FILE_RUBRIC = "(the batch result's, or the rows' own)"
"""The rubric choice that adds none: a Batch result brings the rubric it was scored with."""

MAX_LEVELS = 10
"""Score buttons made (those beyond a project's scale are hidden)."""
KEYS_JS = """
() => {
  if (window.__raftAlignKeys) return;
  window.__raftAlignKeys = true;
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const card = document.getElementById('align-card');
    if (!card || card.offsetParent === null) return;
    let button = null;
    if (/^[0-9]$/.test(e.key)) {
      button = [...document.querySelectorAll('#align-scores button')].find(
        (b) => b.innerText.trim() === e.key && b.offsetParent !== null);
    } else if (e.key === 's') button = document.getElementById('align-skip');
    else if (e.key === 'u') button = document.getElementById('align-undo');
    if (button && button.offsetParent !== null && !button.disabled) { e.preventDefault(); button.click(); }
  });
}
"""
"""Keyboard labelling: a digit presses that score's button, s Skip, u Undo, while the Align tab shows."""


def open_project(studio: Studio, name: str | None, request: gr.Request | None) -> LabelProject:
    """A project looked up by name among the visitor's own (never a path from the client)."""
    workspace = studio.workspace(request)
    if not name or name not in project_names(workspace):
        raise gr.Error("Choose a labelling project first, or start one from a scored file.")
    return LabelProject.open(projects_dir(workspace) / name)


def labeller_of(request: gr.Request | None, grader: str | None = "", browser: str | None = "") -> str:
    """Who labels: the typed name, else this browser (its identity kept across reloads, by digest:
    app.align_state), else this page's session, after the signed-in account when there is one;
    two people on one login are two labellers."""
    typed = " ".join(str(grader or "").split())[:40]
    session = str(getattr(request, "session_hash", None) or "")
    kept = align_state.browser_labeller(browser)
    who = typed or kept or ("session " + hashlib.sha256(session.encode()).hexdigest()[:8] if session else "")
    user = str(getattr(request, "username", None) or "")
    return f"{user} / {who}" if user and who else user or who


def create(
    studio: Studio,
    choice: str | None,
    upload: str | None,
    judge_choice: str | None,
    heldout: float,
    rubric_choice: str | None = None,
    request: gr.Request = None,
) -> Any:
    """A new project from a Batch result or an uploaded scored file; the held-out rows are fixed now.

    The rubric that rows without their own are shown and trained with: the preset chosen, else
    the one the Batch result was scored with (its description beside it), with its column mapping.
    A create that fails leaves no project behind, and the project chosen stays as it was."""
    workspace = studio.workspace(request)
    path = scored_file(studio, workspace, choice, upload)
    if path is None:
        raise gr.Error("Choose a batch result or upload a scored file first.")
    folder = None
    described = (result_meta(path) or {}) if not upload else {}
    if described.get("judge"):  # a Batch result's scores are its judge's: calibrating or continuing must use it
        judge_choice = str(described["judge"])
    try:
        rubric = None
        if rubric_choice and rubric_choice != FILE_RUBRIC:
            if rubric_choice not in presets():
                raise DataError(f"'{str(rubric_choice)[:40]}' is not a rubric preset")
            rubric = presets()[rubric_choice]
        elif isinstance(described.get("rubric"), dict):
            rubric = Rubric.from_dict(described["rubric"])
        columns = described.get("columns") if isinstance(described.get("columns"), dict) else {}
        model = studio.resolve_model(judge_choice)
        manifest = (read_manifest(model) if model and Path(model).is_dir() else None) or {}
        from raft.prompts import JudgePrompt

        prompt = JudgePrompt.from_dict(manifest["prompt"]) if "prompt" in manifest else None
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", path.stem)[:30].strip("_-") or "labels"
        name = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        rows = load_scored(path)  # within the request's read budget (app.studio.bind)
        folder = projects_dir(workspace) / name
        with workspace.writing():  # the project's files are charged to the quota as they are written
            LabelProject.create(
                folder,
                rows,
                judge=judge_choice or None,
                prompt=prompt,
                scale=tuple(manifest["scale"]) if "scale" in manifest else None,
                columns={str(k): str(v) for k, v in columns.items()},
                heldout=float(heldout),
                seed=0,
                source=path.name,
                rubric=rubric,
            )
    except WorkspaceError as exc:  # the project was being made in a temporary folder, now removed
        raise gr.Error(str(exc)) from None
    except (DataError, ValueError) as exc:
        raise gr.Error(str(exc).replace(str(path.parent) + "/", "")) from None
    return gr.Dropdown(choices=project_names(workspace), value=name)


def scored_by(studio: Studio, choice: str | None, judge_choice: str | None, request: gr.Request = None) -> Any:
    """Choosing a Batch result shows the judge that scored it in the judge picker (the project uses it)."""
    if not choice or choice == NONE:
        return gr.Dropdown(value=judge_choice)
    try:
        path = scored_file(studio, studio.workspace(request), choice, None)
    except gr.Error:
        return gr.Dropdown(value=judge_choice)
    judge = (result_meta(path) or {}).get("judge") if path else None
    return gr.Dropdown(value=str(judge) if judge else judge_choice)


def _card(project: LabelProject, key: int | None, waiting: int = 0) -> str:
    """The row to label as Markdown: our own headings around the row's texts, every one escaped;
    instruction, response and reference verbatim (whitespace, indentation and numbered lines kept)."""
    if key is None:
        c = project.counts()
        if waiting:
            return (
                f"**The {waiting} rows left are on other graders' cards just now**; they come back here if not "
                f"answered within {OFFER_SECONDS // 60} minutes."
            )
        return (
            f"**Every row is labelled or skipped** ({c['train_labelled']} training, {c['heldout_labelled']} held-out)."
        )
    try:
        item = project.item(key)
    except DataError as exc:
        return (
            f"#### Row {key} cannot be shown\n\nfield '{md_text(exc.field)}': {md_text(exc.reason)}. The project was "
            "made without the rubric its rows were scored with: start a new project from the same file and choose "
            "the rubric preset."
        )
    lo, hi = project.scale
    side = "held-out (measures the judge, never trains it)" if key in project.heldout else "training"
    rubric = "\n".join(f"- **{k}**: {md_text(item[f'orig_score{k}_description'])}" for k in range(lo, hi + 1))
    reference = verbatim_html(item["orig_reference_answer"]) if item["orig_reference_answer"] else "_(none)_"
    return (
        f"#### Row {key} · {side}\n\n**Rubric:** {md_text(item['orig_criteria'])}\n\n{rubric}\n\n"
        f"**Instruction**\n\n{verbatim_html(item['orig_instruction'])}\n\n"
        f"**Response**\n\n{verbatim_html(item['orig_response'])}\n\n"
        f"**Reference answer**\n\n{reference}\n"
    )


def _judge_text(project: LabelProject, key: int | None, blind: bool) -> str:
    if key is None:
        return ""
    if blind:
        return "The judge's score is hidden until you submit (blind labelling)."
    row = project.rows[key]
    probs = ", ".join(f"{p:.2f}" for p in row["probs"])
    return f"Judge: expected score **{float(row['expected_score']):.2f}** (distribution {probs})"


def view(
    studio: Studio,
    name: str | None,
    strategy: str,
    blind: bool,
    grader: str = "",
    browser: str = "",
    request: gr.Request = None,
) -> tuple[Any, ...]:
    """The card of the next row, the judge panel, the agreement panel, the buttons and the row shown.

    The row is recorded as this grader's card (only it can be labelled from here), and rows on
    other graders' cards are passed over for a while."""
    if not name:
        hidden = [gr.Button(visible=False)] * MAX_LEVELS
        return ("Start a project from a scored file, or choose one.", "", "", None, None, *hidden, None)
    project = open_project(studio, name, request)
    labeller = labeller_of(request, grader, browser)
    strategy = strategy if strategy in STRATEGIES else "uncertain"
    try:
        with studio.workspace(request).writing():  # the offers file is charged to the quota as written
            busy = project.offered_to_others(labeller)
            keys = next_rows(project, strategy, 1, exclude=busy)
            key = keys[0] if keys else None
            project.offer(labeller, key)
    except WorkspaceError as exc:
        raise gr.Error(f"No card can be offered: {exc}") from None
    waiting = len(next_rows(project, strategy, len(project.rows))) if key is None and busy else 0
    lo, hi = project.scale
    buttons = [gr.Button(str(lo + i), visible=lo + i <= hi and key is not None) for i in range(MAX_LEVELS)]
    result = agreement(project)
    confusion = pd.DataFrame(result["confusion"], columns=[f"judge {v}" for v in range(lo, hi + 1)])
    confusion.insert(0, "your label", list(range(lo, hi + 1)))
    worst = pd.DataFrame(result["disagreements"], columns=["key", "label", "expected_score", "gap", "instruction"])
    return (
        _card(project, key, waiting),
        _judge_text(project, key, blind),
        agreement_markdown(result)
        + f"\n\nNext row by **{strategy}**: {describe(strategy)}; held-out rows at random. "
        + f"You label as **{md_text(labeller or 'this session')}**.",
        confusion,
        worst,
        *buttons,
        key,
    )


def _revealed(project: LabelProject, key: int, verb: str) -> str:
    row = project.rows[key]
    return f"Row {key} {verb}; the judge said **{float(row['expected_score']):.2f}**."


def submit(
    studio: Studio,
    name: str | None,
    key: int | None,
    score: str,
    note: str,
    grader: str = "",
    browser: str = "",
    request: gr.Request = None,
) -> tuple[str, str]:
    """Record the label of the row on this grader's card (`key`, the row the card showed); a row the
    card did not show, or a second answer to one card, is refused. Reveals the judge's score for
    the row and clears the note."""
    if key is None:
        raise gr.Error("No row to label: choose a project.")
    project = open_project(studio, name, request)
    labeller = labeller_of(request, grader, browser)
    try:
        value = project.label_value(score)
        with studio.workspace(request).writing():  # a label is charged to the quota before it is appended
            project.claim(labeller, key)
            project.label(key, value, note=note or "", labeller=labeller)
    except (DataError, WorkspaceError) as exc:
        raise gr.Error(str(exc)) from None
    return _revealed(project, int(key), f"labelled {value}"), ""


def skip(
    studio: Studio, name: str | None, key: int | None, grader: str = "", browser: str = "", request: gr.Request = None
) -> str:
    """Pass over the row on this grader's card (refused for a row the card did not show)."""
    if key is None:
        raise gr.Error("No row to skip: choose a project.")
    project = open_project(studio, name, request)
    labeller = labeller_of(request, grader, browser)
    try:
        with studio.workspace(request).writing():
            project.claim(labeller, key)
            project.skip(key, labeller=labeller)
    except (DataError, WorkspaceError) as exc:
        raise gr.Error(str(exc)) from None
    return f"Row {int(key)} skipped (Undo brings it back)."


def undo(studio: Studio, name: str | None, grader: str = "", browser: str = "", request: gr.Request = None) -> str:
    """Take back this grader's own last label or skip (never another grader's)."""
    project = open_project(studio, name, request)
    try:
        with studio.workspace(request).writing():
            entry = project.undo(labeller=labeller_of(request, grader, browser))
    except WorkspaceError as exc:
        raise gr.Error(str(exc)) from None
    if entry is None:
        return "Nothing to undo."
    what = f"label {entry['score']}" if entry["kind"] == "label" else "skip"
    return f"Undid the {what} of row {entry['key']}."


def finetune(
    studio: Studio,
    name: str | None,
    start_from: str,
    batch_size: float = 4,
    grad_accum: float = 1,
    request: gr.Request = None,
) -> tuple[Any, ...]:
    """Write the labelled training rows as a dataset and open the Fine-tune tab filled in with it:
    steps for a few epochs over its rows, a note of what was written, and, to continue, the
    project's judge by its run name (never a server path) as the base."""
    project = open_project(studio, name, request)
    workspace = studio.workspace(request)
    n = 1
    while (workspace.datasets / f"labels-{name}-{n}").exists():
        n += 1
    dataset = f"labels-{name}-{n}"[:120]
    base = ""
    if start_from == "continue":
        judge = project.meta.get("judge") or ""
        if not judge.startswith(RUN_PREFIX):
            raise gr.Error("The project's judge is not a fine-tuned run: start from the base model instead.")
        try:
            studio.resolve_model(judge)  # it must still be a run with weights
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        base = judge  # "run: NAME", which the Fine-tune form resolves: no server path on the page
    try:
        with workspace.writing():  # charged to the quota as it is written
            stats = write_label_dataset(project, workspace.datasets / dataset)
    except WorkspaceError as exc:
        shutil.rmtree(workspace.datasets / dataset, ignore_errors=True)
        raise gr.Error(str(exc)) from None
    except (DataError, ValueError) as exc:
        raise gr.Error(str(exc)) from None
    rows = int(stats.get("train", 0)) if isinstance(stats, dict) else 0
    rows = rows or finetune_form.training_rows(workspace.datasets / dataset)
    batch, accum = int(batch_size or 1), int(grad_accum or 1)
    return (
        gr.Tabs(selected="finetune"),
        gr.Dropdown(choices=studio.datasets(request), value=dataset),
        studio.fresh_run_name(),
        base,
        finetune_form.propose_steps(rows, batch, accum),
        finetune_form.written_note(dataset, rows, batch, accum),
    )


def compare(
    studio: Studio, name: str | None, judge_choice: str | None, request: gr.Request = None, progress=gr.Progress()
) -> tuple[str, pd.DataFrame]:
    """Score the labelled held-out rows with another judge and compare it with the project's judge:
    verdicts, collapse warnings, advice and the per-row table, kept with the project."""
    project = open_project(studio, name, request)
    try:
        with studio.workspace(request).writing():  # the rescored rows are charged to the quota as written
            return align_compare.compare(studio, project, judge_choice, progress)
    except WorkspaceError as exc:
        raise gr.Error(str(exc)) from None


def calibrate(studio: Studio, name: str | None, request: gr.Request = None) -> tuple[str, pd.DataFrame, Any]:
    """Calibrate the project's judge to the training labels (seconds), compare it on the held-out
    labels, and offer the calibrated judge in the pickers."""
    project = open_project(studio, name, request)
    try:
        with studio.workspace(request).writing():  # the findings kept with the project are charged
            markdown, table, choice = align_compare.calibrate(studio, project)
    except WorkspaceError as exc:
        raise gr.Error(str(exc)) from None
    return markdown, table, gr.Dropdown(choices=studio.model_choices(), value=choice)


def comparison(studio: Studio, name: str | None, request: gr.Request = None) -> tuple[str, pd.DataFrame]:
    """The project's last comparison (a reload shows it again)."""
    if not name or name not in project_names(studio.workspace(request)):
        return align_compare.last_comparison(None)
    return align_compare.last_comparison(open_project(studio, name, request))


def project_list(studio: Studio, saved: Any = None, request: gr.Request = None) -> tuple[Any, str, dict[str, Any]]:
    """As the page loads: the project dropdown filled from the server, the newest chosen, with, in
    the same update (before the card is drawn for it), this browser's labeller identity and the
    state kept with it."""
    names = project_names(studio.workspace(request))
    who, kept = align_state.restored_identity(saved)
    return gr.Dropdown(choices=names, value=names[0] if names else None), who, kept


def build(studio: Studio, tabs: gr.Tabs, tune: dict[str, Any], saved: gr.BrowserState | None = None) -> dict[str, Any]:
    """The Align tab; *Fine-tune on my labels* fills the Fine-tune tab (`tune`) and switches `tabs` to
    it; its choices and labeller identity are kept in `saved` (align_state.browser_state, made by
    the caller outside the tabs)."""
    results = [NONE] if studio.settings.public else [NONE, *batch_results(studio.workspace())]
    with gr.Tab("Align", id="align"):
        gr.Markdown(
            "Label rows yourself, chosen where the judge is unsure; see how far it agrees with you on held-out "
            "rows it never trains on; fine-tune it on your labels; compare before and after. Keys: **1-9** score, "
            "**s** skip, **u** undo."
        )
        with gr.Accordion("Start a project", open=False):
            with gr.Row():
                choice = gr.Dropdown(results, value=NONE, label="Batch result", elem_id="align-batch")
                upload = gr.File(label="...or a scored file", elem_id="align-file")
                judge = model_dropdown(
                    studio,
                    label="The judge that scored it",
                    info="a Batch result brings the judge that scored it; choose it for an uploaded file",
                )
                heldout = gr.Slider(0.1, 0.5, value=0.3, step=0.05, label="Held-out share (measures, never trains)")
                rubric = gr.Dropdown(
                    [FILE_RUBRIC, *presets()],
                    value=FILE_RUBRIC,
                    label="Rubric for rows without one",
                    info="a Batch result brings the rubric it was scored with; an uploaded file needs one if its "
                    "rows carry none",
                    elem_id="align-rubric",
                )
            start = gr.Button("Start project", elem_id="align-create")
        with gr.Row():
            project = gr.Dropdown([], label="Project", elem_id="align-project")
            strategy = gr.Radio(list(STRATEGIES), value="uncertain", label="Next row by")
            blind = gr.Checkbox(True, label="Blind (hide the judge's score until I submit)", elem_id="align-blind")
            grader = gr.Textbox(
                "",
                label="Your name (optional)",
                info="each grader is their own labeller: a name, else this browser session",
                max_length=40,
                elem_id="align-grader",
            )
        with gr.Row():
            with gr.Column(scale=3):
                card = gr.Markdown(elem_id="align-card", latex_delimiters=[])
                judge_panel = gr.Markdown(elem_id="align-judge")
                with gr.Row(elem_id="align-scores"):
                    scores = [gr.Button(str(k + 1), visible=False, min_width=40) for k in range(MAX_LEVELS)]
                with gr.Row():
                    note = gr.Textbox(label="Note (optional)", scale=3, elem_id="align-note")
                    skip_btn = gr.Button("Skip (s)", elem_id="align-skip", scale=1)
                    undo_btn = gr.Button("Undo (u)", elem_id="align-undo", scale=1)
                last = gr.Markdown(elem_id="align-last")
            with gr.Column(scale=2):
                panel = gr.Markdown(elem_id="align-agreement")
                confusion = gr.Dataframe(headers=["your label"], label="Confusion on held-out rows", interactive=False)
                worst = gr.Dataframe(
                    headers=["key", "label", "expected_score", "gap", "instruction"],  # never Gradio's "1 2 3"
                    label="Largest disagreements (held-out)",
                    interactive=False,
                )
                align_block(studio, open_project, project, panel)  # the system estimate (app/estimate_panel.py)
        with gr.Row():
            start_from = gr.Radio(
                [("the base model", "base"), ("the project's judge (continue its adapter)", "continue")],
                value="base",
                label="Fine-tune from",
            )
            tune_btn = gr.Button("Fine-tune on my labels", variant="primary", elem_id="align-finetune")
        with gr.Row():
            calibrate_btn = gr.Button("Calibrate to my labels (seconds)", elem_id="align-calibrate")
            after = model_dropdown(studio, label="Judge after fine-tuning or calibrating", elem_id="align-after")
            compare_btn = gr.Button("Compare before / after", elem_id="align-compare")
        compared = gr.Markdown(elem_id="align-compared")
        per_row = gr.Dataframe(
            headers=align_compare.ROW_COLUMNS,
            label="Per row, held-out (change: how far the error moved; negative is closer to your label)",
            interactive=False,
            elem_id="align-rows",
        )
        shown = gr.State(None)
        who = gr.State("")  # this browser's labeller identity, restored from `saved` as the page loads
        if saved is None:
            saved = align_state.browser_state(studio)

    views = [card, judge_panel, panel, confusion, worst, *scores, shown]
    refresh = bind(view, studio)
    looking = [project, strategy, blind, grader, who]
    choice.change(bind(scored_by, studio), [choice, judge], judge, api_name="align_scored_by", show_progress="hidden")
    start.click(bind(create, studio), [choice, upload, judge, heldout, rubric], project, api_name="align_create")
    project.change(refresh, looking, views, api_name="align_view")
    for control in (strategy, blind):
        control.change(refresh, looking, views, api_name=False)
    grader.blur(refresh, looking, views, api_name=False)
    for button in scores:  # align_label, align_label_1, ...: the button's own text is the score
        button.click(
            bind(submit, studio), [project, shown, button, note, grader, who], [last, note], api_name="align_label"
        ).then(refresh, looking, views, api_name=False)
    skip_btn.click(bind(skip, studio), [project, shown, grader, who], last, api_name="align_skip").then(
        refresh, looking, views, api_name=False
    )
    undo_btn.click(bind(undo, studio), [project, grader, who], last, api_name="align_undo").then(
        refresh, looking, views, api_name=False
    )
    base_model = tune["form"][FORM.index("base_model")]
    batch_size, grad_accum = tune["form"][FORM.index("batch_size")], tune["form"][FORM.index("grad_accum")]
    tune_btn.click(
        bind(finetune, studio),
        [project, start_from, batch_size, grad_accum],
        [tabs, tune["dataset"], tune["run_name"], base_model, tune["max_steps"], tune["steps_note"]],
        api_name="align_finetune",
    ).success(finetune_form.proposed_steps, None, tune["steps_own"], api_name="align_finetune_proposed").then(
        finetune_form.save, [*tune["form"], tune["steps_own"]], tune["saved_form"], api_name="align_finetune_kept"
    )
    compare_btn.click(bind(compare, studio), [project, after], [compared, per_row], api_name="align_compare")
    keep = {"api_name": "align_kept", "show_progress": "hidden"}
    calibrate_btn.click(bind(calibrate, studio), project, [compared, per_row, after], api_name="align_calibrate").then(
        align_state.save, [saved, choice, after, who], saved, **keep
    )
    gr.on([choice.input, after.input], align_state.save, [saved, choice, after, who], saved, **keep)
    project.change(bind(comparison, studio), project, [compared, per_row], api_name="align_comparison")
    return {
        "project": project,
        "list": bind(project_list, studio),
        "kept": [project, who, saved],
        "saved": saved,
        "results": [choice],
        "models": [judge, after],
    }
