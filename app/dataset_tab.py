"""Dataset tab: pick a source, map columns, preview rendered examples and statistics, write it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from app import mapping, pair_view, plots
from app.messages import guarded, without_paths
from app.own_files import check_upload
from app.studio import DEFAULT_CHOICE, Studio, bind
from app.workspace import WorkspaceError, visitor_key
from raft.data import BuiltDataset, build_dataset, dataset_stats, rejection_warning, token_lengths, write_dataset
from raft.files import SUFFIXES, DataError, peek_columns, write_rows
from raft.limits import current_budget
from raft.paths import safe_child
from raft.prompts import MODES, TemplateError, apply_chat, builtin_templates
from raft.rubrics import Rubric
from raft.synthetic import generate_rows

SOURCES = ["synthetic sample", "uploaded file", "hub dataset id"]
NO_TOKENIZER = "none"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
"""owner/name, as the hub spells dataset ids: never a local path."""
PREVIEW_LENGTHS = 1000
"""Token lengths are computed for at most this many examples in a preview (the plotted ones)."""


def resolve_source(
    studio: Studio, kind: str, upload: str | None, hub_id: str, n_synthetic: int, seed: int, request: Any = None
) -> str:
    """The path or hub id to read for the chosen source; the synthetic sample is written once (into
    the visitor's workspace on a public studio, where it counts against the quota)."""
    if kind == "uploaded file":
        return str(check_upload(studio, upload))
    if kind == "hub dataset id":
        hub_id = (hub_id or "").strip()
        if not HUB_ID.match(hub_id) or ".." in hub_id or Path(hub_id).exists():
            raise gr.Error(
                "Enter a hub dataset id (owner/name), such as prometheus-eval/Feedback-Collection; "
                "to use a file, upload it."
            )
        return hub_id
    if kind != "synthetic sample":
        raise gr.Error(f"unknown source; choose one of {', '.join(SOURCES)}")
    n, seed = int(min(max(n_synthetic, 20), 2000)), int(seed) % 2**31
    workspace = studio.workspace(request)
    folder = workspace.root / "samples" if studio.settings.public else studio.root / "samples"
    path = folder / f"synthetic-{n}-{seed}.jsonl"
    if not path.is_file():
        try:
            with workspace.writing():
                write_rows(path, generate_rows(n, seed=seed, noise=0.3))
        except WorkspaceError as exc:
            raise gr.Error(str(exc)) from None
    return str(path)


def columns_of(
    studio: Studio, kind: str, upload: str | None, hub_id: str, n_synthetic: int, seed: int, request: gr.Request = None
) -> list[str]:
    """The chosen source's column names (from its first rows)."""
    try:
        return peek_columns(resolve_source(studio, kind, upload, hub_id, n_synthetic, seed, request))
    except DataError as exc:
        raise gr.Error(str(exc)) from None


def source_inputs(kind: str) -> list[Any]:
    """Only the chosen source's inputs are shown."""
    return [
        gr.File(visible=kind == "uploaded file"),
        gr.Textbox(visible=kind == "hub dataset id"),
        gr.Slider(visible=kind == "synthetic sample"),
    ]


KEPT_PER_DECODED_BYTE = 3
"""What a built dataset holds in memory per byte decoded from its source (the rows, their items and
rendered prompts), for the preview store's bound; measured in the README's reliability section."""


def built_of(studio: Studio, token: Any, request: Any = None) -> BuiltDataset | None:
    """The visitor's previewed dataset, looked up by the id the page holds (None when there is none)."""
    return studio.previews.get(visitor_key(request), token)


def fill_on_load(form: dict[str, Any]) -> Any:
    """A handler: the synthetic sample's columns, read as the page loads, fill the mapping only while
    the source is still the sample and no file is uploaded: a visitor who uploaded while the page was
    loading keeps their file's mapping (the late fill is dropped)."""
    fill = mapping.filled(form)
    outputs = 3 + len(form["dropdowns"]) + len(form["levels"])  # columns, dropdowns, rubric, criterion, levels

    def on_load(kind: str, upload: Any, columns: list[str] | None) -> list[Any]:
        if kind != SOURCES[0] or upload or not columns:
            return [gr.skip()] * outputs
        return fill(columns)

    return on_load


def show_example(built: BuiltDataset | None, tokenizer_choice: str, index: int, studio: Studio) -> tuple[str, str]:
    if not built:
        return "", ""
    examples = built.train + built.validation
    ex = examples[int(index) % len(examples)]
    prompt = ex["prompt"]
    if tokenizer_choice != NO_TOKENIZER:
        prompt = apply_chat(studio.tokenizer(tokenizer_choice), prompt)
    return prompt, ex["target"]


def preview(
    studio: Studio,
    kind: str,
    upload: str | None,
    hub_id: str,
    n_synthetic: int,
    columns: str,
    mode: str,
    template: str,
    tokenizer_choice: str,
    num_samples: int,
    validation_ratio: float,
    seed: int,
    rubric: str | None = None,
    criterion: str = "",
    level1: str = "",
    level2: str = "",
    level3: str = "",
    level4: str = "",
    level5: str = "",
    request: gr.Request = None,
) -> tuple[Any, ...]:
    """Build the dataset in memory: stats, plots, rejected rows and the first example.

    `columns` is the mapping ('field=column, ...'); `rubric` a preset name or TYPED (with the
    criterion and level texts) for rows that have no rubric of their own."""
    source = resolve_source(studio, kind, upload, hub_id, n_synthetic, seed, request)
    whole_file = mapping.rubric_of(rubric, criterion, level1, level2, level3, level4, level5)
    built = _build(source, mode, template, num_samples, validation_ratio, seed, columns, whole_file)
    token = _keep(studio, built, request)
    tokenizer = None if tokenizer_choice == NO_TOKENIZER else studio.tokenizer(tokenizer_choice)
    stats = dataset_stats(built, tokenizer, max_examples=PREVIEW_LENGTHS)
    warn_rejections(stats)
    lengths = token_lengths((built.train + built.validation)[:PREVIEW_LENGTHS], tokenizer) if tokenizer else []
    rejected = pd.DataFrame(built.rejected, columns=["row", "field", "reason"])
    prompt, target = show_example(built, tokenizer_choice, 0, studio)
    return (
        token,
        stats,
        plots.histogram(stats["score_histogram"], "Gold scores", "score"),
        plots.length_histogram(lengths) if lengths else None,
        rejected,
        prompt,
        target,
        example_slider(len(built.train) + len(built.validation)),
    )


def _build(
    source: str,
    mode: str,
    template: str,
    num_samples: int,
    validation_ratio: float,
    seed: int,
    columns: str,
    whole_file: Rubric | None,
) -> BuiltDataset:
    """The dataset built in memory from the form's values, its rejected rows' reasons without server
    paths (they are written to rejected.jsonl, which the visitor downloads)."""
    try:
        built = build_dataset(
            source,
            mode,
            template or None,
            int(num_samples) or None,
            float(validation_ratio),
            int(seed),
            columns or None,
            rubric=whole_file,
        )
    except (DataError, TemplateError, ValueError) as exc:
        raise gr.Error(str(exc)) from None
    for row in built.rejected:
        row["error"] = without_paths(row["error"])
    return built


def _keep(studio: Studio, built: BuiltDataset, request: Any) -> str:
    """Keep a preview for the visitor, sized by what the request decoded; returns the id the page holds."""
    budget = current_budget()
    size = KEPT_PER_DECODED_BYTE * (budget.used_bytes if budget else 0)
    return studio.previews.put(visitor_key(request), built, size)


def example_slider(n: int) -> Any:
    """The example picker for n examples: 0..n-1, still (and 0..1) when there is only one, since a
    slider needs its maximum above its minimum."""
    return gr.Slider(maximum=max(n - 1, 1), value=0, interactive=n > 1)


def warn_rejections(stats: dict[str, Any]) -> None:
    """The CLI's one-line warning as a toast when more than 5% of the rows were rejected."""
    warning = rejection_warning(stats)
    if warning:
        gr.Warning(warning.removeprefix("warning: ").replace("see rejected.jsonl", "see the rejected rows below"))


def example(
    studio: Studio, token: str | None, tokenizer_choice: str, index: int, request: gr.Request = None
) -> tuple[str, str]:
    """One example of the visitor's preview, rendered as the model reads it."""
    return show_example(built_of(studio, token, request), tokenizer_choice, index, studio)


def write(
    studio: Studio, token: str | None, name: str, tokenizer_choice: str, request: gr.Request = None
) -> tuple[Any, ...]:
    """Write the previewed dataset into the visitor's workspace (never over an existing one) and offer its files."""
    built = built_of(studio, token, request)
    if not isinstance(built, BuiltDataset):
        raise gr.Error("Preview the dataset first (a preview is kept for 30 minutes).")
    workspace = studio.workspace(request)
    try:
        folder = safe_child(workspace.datasets, name)
        if folder.exists():
            raise ValueError(f"a dataset named '{folder.name}' exists already: choose another name")
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    tokenizer = None if tokenizer_choice == NO_TOKENIZER else studio.tokenizer(tokenizer_choice)
    try:
        with workspace.writing():  # every file charged to the quota as it is written
            stats = write_dataset(folder, built, tokenizer, exclusive=True)
    except WorkspaceError as exc:  # written in a temporary folder, removed: nothing is left
        raise gr.Error(str(exc)) from None
    except DataError as exc:
        raise gr.Error(str(exc)) from None
    warn_rejections(stats)
    gr.Info(written_note(folder.name, stats))
    try:
        return stats, workspace.offer(sorted(p for p in folder.iterdir() if p.is_file()))
    except WorkspaceError as exc:
        raise gr.Error(f"The dataset '{folder.name}' is written, but its download does not fit: {exc}") from None


def written_note(name: str, stats: dict[str, Any]) -> str:
    """What Write did, in words: the dataset's name, its rows, and where it went next."""
    return (
        f"Dataset '{name}' written: {stats.get('train', 0)} training and {stats.get('validation', 0)} validation "
        "examples. The Fine-tune tab has chosen it."
    )


def build(studio: Studio) -> dict[str, Any]:
    with gr.Tab("Dataset", id="dataset"):
        gr.Markdown(
            "Turn your rows into a judge dataset: choose a source, check the column mapping (recognised by "
            "name), give a rubric for the whole file if your rows have none, preview, and write it."
        )
        built = gr.State(None)  # the id of the visitor's preview, kept on the server (app.previews)
        with gr.Row():
            with gr.Column():
                kind = gr.Radio(SOURCES, value=SOURCES[0], label="Source", elem_id="ds-source")
                upload = gr.File(
                    label=f"Upload ({', '.join(SUFFIXES)})",
                    file_types=list(SUFFIXES),
                    visible=False,
                    elem_id="ds-file",
                )
                hub_id = gr.Textbox(
                    label="Hub dataset id", placeholder="prometheus-eval/Feedback-Collection", visible=False
                )
                n_synthetic = gr.Slider(
                    20, 2000, value=200, step=10, label="Synthetic rows", info="generated rows whose score is learnable"
                )
                detect = gr.Button("Read columns", size="sm")
                form = mapping.build("ds")
            with gr.Column():
                mode = gr.Radio(
                    list(MODES),
                    value="score_only",
                    label="Mode",
                    info="score_only: the target is the score; feedback: written feedback, then the score",
                )
                template = gr.Dropdown(
                    ["", *builtin_templates()],
                    value="",
                    label="Template (empty: by mode)",
                    info="the grading prompt; it travels with the dataset and every run trained on it",
                )
                tokenizer = gr.Dropdown(
                    [NO_TOKENIZER, *studio.model_choices()],
                    value=DEFAULT_CHOICE,
                    label="Tokenizer (chat template, token lengths)",
                )
                with gr.Row():
                    num_samples = gr.Number(0, label="Rows to keep (0 = all)", precision=0)
                    validation = gr.Slider(
                        0.0,
                        0.5,
                        value=0.1,
                        step=0.05,
                        label="Validation share",
                        info="rows held out to measure training",
                    )
                    seed = gr.Number(0, label="Seed", precision=0)
                preview_btn = gr.Button("Preview", variant="primary", elem_id="dataset-preview")
                name = gr.Textbox("my-judge-data", label="Dataset name", elem_id="ds-name")
                write_btn = gr.Button("Write dataset", elem_id="dataset-write")
        with gr.Row():
            stats = gr.JSON(label="Statistics")
            scores_plot = gr.Plot(label="Scores")
            lengths_plot = gr.Plot(label="Token lengths")
        index = gr.Slider(0, 1, value=0, step=1, label="Example")
        with gr.Row():
            prompt = gr.Textbox(label="Prompt (as the model reads it)", lines=12, interactive=False)
            target = gr.Textbox(label="Target", lines=12, interactive=False, elem_id="ds-target")
        rejected = gr.Dataframe(headers=["row", "field", "reason"], label="Rejected rows", interactive=False)
        files = gr.File(label="Dataset files", file_count="multiple", interactive=False)
        pair = pair_view.dataset_view(studio)

    sources = [kind, upload, hub_id, n_synthetic, seed]
    form_outputs = [form["columns"], *form["dropdowns"].values(), form["rubric"], form["criterion"], *form["levels"]]
    read_columns = (bind(columns_of, studio), sources, form["columns"])
    fill = mapping.filled(form)
    detect.click(*read_columns, api_name="dataset_columns").success(fill, form["columns"], form_outputs, api_name=False)
    upload.upload(*read_columns, api_name=False).success(fill, form["columns"], form_outputs, api_name=False)

    def columns_on_switch(
        kind: str, upload: str | None, n_synthetic: int, seed: int, request: gr.Request = None
    ) -> list[str]:
        """A switch of source reads the new source's columns, where there is one to read yet."""
        if kind == "hub dataset id" or (kind == "uploaded file" and not upload):
            return []
        return columns_of(studio, kind, upload, "", n_synthetic, seed, request)

    kind.change(source_inputs, kind, [upload, hub_id, n_synthetic], api_name=False).then(
        guarded(columns_on_switch), [kind, upload, n_synthetic, seed], form["columns"], api_name=False
    ).success(fill, form["columns"], form_outputs, api_name=False)
    form_inputs = [
        *sources[:4],
        form["text"],
        mode,
        template,
        tokenizer,
        num_samples,
        validation,
        seed,
        *mapping.rubric_inputs(form),
    ]
    previewed = [built, stats, scores_plot, lengths_plot, rejected, prompt, target, index]
    preview_btn.click(bind(preview, studio), form_inputs, previewed, api_name="dataset_preview")
    index.change(
        bind(example, studio),
        [built, tokenizer, index],
        [prompt, target],
        api_name="dataset_example",
    )
    # Write builds from the form as it is now: no "Preview first" refusal, and never a preview made before
    # the mapping or rubric changed (that wrote a dataset other than the one the form shows)
    written = write_btn.click(bind(preview, studio), form_inputs, previewed, api_name=False).success(
        bind(write, studio), [built, name, tokenizer], [stats, files], api_name="dataset_write"
    )
    return {
        "written": written,
        "name": name,
        "load": (fill_on_load(form), form_outputs),
        "sources": sources,
        "pair": pair,
    }
