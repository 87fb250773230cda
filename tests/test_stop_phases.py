"""Stop works in every phase of a training job, and every phase names itself with its progress.

These run the real job manager: `python -m raft train` in a subprocess on a tiny model."""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from raft.data import prepare_dataset
from raft.files import write_rows
from raft.jobs import JobManager
from raft.synthetic import generate_rows
from raft.train import TrainConfig
from raft.train.phase import describe_phase, read_phase, waiting_for


def wait_for(predicate, timeout=120.0, every=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


@pytest.fixture
def slow_validation(tmp_path, tiny_model):
    """A run whose first validation takes many batches (one row each), so a stop lands inside it."""
    rows = write_rows(tmp_path / "rows.jsonl", generate_rows(600, seed=5))
    prepare_dataset(rows, tmp_path / "ds", validation_ratio=0.5)
    return TrainConfig(
        data=str(tmp_path / "ds"),
        output_dir=str(tmp_path / "runs" / "r1"),
        base_model=str(tiny_model),
        max_steps=50,
        batch_size=1,
        eval_steps=1000,
        eval_rows=0,
        save_steps=1000,
        lora=False,
        device="cpu",
    )


def phase_of(manager, job):
    return manager.phase(manager.get(job.id)) or {}


def test_a_stop_during_the_first_validation_ends_cleanly_before_training(tmp_path, slow_validation):
    manager = JobManager(tmp_path / "root")
    job = manager.start(slow_validation)
    seen = wait_for(
        lambda: (p := phase_of(manager, job)).get("phase") == "validating" and (p.get("done") or 0) >= 2 and p
    )
    assert seen["total"] == 300 and seen["step"] == 0
    assert "validating" in manager.describe(manager.get(job.id)) and "/300" in manager.describe(manager.get(job.id))
    started = time.time()
    stopping = manager.stop(job.id, timeout=120, wait=False)
    assert stopping.status == "stopping"
    said = manager.describe(manager.get(job.id))  # the job may already have ended between two batches
    assert "validation batch" in said or said == "stopped · stopped before training began", said
    done = wait_for(lambda: (j := manager.get(job.id)).status not in ("running", "stopping") and j, timeout=120)
    assert done.status == "stopped", manager.log_tail(done)
    assert time.time() - started < 60  # it stopped between batches, long before the 120 s kill
    assert done.note == "stopped before training began"
    assert "killed" not in (done.error or "")
    assert not [r for r in manager.progress(done) if "loss" in r]  # no training step was taken
    result = json.loads((Path(slow_validation.output_dir) / "result.json").read_text())
    assert result == {"status": "stopped", "step": 0, "note": "stopped before training began"}
    assert manager.describe(done) == "stopped · stopped before training began"


@pytest.mark.slow
def test_a_stop_during_a_training_step_saves_a_checkpoint_and_resume_continues_as_the_same_job(
    tmp_path, slow_validation
):
    slow_validation.eval_rows = 2
    manager = JobManager(tmp_path / "root")
    job = manager.start(slow_validation)
    seen = wait_for(
        lambda: (p := phase_of(manager, job)).get("phase") == "training" and (p.get("done") or 0) >= 3 and p
    )
    assert seen["total"] == 50 and describe_phase(seen).startswith("training step ")
    done = manager.stop(job.id, timeout=120)
    assert done.status == "stopped", manager.log_tail(done)
    step = json.loads((Path(slow_validation.output_dir) / "result.json").read_text())["step"]
    assert done.note == f"stopped at step {step}; checkpoint-{step} kept"
    resumed = manager.resume(job.id)
    assert resumed.id == job.id and resumed.note == f"resumed from checkpoint-{step}"
    assert manager.stop(job.id, timeout=120).status == "stopped"


def test_a_stop_while_the_model_loads_ends_before_training_and_resume_starts_over_as_the_same_job(
    tmp_path, slow_validation
):
    manager = JobManager(tmp_path / "root")
    job = manager.start(slow_validation)
    done = manager.stop(job.id, timeout=120)  # at once: the trainer is still importing or loading
    assert done.status == "stopped", manager.log_tail(done)
    assert done.note == "stopped before training began"
    assert not (Path(slow_validation.output_dir) / "checkpoints").exists()

    resumed = manager.resume(job.id)  # no checkpoint: it says it starts over, as the same job
    assert resumed.id == job.id and resumed.attempt == 2 and resumed.status == "running"
    assert resumed.note == "no checkpoint: starting over from step 0"
    assert [j.id for j in manager.list()] == [job.id]
    again = manager.stop(job.id, timeout=120)
    assert again.status == "stopped" and again.note == "stopped before training began", manager.log_tail(again)


@pytest.mark.parametrize(
    "record, described, waits",
    [
        (None, "starting the trainer", "waiting for the trainer to start"),
        (
            {"phase": "validating", "done": 3, "total": 10, "step": 0},
            "validating 3/10 batches (before training)",
            "waiting for validation batch 4 to finish",
        ),
        (
            {"phase": "validating", "done": 0, "total": 4, "step": 25},
            "validating 0/4 batches (at step 25)",
            "waiting for validation batch 1 to finish",
        ),
        (
            {"phase": "training", "done": 4, "total": 100},
            "training step 4/100",
            "waiting for step 4 to finish, then saving a checkpoint",
        ),
        (
            {"phase": "preparing", "done": 0, "total": 3, "detail": "preparing the default model: downloading"},
            "preparing the default model: downloading (0/3)",
            "waiting for preparing the default model",
        ),
        (
            {"phase": "loading", "detail": "loading the model m"},
            "loading the model m",
            "waiting for loading the model m",
        ),
        ({"phase": "saving", "detail": "saving the judge"}, "saving the judge", "waiting for the save to finish"),
    ],
)
def test_each_phase_reads_in_words(record, described, waits):
    assert describe_phase(record) == described
    assert waiting_for(record).startswith(waits)


def test_a_job_is_not_running_once_its_result_says_completed(tmp_path, slow_validation):
    """A finished trainer may take seconds to exit; result.json decides the status at once."""
    manager = JobManager(tmp_path / "root")
    job = manager.start(slow_validation)
    os.kill(job.pid, signal.SIGSTOP)  # a process that has not exited yet
    try:
        Path(slow_validation.output_dir).mkdir(parents=True, exist_ok=True)
        Path(slow_validation.output_dir, "result.json").write_text(json.dumps({"status": "completed", "step": 4}))
        assert manager.get(job.id).status == "completed"
        assert [j.status for j in JobManager(tmp_path / "root").list()] == ["completed"]
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        manager._procs[job.id].wait(10)


def test_a_trainer_that_does_not_stop_is_killed_and_the_job_says_so(tmp_path, slow_validation):
    manager = JobManager(tmp_path / "root")
    job = manager.start(slow_validation)
    os.kill(job.pid, signal.SIGSTOP)  # frozen: it cannot honour the request
    stale = manager.get(job.id)
    killed = manager.stop(job.id, timeout=1)
    assert killed.status == "killed"
    assert killed.error == "did not stop within 4 s (it was starting the trainer); killed"  # a starting grace
    assert manager.refresh(stale).status == "killed"  # a stale copy held by a timer reads the newest record
    assert [j.status for j in JobManager(tmp_path / "root").list()] == ["killed"]


class FlagAfter:
    """A stop flag that appears at its `n`-th look (a stand-in for run_dir/STOP)."""

    def __init__(self, n):
        self.n, self.looks = n, 0

    def exists(self):
        self.looks += 1
        return self.looks >= self.n


def test_a_stop_ends_a_feedback_validation_within_a_few_generated_tokens(tmp_path, tiny_judge, rows):
    from raft.train.trainer import Evaluate, Progress

    config = TrainConfig(batch_size=len(rows), eval_max_new_tokens=400)
    flag = FlagAfter(2)  # absent when the pass begins, present at the first token check
    evaluate = Evaluate(tiny_judge, rows, "feedback", config, Progress(tmp_path, {}), flag)
    started = time.time()
    assert evaluate.run(0) is None  # one batch only: the per-batch check cannot have ended it
    assert flag.looks == 2 and time.time() - started < 60
    assert read_phase(tmp_path)["phase"] == "validating"
