"""The training queue: whether a job may launch now or whom it waits behind, which queued job goes
next (first come, first served), and the server thread that promotes it when its turn comes, so
that the queue moves whether or not a page is open."""

from __future__ import annotations

import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Protocol

from raft.job_registry import QUEUED, Job, JobError, now

MAX_QUEUED = 8
"""Jobs that may wait their turn at once: a queue, not a way to fill the disk with configs."""

QUEUE_EVERY_S = 2.0
"""How often the server's queue thread looks for a queued job whose turn has come."""


def turn(job: Job) -> tuple[float, str]:
    """A queued job's place in the queue: when it joined, then its id."""
    return (job.queued_at or 0.0, job.id)


def run_folder_used(run_dir: Path) -> bool:
    """Whether a run folder already holds something (a run, or one begun while a job waited)."""
    return run_dir.is_dir() and any(run_dir.iterdir())


def check_capacity(jobs: list[Job], max_active: int) -> None:
    """Refuse, with the reason, when `max_active` of the training `jobs` are running."""
    running = [j for j in jobs if j.active]
    if len(running) >= max_active:
        raise JobError(
            f"job {running[0].id} is still {running[0].status}; stop it first "
            f"(one training job at a time on this machine)"
        )


def waiting_on(jobs: list[Job], queue: bool, max_active: int) -> Job | None:
    """None when a job may launch now; else (with `queue`) the job it waits for: a running one,
    or the last already queued (first come, first served). Without `queue` a full machine refuses."""
    queued = [j for j in jobs if j.status == QUEUED]
    if not queue or not queued:
        try:
            check_capacity(jobs, max_active)
            return None
        except JobError:
            if not queue:
                raise
    if len(queued) >= MAX_QUEUED:
        raise JobError(f"{len(queued)} jobs already wait their turn; stop one of them, or start this one later")
    return max(queued, key=turn) if queued else next(j for j in jobs if j.active)


def mark_queued(job: Job, behind: Job) -> None:
    """Record `job` as waiting its turn behind `behind`."""
    job.status, job.note = QUEUED, f"queued behind job {behind.id}: it starts when that one ends"
    job.queued_at = time.time()


def next_in_line(jobs: list[Job], max_active: int) -> Job | None:
    """The oldest queued job when fewer than `max_active` jobs run; None when none may launch."""
    if sum(1 for j in jobs if j.active) >= max_active:
        return None
    queued = [j for j in jobs if j.status == QUEUED]
    return min(queued, key=turn) if queued else None


def lost_its_folder(job: Job) -> bool:
    """Whether a queued new run's folder was taken while it waited; if so the job is marked failed."""
    run_dir = Path(job.run_dir)
    if job.resume_of or not run_folder_used(run_dir):
        return False
    job.status, job.ended = "failed", now()
    job.error = f"run folder '{run_dir.name}' was taken while the job waited; start it again with a new name"
    return True


class Promoter(Protocol):
    """What the queue thread drives: a job manager's `list` and `promote`."""

    def list(self, kind: str | None = None) -> list[Job]: ...

    def promote(self) -> Job | None: ...


class QueueThread:
    """The daemon thread that calls `promote` every few seconds while its manager lives."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, manager: Promoter, every: float = QUEUE_EVERY_S) -> None:
        """Start the thread (idempotent); it holds the manager weakly, and ends with it or `stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        ref = weakref.ref(manager)
        self._thread = threading.Thread(
            target=_advance, args=(ref, self._stop, every), name="raft-job-queue", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def _advance(ref: weakref.ref, stop: threading.Event, every: float) -> None:
    """The queue thread's loop: promote while the manager lives; a failed look (a disk error, a
    record being rewritten) is tried again at the next tick rather than ending the queue."""
    while not stop.wait(every):
        manager = ref()
        if manager is None:
            return
        try:
            if any(j.status == QUEUED for j in manager.list("train")):
                manager.promote()
        except (OSError, JobError, ValueError) as exc:
            print(f"job queue: {exc}", file=sys.stderr)
        del manager
