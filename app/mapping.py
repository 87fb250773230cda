"""Column mapping by dropdowns and a rubric for the whole file: the form the Dataset and Batch tabs
share. Dropdowns are pre-filled by recognising common column names (raft.columns); the mapping
they make is shown as the `--columns` text the CLI takes, and that text is what the tabs run."""

from __future__ import annotations

from typing import Any

import gradio as gr

from raft.columns import guess_mapping, label, missing_fields, missing_message, word
from raft.data import parse_columns
from raft.files import DataError
from raft.rubrics import Rubric, load_rubric, presets
from raft.text import md_text

MAPPED = ["orig_instruction", "orig_response", "orig_reference_answer", "orig_score", "orig_criteria", "orig_feedback"]
"""The fields a dropdown maps; per-row score descriptions are recognised by name, or come from the rubric."""
NOT_IN_FILE = "(not in the file)"
OWN_RUBRIC = "(each row has its own)"
TYPED = "(typed below)"
LEVELS = 5
"""Description boxes of a whole-file rubric (the scale 1..5)."""
HELP = {
    "orig_instruction": "the question or task the response answers",
    "orig_response": "the text the judge scores",
    "orig_reference_answer": "optional: a reference answer the judge compares with",
    "orig_score": "the human (gold) score: what training learns and what metrics compare with",
    "orig_criteria": "a criterion per row; most files have none: then choose a rubric for the whole file below",
    "orig_feedback": "written feedback, needed only to train the feedback mode",
}


def build(prefix: str, fields: list[str] = MAPPED, need_score: bool = True) -> dict[str, Any]:
    """The dropdowns (one per field), the mapping as text, the rubric chooser with its boxes, and a
    status line; element ids start with `prefix` (`{prefix}-map-orig_score`, ...)."""
    columns = gr.State([])
    dropdowns = {
        field: gr.Dropdown(
            [NOT_IN_FILE],
            value=NOT_IN_FILE,
            label=f"{label(field).capitalize()} column",
            info=HELP[field],
            elem_id=f"{prefix}-map-{field}",
        )
        for field in fields
    }
    words = gr.Markdown(elem_id=f"{prefix}-map-words")
    with gr.Accordion("The mapping as the CLI's --columns", open=False):
        text = gr.Textbox(
            show_label=False,
            info="made by the dropdowns above; columns already named like a field need no mapping",
            interactive=False,
            elem_id=f"{prefix}-map-text",
        )
    with gr.Accordion("Rubric for the whole file (for rows without their own)", open=True):
        rubric = gr.Dropdown(
            rubric_choices(),
            value=OWN_RUBRIC,
            label="Rubric",
            info="a preset, or your own criterion and score descriptions typed below; it is recorded with the data",
            elem_id=f"{prefix}-map-rubric",
        )
        criterion = gr.Textbox("", label="Criterion", lines=2, interactive=False)
        levels = [gr.Textbox("", label=f"Score {k}", lines=1, interactive=False) for k in range(1, LEVELS + 1)]
    status = gr.Markdown(elem_id=f"{prefix}-map-status")
    form = {"columns": columns, "dropdowns": dropdowns, "text": text, "rubric": rubric, "criterion": criterion}
    form["words"] = words
    form.update(levels=levels, status=status, need_score=need_score)
    wire(form)
    return form


def rubric_choices() -> list[str]:
    return [OWN_RUBRIC, *presets(), TYPED]


def rubric_inputs(form: dict[str, Any]) -> list[Any]:
    return [form["rubric"], form["criterion"], *form["levels"]]


def filled(form: dict[str, Any]) -> Any:
    """A handler: a file's columns -> the form with each dropdown offering them (recognised names
    chosen) and, for a file with no rubric columns, the first preset."""

    def fill(columns: list[str]) -> list[Any]:
        columns = [str(c) for c in columns or []]
        guessed = guess_mapping(columns)
        updates: list[Any] = [columns]
        for field in form["dropdowns"]:
            value = field if field in columns else guessed.get(field, NOT_IN_FILE)
            updates.append(gr.Dropdown(choices=[NOT_IN_FILE, *columns], value=value))
        has_rubric = not columns or "orig_criteria" in columns or "orig_criteria" in guessed
        choice = OWN_RUBRIC if has_rubric else next(iter(presets()))
        return [*updates, gr.Dropdown(choices=rubric_choices(), value=choice), *rubric_boxes(choice)]

    return fill


