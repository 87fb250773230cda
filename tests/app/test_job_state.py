"""The Fine-tune tab's job state is never stale: the status names the phase, the job list follows
the jobs, a finished result wins over a live process, and polling shows no progress overlay."""

import json
import os
from pathlib import Path

import gradio as gr

from app import finetune_tab
from app.main import build_app
from app.studio import Settings
from raft.job_process import start_ticks
from raft.jobs import Job
from raft.train.phase import write_phase

JOB_ID = "20260101-000000-abcdef"


def fake_job(studio, tmp_path, status="running", pid=None, **fields) -> Job:
    """A job record whose 'trainer' is this test process (alive) or a pid that is gone."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    pid = os.getpid() if pid is None else pid
    job = Job(
        id=JOB_ID,
        run_dir=str(run_dir),
        log=str(tmp_path / "log"),
        command=[],
        pid=pid,
        pid_ticks=start_ticks(pid),
        status=status,
        **fields,
    )
    studio.jobs._save(job)
    return job


def test_the_status_names_the_phase_with_its_progress(studio, tmp_path):
    job = fake_job(studio, tmp_path)
    status = finetune_tab.watch(studio, JOB_ID, False)[0]
    assert status.startswith("**running** · starting the trainer · elapsed ")
    write_phase(job.run_dir, "validating", 3, 300, step=0)
    status = finetune_tab.watch(studio, JOB_ID, False)[0]
    assert status.startswith("**running** · validating 3/300 batches (before training) · elapsed ")
    assert "elapsed ?" not in status
    write_phase(job.run_dir, "training", 5, 100)
    assert "training: 4/100 steps done (4%)" in finetune_tab.watch(studio, JOB_ID, False)[0]
    write_phase(job.run_dir, "preparing", 0, 3, detail="preparing the default model: downloading (517 MB)")
    assert "preparing the default model: downloading (517 MB) (0/3)" in finetune_tab.watch(studio, JOB_ID, False)[0]


def test_the_status_counts_the_steps_the_log_has(studio, tmp_path):
    """Step 4 is logged (progress and log line) before step 5 begins and names itself in the phase:
    the status says 4 steps done, as the log does, not one behind it."""
    job = fake_job(studio, tmp_path)
    write_phase(job.run_dir, "training", 4, 100)  # written as step 4 began
    progress = [{"step": k, "loss": 1.0 / k, "elapsed_s": k} for k in range(1, 5)]
    (Path(job.run_dir) / "progress.jsonl").write_text("".join(json.dumps(r) + "\n" for r in progress))
    Path(studio.jobs.log_path(job)).write_text("".join(f"step {k}/100 · loss {1.0 / k:.4g}\n" for k in range(1, 5)))
    status, *_, log = finetune_tab.watch(studio, JOB_ID, False)
    assert log.strip().endswith("step 4/100 · loss 0.25")
    assert "training: 4/100 steps done (4%)" in status, status


def test_while_stopping_the_status_says_what_it_waits_for(studio, tmp_path):
    job = fake_job(studio, tmp_path, status="stopping", stop_requested="2026-01-01T00:00:00+00:00")
    write_phase(job.run_dir, "validating", 7, 300, step=0)
    status = finetune_tab.watch(studio, JOB_ID, False)[0]
    assert status.startswith("**stopping** · waiting for validation batch 8 to finish (asked ")


def test_the_status_never_says_running_once_the_result_says_completed(studio, tmp_path):
    job = fake_job(studio, tmp_path)  # its process (this one) is alive: a trainer still exiting
    (Path(job.run_dir) / "result.json").write_text(json.dumps({"status": "completed", "step": 4, "note": "done"}))
    status = finetune_tab.watch(studio, JOB_ID, False)[0]
    assert status.startswith("**completed**") and "running" not in status
    assert finetune_tab.runs_table(studio).loc[0, "status"] == "completed"


def test_the_job_list_follows_the_jobs_status_and_is_quiet_when_nothing_changed(studio, tmp_path):
    fake_job(studio, tmp_path, status="stopping", pid=2**22 + 1)  # a trainer that is gone
    shown = [[f"{JOB_ID} · run · stopping", JOB_ID]]  # what the dropdown showed after Stop
    update, now = finetune_tab.refresh_jobs(studio, JOB_ID, shown)
    assert now == [[f"{JOB_ID} · run · failed", JOB_ID]]
    assert isinstance(update, gr.Dropdown) and update.value == JOB_ID
    assert "stopping" not in json.dumps(update.choices)
    again, same = finetune_tab.refresh_jobs(studio, JOB_ID, now)
    assert same == now and not isinstance(again, gr.Dropdown)  # gr.skip(): the open dropdown stays as it is


def test_polling_and_list_updates_show_no_processing_overlay(tmp_path, tiny_model):
    demo, _ = build_app(Settings(data_root=tmp_path / "root", default_model=str(tiny_model)))
    config = demo.get_config_file()
    ids = {c["id"]: c for c in config["components"]}
    status = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "ft-status")
    job = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "ft-job")
    polled = [
        d
        for d in config["dependencies"]
        if status in d["outputs"]
        or any(ids.get(t[0], {}).get("type") == "timer" for t in d["targets"])
        or (job in d["outputs"] and d["trigger_after"] is not None)
    ]
    assert len(polled) >= 6
    assert {d["api_name"]: d["show_progress"] for d in polled} == {d["api_name"]: "hidden" for d in polled}


def test_the_log_tail_names_no_server_path_in_a_local_studio(studio, tmp_path):
    """The newcomer walk saw site-packages and the data root in a local studio's log tail."""
    assert not studio.settings.public
    job = fake_job(studio, tmp_path)
    studio.jobs.log_path(job).write_text(
        "/srv/venv/lib/python3.11/site-packages/transformers/modeling_utils.py:3312: FutureWarning: x\n"
        f"saving to {tmp_path}/data/runs/run-1\n"
    )
    log = finetune_tab.watch(studio, JOB_ID, False)[3]
    assert "modeling_utils.py:3312: FutureWarning" in log and "run-1" in log
    assert "/srv/" not in log and str(tmp_path) not in log
