"""Preparing a job before its process starts: the command line and files of a new training run or
of a batch, the checks that keep two jobs out of one run folder, and a resume's run folder (its
config back in place, the last attempt's end files cleared)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from raft.job_queue import run_folder_used
from raft.job_registry import QUEUED, Job, JobError
from raft.job_status import BATCH_INFO, BATCH_STATUS
from raft.runs import CONFIG_FILE, RESULT_FILE, STOP_FILE, last_checkpoint_step
from raft.train.config import TrainConfig
from raft.train.phase import PHASE_FILE


def resume_command(run_dir: Path) -> list[str]:
    """`python -m raft train --resume RUN_DIR`."""
    return [sys.executable, "-m", "raft", "train", "--resume", str(run_dir)]


def check_run_free(run_dir: Path, jobs: list[Job], resume_of: str | None) -> None:
    """Refuse a new run in a folder that holds a run, or that an active or queued job of `jobs` writes."""
    if not resume_of and run_folder_used(run_dir):
        raise JobError(f"run folder '{run_dir.name}' already holds a run; choose a new run name, or resume its job")
    taken = [j for j in jobs if (j.active or j.status == QUEUED) and Path(j.run_dir) == run_dir]
    if taken and not resume_of:
        raise JobError(f"job {taken[0].id} ({taken[0].status}) writes run '{run_dir.name}'; choose a new run name")


def train_job(config: TrainConfig, job_id: str, folder: Path, resume_of: str | None) -> Job:
    """A training job (not yet launched) whose config, unless it resumes, is written to its `folder`."""
    run_dir = Path(config.output_dir)
    if resume_of:
        command = resume_command(run_dir)
    else:  # the trainer writes the run folder's own config.yaml when it claims the folder
        config.to_yaml(folder / "config.yaml")
        command = [sys.executable, "-m", "raft", "train", str(folder / "config.yaml")]
    log = folder / "train.log"
    return Job(id=job_id, run_dir=str(run_dir), log=str(log), command=command, resume_of=resume_of)


def batch_job(command: list[str], info: dict[str, Any], job_id: str, folder: Path) -> Job:
    """A batch job (not yet launched): `info` is written to its `folder`, which also receives the
    scorer's status and result files."""
    (folder / BATCH_INFO).write_text(json.dumps(info, ensure_ascii=False))
    full = [*command, "--status", str(folder / BATCH_STATUS), "--result", str(folder / RESULT_FILE)]
    return Job(id=job_id, run_dir=str(folder), log=str(folder / "score.log"), command=full, kind="batch")


def prepare_resume(job: Job, own_config: Path) -> None:
    """Ready an ended training job's run folder and record for its next attempt.

    A run that never claimed its folder gets the job's `own_config` back; the last attempt's stop,
    result and phase files go, so that the new launch is not read as the old end. The note says
    which checkpoint it continues from, or that it starts over from step 0."""
    run_dir = Path(job.run_dir)
    if not (run_dir / CONFIG_FILE).is_file():  # it never claimed its folder: begin it again
        if not own_config.is_file():
            raise JobError(f"job {job.id} has no config to resume from; start a new run")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(own_config.read_text())
    for stale in (STOP_FILE, RESULT_FILE, PHASE_FILE):
        (run_dir / stale).unlink(missing_ok=True)
    step = last_checkpoint_step(run_dir)
    job.command = resume_command(run_dir)
    job.attempt += 1
    job.note = f"resumed from checkpoint-{step}" if step else "no checkpoint: starting over from step 0"
    job.ended = job.exit_code = job.error = job.stop_requested = None