def rubric_boxes(choice: str) -> list[Any]:
    """The criterion and level boxes for a rubric choice: a preset's text (read-only), editable when typed."""
    preset = presets().get(choice)
    if preset is None:
        return [gr.Textbox(interactive=choice == TYPED) for _ in range(1 + LEVELS)]
    return [
        gr.Textbox(preset.criteria, interactive=False),
        *(gr.Textbox(d, interactive=False) for d in preset.descriptions),
    ]


def mapping_text(columns: list[str], *chosen: str) -> str:
    """The dropdowns' choices (in the form's field order) plus per-row descriptions recognised by
    name, as 'field=column, ...'."""
    fields = MAPPED[: len(chosen)]
    mapping = {f: c for f, c in zip(fields, chosen) if c and c != NOT_IN_FILE and c != f}
    taken = set(mapping.values())
    recognised = guess_mapping(columns or [])
    mapping.update({f: c for f, c in recognised.items() if f.endswith("_description") and c not in taken})
    return ", ".join(f"{f}={c}" for f, c in mapping.items())


def mapping_words(text: str) -> str:
    """The mapping in people's words, e.g. "Columns: question → instruction, answer → response"
    (column names escaped: they are the file's text); empty for none or a mapping that does not parse."""
    try:
        mapping = parse_columns(text)
    except DataError:
        return ""
    if not mapping:
        return ""
    pairs = ", ".join(f"**{md_text(column, 60)}** → {word(field)}" for field, column in mapping.items())
    return f"Columns: {pairs}"


def rubric_of(choice: str | None, criterion: str = "", *levels: str) -> Rubric | None:
    """The whole-file rubric the form chose (a preset, typed text, or none), checked on the scale 1..5."""
    if choice in (None, "", OWN_RUBRIC):
        return None
    try:
        if choice == TYPED:
            return load_rubric({"criteria": criterion or "", "descriptions": list(levels)}, (1, LEVELS))
        return load_rubric(choice, (1, LEVELS))
    except DataError as exc:
        raise gr.Error(f"Rubric: {exc.reason}") from None


def check(columns: list[str], text: str, need_score: bool, *rubric: str) -> str:
    """One line: the form is complete, or every field still missing, named at once."""
    if not columns:
        return ""
    try:
        mapping = parse_columns(text)
        whole_file = rubric_of(*rubric)
    except (DataError, gr.Error) as exc:
        return f"⚠️ {getattr(exc, 'message', exc)}"
    row = {c: "" for c in columns} | {f: "" for f in mapping} | (whole_file.fields() if whole_file else {})
    missing = missing_fields(row, need_score=need_score)
    if missing:
        return f"⚠️ {missing_message(missing, 'choose a rubric for the whole file')}."
    return "Ready: every field the judge reads has a column" + (" or comes from the rubric." if whole_file else ".")


def wire(form: dict[str, Any]) -> None:
    """Dropdowns -> mapping text; rubric choice -> its boxes; any change -> the status line."""
    choices = list(form["dropdowns"].values())
    gr.on(
        [d.change for d in choices],
        mapping_text,
        [form["columns"], *choices],
        form["text"],
        api_name=False,
        show_progress="hidden",
    )
    form["text"].change(mapping_words, form["text"], form["words"], api_name=False, show_progress="hidden")
    form["rubric"].change(
        rubric_boxes, form["rubric"], [form["criterion"], *form["levels"]], api_name=False, show_progress="hidden"
    )
    need = form["need_score"]
    gr.on(
        [form["text"].change, form["columns"].change, *(c.change for c in rubric_inputs(form))],
        lambda columns, text, *rubric: check(columns, text, need, *rubric),
        [form["columns"], form["text"], *rubric_inputs(form)],
        form["status"],
        api_name=False,
        show_progress="hidden",
    )
