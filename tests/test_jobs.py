import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest

from raft.data import prepare_dataset
from raft.files import write_rows
from raft.jobs import JobError, JobManager
from raft.synthetic import generate_rows
from raft.train import TrainConfig


@pytest.fixture
def config(tmp_path, tiny_model):
    rows = write_rows(tmp_path / "rows.jsonl", generate_rows(80, seed=2))
    prepare_dataset(rows, tmp_path / "ds", validation_ratio=0.1)
    return TrainConfig(
        data=str(tmp_path / "ds"),
        output_dir=str(tmp_path / "runs" / "r1"),
        base_model=str(tiny_model),
        max_steps=400,
        batch_size=2,
        eval_steps=1000,
        eval_rows=2,
        save_steps=1000,
        lora=False,
        learning_rate=1e-4,
        device="cpu",
    )


def wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def last_step(manager, job):
    return max((r["step"] for r in manager.progress(job) if "loss" in r), default=0)


def test_start_watch_stop_resume(tmp_path, config):
    manager = JobManager(tmp_path / "root")
    job = manager.start(config)
    assert job.status == "running" and job.pid
    with pytest.raises(JobError, match="one training job at a time"):
        manager.start(config)
    wait_for(lambda: last_step(manager, job) >= 3)
    stopped = manager.stop(job.id, timeout=60)
    assert stopped.status == "stopped", manager.log_tail(job)
    step = last_step(manager, job)
    assert step < 400
    checkpoints = list((Path(config.output_dir) / "checkpoints").glob("checkpoint-*"))
    assert [c.name for c in checkpoints] == [f"checkpoint-{step}"]

    again = JobManager(tmp_path / "root")  # a restarted studio sees the same registry
    assert [j.status for j in again.list()] == ["stopped"]
    resumed = again.resume(job.id)
    assert resumed.id == job.id and resumed.attempt == 2 and resumed.note.startswith("resumed from checkpoint-")
    wait_for(lambda: last_step(again, resumed) > step + 2)
    steps = [r["step"] for r in again.progress(resumed) if "loss" in r]
    assert steps[: step + 3] == list(range(1, step + 4))  # no step lost or repeated
    assert again.stop(resumed.id).status == "stopped"


def test_a_killed_worker_is_detected_as_failed_with_its_log(tmp_path, config):
    manager = JobManager(tmp_path / "root")
    job = manager.start(config)
    wait_for(lambda: last_step(manager, job) >= 1)
    os.killpg(job.pid, signal.SIGKILL)
    manager.refresh(manager._load(job.id))
    fresh = JobManager(tmp_path / "root")
    [seen] = wait_for(lambda: [j for j in fresh.list() if not j.active])
    assert seen.status == "failed"
    assert "killed" in seen.error or "without a result" in seen.error
    assert "score tokens" in seen.error  # the log tail is part of the reason


def test_a_crashing_run_reports_why(tmp_path, config):
    config.data = str(tmp_path / "nowhere")
    manager = JobManager(tmp_path / "root")
    job = manager.start(config)
    done = wait_for(lambda: (j := manager.get(job.id)).status != "running" and j)
    assert done.status == "failed" and done.exit_code == 2  # a one-line error, as the CLI gives
    assert "no train.jsonl" in done.error


def test_a_second_start_waits_its_turn_and_runs_when_the_first_ends(tmp_path, config):
    manager = JobManager(tmp_path / "root")
    first = manager.start(config)
    with pytest.raises(JobError, match="writes run 'r1'"):
        manager.start(config, queue=True)  # one run folder, one job
    second = manager.start(dataclasses.replace(config, output_dir=str(tmp_path / "runs" / "r2")), queue=True)
    third = manager.start(dataclasses.replace(config, output_dir=str(tmp_path / "runs" / "r3")), queue=True)
    assert second.status == third.status == "queued" and second.pid is None
    assert second.note == f"queued behind job {first.id}: it starts when that one ends"
    assert third.note == f"queued behind job {second.id}: it starts when that one ends"
    assert manager.promote() is None  # the first still runs
    assert sorted(j.status for j in manager.list()) == ["queued", "queued", "running"]
    assert manager.stop(third.id).status == "stopped"  # taken off the queue, never launched
    assert not Path(third.run_dir).exists()
    manager.stop(first.id, timeout=60)
    promoted = JobManager(tmp_path / "root").promote()  # a restarted studio promotes too
    assert promoted is not None and promoted.id == second.id and promoted.status == "running"
    assert {j.id: j.status for j in manager.list()} == {first.id: "stopped", second.id: "running", third.id: "stopped"}
    manager.stop(second.id, timeout=60)
