"""Training jobs: subprocesses with a registry on disk, so that a reloaded page or a restarted
studio finds them again.

`JobManager` ties three parts together: the signed registry (`raft.job_registry`), process
control (`raft.job_process`) and reading a job's log and progress (`raft.job_logs`). Status comes
from the process and the run folder (`progress.jsonl`, `result.json`); a job whose process died
without a result is marked failed with the tail of its log. Stop is cooperative first (a STOP
file: the trainer saves a checkpoint and ends after the current step), then a hard kill of the
process group.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from raft import job_logs, job_process
from raft.job_registry import JOB_ID, Job, JobError, JobRegistry, new_job_id, now
from raft.train.config import TrainConfig
from raft.train.trainer import PROGRESS_FILE, RESULT_FILE, STOP_FILE

__all__ = ["JOB_ID", "Job", "JobError", "JobManager", "summarize"]


class JobManager:
    """Start, watch, stop and resume training jobs under `root` (the studio's data root)."""

    def __init__(self, root: str | Path, max_active: int = 1):
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"
        self.registry = JobRegistry(self.jobs_dir)
        self.max_active = max_active
        self._procs: dict[str, subprocess.Popen] = {}
        self._thread_lock = threading.Lock()

    def _save(self, job: Job) -> None:
        self.registry.save(job)

    def _load(self, job_id: str) -> Job:
        return self.registry.load(job_id)

    @contextmanager
    def _starting(self):
        """One start at a time, across threads and processes: the check and the launch are atomic."""
        with self._thread_lock, (self.jobs_dir / ".start.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def start(self, config: TrainConfig, resume_of: str | None = None) -> Job:
        """Write the run's config and launch the trainer; refuses when max_active jobs are running."""
        with self._starting():
            return self._start(config, resume_of)

    def _start(self, config: TrainConfig, resume_of: str | None) -> Job:
        running = [j for j in self.list() if j.active]
        if len(running) >= self.max_active:
            raise JobError(
                f"job {running[0].id} is still {running[0].status}; stop it first "
                f"(one training job at a time on this machine)"
            )
        job_id = new_job_id()
        run_dir = Path(config.output_dir)
        if not resume_of and run_dir.is_dir() and any(run_dir.iterdir()):
            raise JobError(f"run folder '{run_dir.name}' already holds a run; choose a new run name, or resume its job")
        folder = self.registry.folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        if resume_of:
            command = [sys.executable, "-m", "raft", "train", "--resume", str(run_dir)]
        else:  # the trainer writes the run folder's own config.yaml when it claims the folder
            config.to_yaml(folder / "config.yaml")
            command = [sys.executable, "-m", "raft", "train", str(folder / "config.yaml")]
        log = folder / "train.log"
        job = Job(id=job_id, run_dir=str(run_dir), log=str(log), command=command, resume_of=resume_of)
        proc = job_process.launch(command, log)
        self._procs[job_id] = proc
        job.pid, job.pid_ticks, job.status = proc.pid, job_process.start_ticks(proc.pid), "running"
        self._save(job)
        return job

    def refresh(self, job: Job) -> Job:
        """Bring an active job's status up to date from its process and run folder."""
        if not job.active:
            return job
        proc = self._procs.get(job.id)
        if proc is not None:
            code = proc.poll()
            alive = code is None
        else:  # started by an earlier studio process: only the pid is known
            code, alive = None, job_process.alive(job.pid or -1, job.pid_ticks)
        if alive:
            return job
        result_path = Path(job.run_dir) / RESULT_FILE
        result = json.loads(result_path.read_text()) if result_path.is_file() else {}
        job.exit_code, job.ended = code, now()
        if result.get("status") in ("completed", "stopped") and code in (0, None):
            job.status = result["status"]
        else:
            job.status = "failed"
            job.error = result.get("error") or job_process.why_ended(code) + "\n" + self.log_tail(job, 20)
        self._procs.pop(job.id, None)
        self._save(job)
        return job

    def get(self, job_id: str) -> Job:
        return self.refresh(self._load(job_id))

    def list(self) -> list[Job]:
        """All jobs, newest first, with fresh statuses (records this server did not sign are left out)."""
        jobs = []
        for name in self.registry.ids():
            try:
                jobs.append(self.refresh(self._load(name)))
            except JobError:
                continue
        return jobs

    def stop(self, job_id: str, timeout: float = 60.0, wait: bool = True) -> Job:
        """Ask the trainer to checkpoint and stop; kill the process group if it has not within timeout.

        With `wait=False` it returns at once (status "stopping") and a background thread finishes."""
        job = self.get(job_id)
        if not job.active:
            return job
        Path(job.run_dir).mkdir(parents=True, exist_ok=True)  # the trainer may not have claimed it yet
        (Path(job.run_dir) / STOP_FILE).touch()
        job.status = "stopping"
        self._save(job)
        if not wait:
            threading.Thread(target=self._finish_stop, args=(job, timeout), daemon=True).start()
            return job
        return self._finish_stop(job, timeout)

    def _finish_stop(self, job: Job, timeout: float) -> Job:
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.refresh(job)
            if not job.active:
                return job
            time.sleep(0.2)
        job_process.kill_trainer(job.pid, job.pid_ticks)
        proc = self._procs.get(job.id)
        if proc:
            proc.wait(10)
        job = self.refresh(job)
        job.status, job.error = "killed", f"did not stop within {timeout:.0f} s; killed"
        self._save(job)
        return job

    def resume(self, job_id: str) -> Job:
        """Continue a stopped or failed job's run from its last checkpoint, as a new job."""
        job = self.get(job_id)
        if job.active:
            raise JobError(f"job {job_id} is still {job.status}")
        config = TrainConfig.from_yaml(Path(job.run_dir) / "config.yaml")
        return self.start(config, resume_of=job_id)

    def log_path(self, job: Job) -> Path:
        """The job's log, where the server put it (never a path read from a record)."""
        return self.registry.folder(job.id) / "train.log"

    def progress(self, job: Job | str) -> list[dict[str, Any]]:
        job = self._load(job) if isinstance(job, str) else job
        return job_logs.read_progress(Path(job.run_dir) / PROGRESS_FILE)

    def log_tail(self, job: Job | str, lines: int = 40) -> str:
        job = self._load(job) if isinstance(job, str) else job
        return job_logs.tail(self.log_path(job), lines)


def summarize(progress: list[dict[str, Any]]) -> dict[str, Any]:
    """Step, total, elapsed/remaining, last loss and last validation metrics of a run's progress."""
    steps = [r for r in progress if r.get("loss") is not None]
    evals = [r for r in progress if r.get("eval")]
    last = progress[-1] if progress else {}
    out: dict[str, Any] = {
        "step": last.get("step", 0),
        "total_steps": last.get("total_steps"),
        "elapsed_s": last.get("elapsed_s"),
        "remaining_s": steps[-1].get("remaining_s") if steps else None,
        "loss": steps[-1]["loss"] if steps else None,
    }
    if evals:
        out.update({f"val_{k}": v for k, v in evals[-1]["eval"].items() if k in ("pearson", "rmse")})
    return out
