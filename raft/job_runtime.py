"""What a job server holds in memory about its jobs: the locks that keep starts and job records
consistent, and the processes it launched itself (a job started by an earlier server is known by
its recorded pid alone)."""

from __future__ import annotations

import fcntl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from raft import job_process
from raft.job_registry import Job


class JobLocks:
    """One start at a time (across threads and processes) and one writer per job record (across threads)."""

    def __init__(self, jobs_dir: Path):
        self.jobs_dir = jobs_dir
        self._thread_lock = threading.Lock()
        self._records: dict[str, threading.Lock] = {}
        self._records_lock = threading.Lock()

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Hold the start lock, so that a check and the launch it allows are atomic."""
        with self._thread_lock, (self.jobs_dir / ".start.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def record(self, job_id: str) -> threading.Lock:
        """The lock under which a job's record is read and rewritten."""
        with self._records_lock:
            return self._records.setdefault(job_id, threading.Lock())


class Processes(dict[str, subprocess.Popen]):
    """The processes this server launched, by job id."""

    def launch(self, job: Job, log: Path) -> subprocess.Popen:
        """Start the job's command, its output appended to `log` (ended processes are forgotten first)."""
        for job_id, proc in list(self.items()):
            if proc.poll() is not None:
                self.pop(job_id, None)
        proc = job_process.launch(job.command, log)
        self[job.id] = proc
        return proc

    def state(self, job: Job) -> tuple[int | None, bool]:
        """The job's exit code (None while running or when unknown) and whether its process runs."""
        proc = self.get(job.id)
        if proc is not None:
            code = proc.poll()
            return code, code is None
        return None, job_process.alive(job.pid or -1, job.pid_ticks)  # started by an earlier server

    def kill(self, job: Job) -> subprocess.Popen | None:
        """Kill the job's process group and wait for a process of ours to end; that process, if ours."""
        job_process.kill_trainer(job.pid, job.pid_ticks)
        proc = self.get(job.id)
        if proc:
            proc.wait(10)
        return proc
