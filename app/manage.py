"""Rename and delete what a visitor made: datasets, runs, Align projects and batch results.

Every target is looked up by name among the visitor's own (or, for runs, the studio's), never
joined into a path from what the client sent; a new name is a plain name checked by
`raft.paths.safe_child` and must be free. What a running job uses (a training job's dataset or
run folder, a batch job's result) is refused with the reason. On a public studio runs are shared,
so they are renamed and deleted only where training is on (behind a login)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import gradio as gr

from app.own_files import batch_results, project_names
from app.studio import Studio
from app.workspace import Workspace
from raft.paths import safe_child
from raft.train.config import TrainConfig

KINDS = ["dataset", "run", "Align project", "batch result"]


def names(studio: Studio, kind: str, request: gr.Request = None) -> list[str]:
    """The names of one kind that this visitor may rename or delete."""
    workspace = studio.workspace(request)
    if kind == "dataset":
        return studio.datasets(request)
    if kind == "run":
        return [p.name for p in sorted(studio.runs_dir.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
                if p.is_dir()]  # fmt: skip
    if kind == "Align project":
        return project_names(workspace)
    if kind == "batch result":
        return [name for _, name in batch_results(workspace)]
    raise gr.Error(f"'{str(kind)[:40]}' is not something that can be managed here")


def name_list(studio: Studio, kind: str, request: gr.Request = None) -> Any:
    found = names(studio, kind, request)
    return gr.Dropdown(choices=found, value=found[0] if found else None)


def _target(studio: Studio, kind: str, name: str | None, request: gr.Request | None) -> tuple[Workspace, Path]:
    """(workspace, path) of a named item, looked up among the visitor's own; refused while a job uses it."""
    if kind == "run" and studio.settings.public and not studio.settings.allow_training:
        raise gr.Error("Runs are shared on this public studio: they are renamed and deleted only where training is on.")
    if not name or name not in names(studio, kind, request):
        raise gr.Error(f"no {kind} named '{str(name)[:80]}' here; choose one from the list")
    workspace = studio.workspace(request)
    folder = {
        "dataset": workspace.datasets,
        "run": studio.runs_dir,
        "Align project": workspace.root / "labels",
        "batch result": workspace.batch,
    }[kind]
    path = folder / name
    _refuse_if_in_use(studio, kind, path)
    return workspace, path


def _refuse_if_in_use(studio: Studio, kind: str, path: Path) -> None:
    for job in studio.jobs.list():
        if not job.active:
            continue
        if kind == "batch result" and studio.jobs.batch_info(job).get("out") == str(path):
            raise gr.Error(f"'{path.name}' is being scored now (job {job.id}); wait for it to end")
        if job.kind != "train":
            continue
        if kind == "run" and Path(job.run_dir) == path:
            raise gr.Error(f"run '{path.name}' is training now (job {job.id}); stop it first")
        if kind == "dataset":
            try:
                data = TrainConfig.from_yaml(studio.jobs.registry.folder(job.id) / "config.yaml").data
            except (OSError, ValueError):
                continue
            if Path(data) == path:
                raise gr.Error(f"dataset '{path.name}' is being trained on (job {job.id}); stop the job first")


def _batch_files(path: Path) -> list[Path]:
    """A batch result's files: the scored rows, its description, its CSV and the inputs it kept."""
    stem = path.stem
    sources = path.parent / ".sources"
    return [path, path.with_name(stem + ".meta.json"), path.with_suffix(".csv"),
            *(sources.glob(stem + ".*") if sources.is_dir() else [])]  # fmt: skip


def delete(studio: Studio, kind: str, name: str | None, request: gr.Request = None) -> tuple[str, Any]:
    """Delete one dataset, run, Align project or batch result; says what went."""
    _, path = _target(studio, kind, name, request)
    if kind == "batch result":
        for file in _batch_files(path):
            file.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)
    return f"Deleted the {kind} **{path.name}**.", name_list(studio, kind, request)


def rename(studio: Studio, kind: str, name: str | None, new: str, request: gr.Request = None) -> tuple[str, Any]:
    """Rename one dataset, run, Align project or batch result to a free plain name."""
    _, path = _target(studio, kind, name, request)
    new = (new or "").strip()
    if kind == "batch result" and not new.endswith(".jsonl"):
        new += ".jsonl"
    try:
        target = safe_child(path.parent, new)
    except ValueError as exc:
        raise gr.Error(str(exc).split(" escapes ")[0]) from None
    if target.exists() or (kind == "batch result" and target.with_name(target.stem + ".meta.json").exists()):
        raise gr.Error(f"a {kind} named '{target.name}' exists already: choose another name")
    if kind == "batch result":
        for file in _batch_files(path):
            if file.exists():
                file.rename(file.with_name(file.name.replace(path.stem, target.stem, 1)))
    else:
        path.rename(target)
        if kind == "run":
            _renamed_run(target)
    found = names(studio, kind, request)
    return f"Renamed the {kind} **{path.name}** to **{target.name}**.", gr.Dropdown(choices=found, value=target.name)


def _renamed_run(run: Path) -> None:
    """A renamed run's config names its new folder (so Resume and the card follow it)."""
    config = run / "config.yaml"
    if config.is_file():
        try:
            loaded = TrainConfig.from_yaml(config)
        except ValueError:
            return
        loaded.output_dir = str(run)
        loaded.to_yaml(config)
