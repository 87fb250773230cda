"""The visitor's own files that several tabs read, in one place so that no tab imports another:
an upload checked, the Batch results listed and looked up by name, the labelling projects listed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import gradio as gr

from app.studio import Studio
from app.workspace import Workspace
from raft.files import SUFFIXES

NONE = "(none)"
"""The choice of no Batch result (an upload is used instead)."""


def check_upload(studio: Studio, path: str | None) -> Path:
    """An uploaded file of a supported type and size, or a clear refusal."""
    if not path:
        raise gr.Error("Upload a .csv, .jsonl, .json or .parquet file first.")
    file = Path(path)
    if file.suffix.lower() not in SUFFIXES:
        raise gr.Error(f"{file.name}: unsupported file type; use one of {', '.join(SUFFIXES)}")
    size_mb = file.stat().st_size / 2**20
    if size_mb > studio.settings.max_upload_mb:
        raise gr.Error(f"{file.name} is {size_mb:.0f} MB; the limit is {studio.settings.max_upload_mb} MB")
    return file


def result_meta(path: Path) -> dict | None:
    """A Batch result's description (file, judge, time, counts) from the .meta.json beside it."""
    try:
        meta = json.loads(path.with_name(path.stem + ".meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def result_label(name: str, meta: dict) -> str:
    """`file · judge · time · hash`: what a person recognises first, the file's hash last."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(meta.get("time", 0))))
    digest = Path(name).stem.rsplit("-", 1)[-1]
    return f"{str(meta.get('file'))[:60]} · {str(meta.get('judge'))[:60]} · {when} · {digest}"


def batch_results(workspace: Workspace) -> list[tuple[str, str]]:
    """The visitor's finished Batch results with at least one scored row, as (label, file name), newest first."""
    found = []
    for path in workspace.batch.glob("*.jsonl"):
        meta = result_meta(path)
        if meta and meta.get("scored"):
            found.append((float(meta.get("time", 0)), result_label(path.name, meta), path.name))
    return [(label, name) for _, label, name in sorted(found, reverse=True)]


def scored_file(studio: Studio, workspace: Workspace, choice: str | None, upload: str | None) -> Path | None:
    """An uploaded file, or a Batch result looked up by name among the visitor's own."""
    if upload:
        return check_upload(studio, upload)
    if not choice or choice == NONE:
        return None
    if choice not in [name for _, name in batch_results(workspace)]:
        raise gr.Error(f"'{str(choice)[:80]}' is not one of your batch results")
    return workspace.batch / choice


def projects_dir(workspace: Workspace) -> Path:
    """The visitor's folder of labelling projects (made here)."""
    folder = workspace.root / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def project_names(workspace: Workspace) -> list[str]:
    """The visitor's labelling projects, newest first (a visit makes no folder)."""
    folder = workspace.root / "labels"
    children = list(folder.iterdir()) if folder.is_dir() else []
    found = [p for p in children if not p.name.startswith(".") and (p / "project.json").is_file()]
    return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]
