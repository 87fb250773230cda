"""A batch is a job (raft.jobs): started by the Batch tab, it goes on in its own process, and a
reloaded page (or a restarted studio) finds it, follows its progress and gets its results."""

import time
from types import SimpleNamespace

import gradio as gr

from app import batch_tab
from app.studio import DEFAULT_CHOICE, Settings, Studio
from raft.files import write_rows
from raft.synthetic import generate_rows


def _visitor(name):
    return SimpleNamespace(username=None, session_hash=name, request=None)


def test_a_running_batch_is_found_after_a_reload_and_its_results_come_back(studio, tmp_path):
    path = write_rows(tmp_path / "many.jsonl", generate_rows(120, seed=2))
    job = batch_tab.start_batch(studio, str(path), "", DEFAULT_CHOICE, "score_only", 2, "orig_score")
    assert job.kind == "batch" and job.active
    # the page is reloaded: its load asks for the visitor's running batch, and the timer follows it
    assert batch_tab.latest_batch(studio) == job.id
    restarted = Studio(studio.settings)  # a restarted studio finds it on disk too
    assert batch_tab.latest_batch(restarted) == job.id
    seen, deadline = [], time.time() + 600
    while time.time() < deadline:
        status, *views, shown = batch_tab.watch_batch(studio, job.id, None)
        seen.append(status)
        if shown == job.id:
            break
        time.sleep(0.5)
    assert any("of 120 rows" in s for s in seen[:-1]) or any("loading the judge" in s for s in seen[:-1])
    assert "completed" in seen[-1], seen[-1]
    table, summary, _, _, downloads = views
    assert len(table) == 120 and "Scored 120 rows" in summary
    assert [p.rsplit("/", 1)[-1].rsplit(".", 1)[-1] for p in downloads] == ["csv", "jsonl"]
    assert batch_tab.latest_batch(studio) == job.id  # ended: a reload shows its results again
    again = batch_tab.watch_batch(studio, job.id, job.id)  # shown once: later ticks only say how it ended
    assert "completed" in again[0] and list(again[1:]) == [gr.skip()] * 5 + [job.id]
    assert job.id not in [j.id for j in studio.jobs.list("train")]  # the Fine-tune tab lists training only


def test_a_visitor_follows_only_their_own_batch(tmp_path, tiny_model):
    studio = Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model), public=True))
    path = write_rows(tmp_path / "rows.jsonl", generate_rows(60, seed=3))
    job = batch_tab.start_batch(
        studio, str(path), "", DEFAULT_CHOICE, "score_only", 2, "orig_score", request=_visitor("ada")
    )
    assert batch_tab.latest_batch(studio, _visitor("ada")) == job.id
    assert batch_tab.latest_batch(studio, _visitor("bob")) == ""
    status, *views, shown = batch_tab.watch_batch(studio, job.id, None, _visitor("bob"))
    assert status == "" and shown is None  # another visitor's job id shows nothing
    assert batch_tab.own_batch(studio, "../../jobs/x", studio.workspace(_visitor("ada"))) is None
    while studio.jobs.get(job.id).active:
        time.sleep(0.5)
