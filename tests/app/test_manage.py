"""Rename and delete datasets, runs, Align projects and batch results: looked up by name (never a
path from the client), new names validated and free, and refused for what a running job uses."""

import gradio as gr
import pytest

from app import batch_tab, dataset_tab, manage
from app.studio import DEFAULT_CHOICE, Settings, Studio
from raft.files import write_rows
from raft.job_registry import Job
from raft.synthetic import generate_rows
from raft.train.config import TrainConfig


def _dataset(studio, name):
    out = dataset_tab.preview(studio, "synthetic sample", None, "", 20, "", "score_only", "", "none", 0, 0.25, 0)
    dataset_tab.write(studio, out[0], name, "none")


def test_datasets_are_renamed_and_deleted_by_name_only(studio):
    _dataset(studio, "first")
    said, _ = manage.rename(studio, "dataset", "first", "second")
    assert "to **second**" in said and studio.datasets() == ["second"]
    for bad in ("../escape", "a/b", "", "x" * 200):
        with pytest.raises(gr.Error):
            manage.rename(studio, "dataset", "second", bad)
    _dataset(studio, "other")
    with pytest.raises(gr.Error, match="exists already"):
        manage.rename(studio, "dataset", "second", "other")
    for target in ("../../jobs", "/etc", "nope"):
        with pytest.raises(gr.Error, match="no dataset named"):
            manage.delete(studio, "dataset", target)
    said, _ = manage.delete(studio, "dataset", "second")
    assert "Deleted" in said and studio.datasets() == ["other"]


def test_what_a_running_job_uses_is_refused(studio):
    _dataset(studio, "busy")
    run = studio.runs_dir / "run-busy"
    run.mkdir()
    job = Job(id="20260101-000000-abcdef", run_dir=str(run), log="", command=[], status="running")
    folder = studio.jobs.registry.folder(job.id)
    folder.mkdir(parents=True)
    TrainConfig(data=str(studio.workspace().datasets / "busy"), output_dir=str(run)).to_yaml(folder / "config.yaml")
    studio.jobs.registry.save(job)
    studio.jobs.refresh = lambda j: j  # the record says running: no process to ask
    with pytest.raises(gr.Error, match="being trained on"):
        manage.delete(studio, "dataset", "busy")
    with pytest.raises(gr.Error, match="training now"):
        manage.rename(studio, "run", "run-busy", "run-other")
    assert (studio.runs_dir / "run-busy").is_dir() and "busy" in studio.datasets()


def test_batch_results_go_with_their_files_and_runs_are_shared_on_a_public_studio(studio, tmp_path, tiny_model):
    path = write_rows(tmp_path / "rows.jsonl", generate_rows(6, seed=1))
    batch_tab.score_batch(
        studio, str(path), "", DEFAULT_CHOICE, "score_only", 4, "orig_score", progress=lambda *a, **k: None
    )
    [name] = manage.names(studio, "batch result")
    said, _ = manage.rename(studio, "batch result", name, "kept")
    assert manage.names(studio, "batch result") == ["kept.jsonl"]
    manage.delete(studio, "batch result", "kept.jsonl")
    assert manage.names(studio, "batch result") == [] and not list(studio.workspace().batch.glob("kept*"))
    public = Studio(
        Settings(data_root=tmp_path / "pub", default_model=str(tiny_model), public=True, allow_training=False)
    )
    (public.runs_dir / "run-1").mkdir()
    with pytest.raises(gr.Error, match="shared on this public studio"):
        manage.delete(public, "run", "run-1")
