"""The rubric a chosen judge was trained with, proposed where a rubric is chosen (Score, Batch):
a fine-tuned judge reads best the criterion and score descriptions it learned, which travel
with its run (`judge.json`, else its dataset's `dataset.json`: `raft.export.trained_rubric`).
A judge with none recorded (the default model, a hub id, rows that carried their own) proposes
nothing, and the rubric shown stays as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from app import mapping
from app.studio import RUN_PREFIX, Studio
from raft.export import trained_rubric
from raft.files import DataError
from raft.models import read_manifest
from raft.rubrics import Rubric, presets


def trained(studio: Studio, choice: str | None) -> Rubric | None:
    """The whole-file rubric the chosen run was trained with; None for any other judge or none recorded."""
    if not choice or not str(choice).startswith(RUN_PREFIX):
        return None
    try:
        run = Path(str(studio.resolve_model(choice)))
        manifest = read_manifest(run) or {}
        found = trained_rubric(run, manifest)
        return Rubric.from_dict(found) if found else None
    except (ValueError, OSError, DataError):
        return None


def _preset_name(rubric: Rubric) -> str | None:
    """The preset the rubric is, word for word (a preset edited since is not that preset)."""
    preset = presets().get(rubric.name)
    same = preset is not None and (preset.criteria, preset.descriptions) == (rubric.criteria, rubric.descriptions)
    return rubric.name if same else None


def for_batch(studio: Studio, choice: str | None, current: str | None, own: bool = False) -> list[Any]:
    """The Batch form's rubric chooser, criterion and level boxes for the chosen judge: its trained
    rubric (as its preset, else typed in) when it has one on the form's scale 1..5, the file's
    rows do not carry their own and the visitor has not chosen one (`own`); else no change."""
    rubric = None if own or current == mapping.OWN_RUBRIC else trained(studio, choice)
    if rubric is None or len(rubric.descriptions) != mapping.LEVELS:
        return [gr.skip()] * (2 + mapping.LEVELS)
    name = _preset_name(rubric)
    editable = name is None
    boxes = [gr.Textbox(t, interactive=editable) for t in (rubric.criteria, *rubric.descriptions)]
    return [gr.Dropdown(choices=mapping.rubric_choices(), value=name or mapping.TYPED), *boxes]


def for_score(studio: Studio, choice: str | None, custom: str, levels: int, own: bool = False) -> list[Any]:
    """The Score tab's preset, criterion and `levels` description boxes for the chosen judge: its
    trained rubric (its preset's name, else `custom`) when it has one and the visitor has not
    chosen or typed a rubric (`own`); else no change."""
    rubric = None if own else trained(studio, choice)
    if rubric is None or len(rubric.descriptions) > levels:
        return [gr.skip()] * (2 + levels)
    descriptions = [*rubric.descriptions, *[""] * (levels - len(rubric.descriptions))]
    return [_preset_name(rubric) or custom, rubric.criteria, *descriptions]
