"""Stopping a job, cooperatively first: a STOP file the trainer honours in every phase (before any
step it ends at once, later it checkpoints after the current step, a validation pass is abandoned
between batches), then, past the timeout, a kill of its process group recorded as "killed"."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from raft.job_registry import QUEUED, Job, JobRegistry, now
from raft.job_runtime import JobLocks, Processes
from raft.job_status import ENDED
from raft.runs import STOP_FILE
from raft.train.phase import describe_phase, read_phase

STARTUP_GRACE = 4
"""A trainer that has not named its first phase (it is importing its libraries, slow on a busy
machine) gets this many times the stop timeout: it honours the stop at its first check."""


class Stopper:
    """Stops a job manager's jobs: its `registry` of records, its `locks` and `processes`, and its
    `refresh` (which brings a job's status up to date)."""

    def __init__(self, registry: JobRegistry, locks: JobLocks, processes: Processes, refresh: Callable[[Job], Job]):
        self._registry, self._locks, self._processes, self._refresh = registry, locks, processes, refresh
        self._watchers: dict[str, threading.Thread] = {}

    def stop(self, job_id: str, timeout: float, wait: bool) -> Job:
        """Take a queued job off the queue, or ask an active one to stop and see that it does:
        here, or with `wait=False` in a background thread (one per job)."""
        job = self._refresh(self._registry.load(job_id))
        if job.status == QUEUED:  # never launched: taken off the queue, nothing to stop
            with self._locks.record(job.id):
                job = self._registry.load(job.id)
                if job.status == QUEUED:
                    job.status, job.ended, job.note = "stopped", now(), "taken off the queue before it began"
                    self._registry.save(job)
            return job
        if not job.active:
            return job
        with self._locks.record(job.id):
            job = self._registry.load(job.id)
            if not job.active:
                return job
            asked_before = _ask_to_stop(job)
            if not asked_before:
                self._registry.save(job)
        if not wait:
            watcher = self._watchers.get(job.id)
            if asked_before and watcher is not None and watcher.is_alive():  # the first request's watcher
                return job
            watcher = threading.Thread(target=self.finish, args=(job, timeout), daemon=True)
            self._watchers[job.id] = watcher
            watcher.start()
            return job
        return self.finish(job, timeout)

    def finish(self, job: Job, timeout: float) -> Job:
        """Wait for the trainer to stop (`_wait_for_stop`); kill it when it has not."""
        job, waited = _wait_for_stop(job, timeout, self._refresh)
        if not job.active:
            return job
        doing = describe_phase(read_phase(job.run_dir))
        proc = self._processes.kill(job)
        with self._locks.record(job.id):
            job = self._registry.load(job.id)
            if job.status in ENDED:  # it ended cleanly just in time
                return job
            job.status, job.ended = "killed", job.ended or now()
            job.exit_code = proc.returncode if proc else job.exit_code
            job.error = f"did not stop within {waited:.0f} s (it was {doing}); killed"
            self._processes.pop(job.id, None)
            self._registry.save(job)
        return job


def _ask_to_stop(job: Job) -> bool:
    """Leave the STOP file in the job's run folder and mark it stopping; whether it was asked before."""
    Path(job.run_dir).mkdir(parents=True, exist_ok=True)  # the trainer may not have claimed it yet
    (Path(job.run_dir) / STOP_FILE).touch()
    asked_before = job.status == "stopping"
    if not asked_before:
        job.status, job.stop_requested = "stopping", now()
    return asked_before


def _wait_for_stop(job: Job, timeout: float, refresh: Callable[[Job], Job]) -> tuple[Job, float]:
    """Refresh the job until it is no longer active or the wait is over: `timeout`, or up to
    STARTUP_GRACE times that while it has not named a phase yet (still importing: it stops at its
    first check). The latest job and the seconds waited."""
    asked = time.time()
    waited = 0.0
    while True:
        job = refresh(job)
        if not job.active:
            return job, waited
        waited = time.time() - asked
        starting = read_phase(job.run_dir) is None
        if waited >= timeout * (STARTUP_GRACE if starting else 1):
            return job, waited
        time.sleep(0.2)
