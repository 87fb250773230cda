"""Training and batch-scoring jobs: subprocesses with a registry on disk, so that a reloaded page or
a restarted studio finds them again.

`JobManager` ties three parts together: the signed registry (`raft.job_registry`), process
control (`raft.job_process`) and reading a job's log and progress (`raft.job_logs`). Status comes
from the process and the run folder (`progress.jsonl`, `result.json`); a job whose process died
without a result is marked failed with the tail of its log; the run's phase.json says what it is
doing now. Stop is cooperative first (a STOP file: before any step the trainer ends at once, later
it saves a checkpoint after the current step; a validation pass is abandoned between batches),
then a hard kill of the process group. Resume relaunches the same job in the same run folder.

A batch job (`kind="batch"`) is `python -m raft score` of one file into one output; its folder is
the job's own, where the scorer writes `status.json` (phase, rows done of total) as it goes and
`result.json` at the end. It resumes row by row: starting the same output again continues it.
Batch jobs neither wait in nor hold up the training queue; at most `max_batches` run at once.
A second training job waits in a queue; `advance_queue` starts it on the server when its turn comes.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import threading
import time
import weakref
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from raft import job_logs, job_process
from raft.job_registry import JOB_ID, QUEUED, Job, JobError, JobRegistry, new_job_id, now
from raft.runs import CONFIG_FILE, PROGRESS_FILE, RESULT_FILE, STOP_FILE, last_checkpoint_step
from raft.train.config import TrainConfig
from raft.train.phase import PHASE_FILE, describe_phase, read_phase, waiting_for

__all__ = ["BATCH_INFO", "JOB_ID", "QUEUED", "Job", "JobError", "JobManager", "summarize"]

BATCH_INFO = "batch.json"
"""What a batch job scores (the caller's description: file, judge, output), in the job's folder."""
BATCH_STATUS = "status.json"

STARTUP_GRACE = 4
"""A trainer that has not named its first phase (it is importing its libraries, slow on a busy
machine) gets this many times the stop timeout: it honours the stop at its first check."""


MAX_QUEUED = 8
"""Jobs that may wait their turn at once: a queue, not a way to fill the disk with configs."""

QUEUE_EVERY_S = 2.0
"""How often the server's queue thread looks for a queued job whose turn has come."""


class JobManager:
    """Start, watch, stop and resume training jobs under `root` (the studio's data root)."""

    def __init__(self, root: str | Path, max_active: int = 1, max_batches: int = 2):
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"
        self.registry = JobRegistry(self.jobs_dir)
        self.max_active = max_active
        self.max_batches = max_batches
        self._procs: dict[str, subprocess.Popen] = {}
        self._thread_lock = threading.Lock()
        self._record_locks: dict[str, threading.Lock] = {}
        self._record_locks_lock = threading.Lock()
        self._stoppers: dict[str, threading.Thread] = {}
        self._queue_thread: threading.Thread | None = None
        self._queue_stop = threading.Event()

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

    def start(self, config: TrainConfig, resume_of: str | None = None, queue: bool = False) -> Job:
        """Write the run's config and launch the trainer. When max_active jobs are running it refuses,
        or with `queue` records the job as "queued": `promote` launches it when its turn comes."""
        with self._starting():
            return self._start(config, resume_of, queue)

    def _start(self, config: TrainConfig, resume_of: str | None, queue: bool = False) -> Job:
        waiting = self._waiting_on(queue)
        job_id = new_job_id()
        run_dir = Path(config.output_dir)
        if not resume_of and run_dir.is_dir() and any(run_dir.iterdir()):
            raise JobError(f"run folder '{run_dir.name}' already holds a run; choose a new run name, or resume its job")
        taken = [j for j in self.list("train") if (j.active or j.status == QUEUED) and Path(j.run_dir) == run_dir]
        if taken and not resume_of:
            raise JobError(f"job {taken[0].id} ({taken[0].status}) writes run '{run_dir.name}'; choose a new run name")
        folder = self.registry.folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        if resume_of:
            command = [sys.executable, "-m", "raft", "train", "--resume", str(run_dir)]
        else:  # the trainer writes the run folder's own config.yaml when it claims the folder
            config.to_yaml(folder / "config.yaml")
            command = [sys.executable, "-m", "raft", "train", str(folder / "config.yaml")]
        log = folder / "train.log"
        job = Job(id=job_id, run_dir=str(run_dir), log=str(log), command=command, resume_of=resume_of)
        if waiting is not None:
            job.status, job.note = QUEUED, f"queued behind job {waiting.id}: it starts when that one ends"
            job.queued_at = time.time()
            self._save(job)
            return job
        return self._launch(job)

    def start_batch(self, command: list[str], info: dict[str, Any]) -> Job:
        """Launch `python -m raft score ...` (`command`, without its status and result files, which
        the job's own folder holds) as a batch job; `info` (JSON) describes it for `batch_info`.

        The same output already being scored by an active job gives that job (an identical run
        resumes rather than writing twice); more than `max_batches` at once are refused."""
        with self._starting():
            for job in self.list("batch"):
                if job.active and self.batch_info(job).get("out") == info.get("out"):
                    return job
            running = [j for j in self.list("batch") if j.active]
            if len(running) >= self.max_batches:
                raise JobError(f"{len(running)} batches are being scored on this machine; try again when one ends")
            job_id = new_job_id()
            folder = self.registry.folder(job_id)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / BATCH_INFO).write_text(json.dumps(info, ensure_ascii=False))
            full = [*command, "--status", str(folder / BATCH_STATUS), "--result", str(folder / RESULT_FILE)]
            job = Job(id=job_id, run_dir=str(folder), log=str(folder / "score.log"), command=full, kind="batch")
            return self._launch(job)

    def batch_info(self, job: Job) -> dict[str, Any]:
        """A batch job's description (as given to `start_batch`) and its scorer's latest status
        (`phase`, `rows`, `total`, `tokens`) under "status", and how it ended (`scored`, `skipped`,
        `errors`) under "result"; empty for a training job."""
        if job.kind != "batch":
            return {}
        folder = self.registry.folder(job.id)
        info: dict[str, Any] = {}
        for name, key in ((BATCH_INFO, None), (BATCH_STATUS, "status"), (RESULT_FILE, "result")):
            try:
                found = json.loads((folder / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                found = {}
            if isinstance(found, dict):
                info.update({key: found} if key else found)
        return info

    def _check_capacity(self) -> None:
        running = [j for j in self.list("train") if j.active]
        if len(running) >= self.max_active:
            raise JobError(
                f"job {running[0].id} is still {running[0].status}; stop it first "
                f"(one training job at a time on this machine)"
            )

    def _waiting_on(self, queue: bool) -> Job | None:
        """None when a job may launch now; else (with `queue`) the job it waits for: a running one,
        or the last already queued (first come, first served). Without `queue` a full machine refuses."""
        jobs = self.list("train")
        queued = [j for j in jobs if j.status == QUEUED]
        if not queue or not queued:
            try:
                self._check_capacity()
                return None
            except JobError:
                if not queue:
                    raise
        if len(queued) >= MAX_QUEUED:
            raise JobError(f"{len(queued)} jobs already wait their turn; stop one of them, or start this one later")
        return max(queued, key=_turn) if queued else next(j for j in jobs if j.active)

    def promote(self) -> Job | None:
        """Launch the oldest queued job when fewer than max_active jobs run (the queue thread of
        `advance_queue` calls this every few seconds); returns the job launched, if any."""
        with self._starting():
            jobs = self.list("train")
            if sum(1 for j in jobs if j.active) >= self.max_active:
                return None
            queued = [j for j in jobs if j.status == QUEUED]
            if not queued:
                return None
            job = min(queued, key=_turn)
            run_dir = Path(job.run_dir)
            if not job.resume_of and run_dir.is_dir() and any(run_dir.iterdir()):
                job.status, job.ended = "failed", now()
                job.error = (
                    f"run folder '{run_dir.name}' was taken while the job waited; start it again with a new name"
                )
                self._save(job)
                return None
            job.note = None
            return self._launch(job)

    def advance_queue(self, every: float = QUEUE_EVERY_S) -> None:
        """Advance the queue on the server: a daemon thread calls `promote` every `every` seconds, so
        a queued job starts when the one before it ends whether or not a page is open. Idempotent;
        the thread ends with `stop_queue` or when the manager is gone."""
        if self._queue_thread is not None and self._queue_thread.is_alive():
            return
        self._queue_stop.clear()
        ref = weakref.ref(self)
        self._queue_thread = threading.Thread(
            target=_advance, args=(ref, self._queue_stop, every), name="raft-job-queue", daemon=True
        )
        self._queue_thread.start()

    def stop_queue(self) -> None:
        """End the queue thread (queued jobs then wait for `promote`)."""
        self._queue_stop.set()

    def _launch(self, job: Job) -> Job:
        """Start the job's command, its output appended to the job's log, and record it running."""
        for job_id, proc in list(self._procs.items()):
            if proc.poll() is not None:
                self._procs.pop(job_id, None)
        proc = job_process.launch(job.command, self.log_path(job))
        self._procs[job.id] = proc
        job.pid, job.pid_ticks, job.status, job.launched = proc.pid, job_process.start_ticks(proc.pid), "running", now()
        self._save(job)
        return job

    def _record_lock(self, job_id: str) -> threading.Lock:
        with self._record_locks_lock:
            return self._record_locks.setdefault(job_id, threading.Lock())

    def refresh(self, job: Job) -> Job:
        """Bring an active job's status up to date from its process and run folder.

        It reads the newest record first (under the job's lock), so that a stale copy held by a
        timer or a stopping thread never writes an old status back. A result.json that says
        completed or stopped decides at once, even while the process is still exiting."""
        if not job.active:
            return job
        with self._record_lock(job.id):
            job = self._load(job.id)
            if not job.active:
                return job
            proc = self._procs.get(job.id)
            if proc is not None:
                code = proc.poll()
                alive = code is None
            else:  # started by an earlier studio process: only the pid is known
                code, alive = None, job_process.alive(job.pid or -1, job.pid_ticks)
            result = self._result(job)
            if alive and result.get("status") not in ("completed", "stopped"):
                return job
            job.exit_code, job.ended = code, now()
            if result.get("status") in ("completed", "stopped") and code in (0, None):
                job.status, job.note = result["status"], result.get("note") or job.note
            else:
                job.status = "failed"
                what = "scoring" if job.kind == "batch" else "training"
                job.error = result.get("error") or job_process.why_ended(code, what) + "\n" + self.log_tail(job, 20)
            if not alive:
                self._procs.pop(job.id, None)
            self._save(job)
            return job

    @staticmethod
    def _result(job: Job) -> dict[str, Any]:
        try:
            result = json.loads((Path(job.run_dir) / RESULT_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return result if isinstance(result, dict) else {}

    def get(self, job_id: str) -> Job:
        return self.refresh(self._load(job_id))

    def list(self, kind: str | None = None) -> list[Job]:
        """All jobs (of one `kind`, "train" or "batch", when given), newest first, with fresh
        statuses (records this server did not sign are left out)."""
        jobs = []
        for name in self.registry.ids():
            try:
                job = self._load(name)
            except JobError:
                continue
            if kind is None or job.kind == kind:
                jobs.append(self.refresh(job))
        return jobs

    def stop(self, job_id: str, timeout: float = 60.0, wait: bool = True) -> Job:
        """Ask the trainer to checkpoint and stop; kill the process group if it has not within timeout.

        The trainer honours the request in every phase: before the first step (loading, the first
        validation) it ends with no step taken, later after the current step with a checkpoint, and
        a validation pass is abandoned between batches. With `wait=False` it returns at once (status
        "stopping") and a background thread finishes."""
        job = self.get(job_id)
        if job.status == QUEUED:  # never launched: taken off the queue, nothing to stop
            with self._record_lock(job.id):
                job = self._load(job.id)
                if job.status == QUEUED:
                    job.status, job.ended, job.note = "stopped", now(), "taken off the queue before it began"
                    self._save(job)
            return job
        if not job.active:
            return job
        with self._record_lock(job.id):
            job = self._load(job.id)
            if not job.active:
                return job
            Path(job.run_dir).mkdir(parents=True, exist_ok=True)  # the trainer may not have claimed it yet
            (Path(job.run_dir) / STOP_FILE).touch()
            asked_before = job.status == "stopping"
            if not asked_before:
                job.status, job.stop_requested = "stopping", now()
                self._save(job)
        if not wait:
            watcher = self._stoppers.get(job.id)
            if asked_before and watcher is not None and watcher.is_alive():  # the first request's watcher
                return job
            watcher = threading.Thread(target=self._finish_stop, args=(job, timeout), daemon=True)
            self._stoppers[job.id] = watcher
            watcher.start()
            return job
        return self._finish_stop(job, timeout)

    def _finish_stop(self, job: Job, timeout: float) -> Job:
        """Wait for the trainer to stop; kill it after `timeout`, or after up to STARTUP_GRACE times
        that while it has not named a phase yet (still importing: it stops at its first check)."""
        asked = time.time()
        while True:
            job = self.refresh(job)
            if not job.active:
                return job
            waited = time.time() - asked
            starting = self.phase(job) is None
            if waited >= timeout * (STARTUP_GRACE if starting else 1):
                break
            time.sleep(0.2)
        doing = describe_phase(self.phase(job))
        job_process.kill_trainer(job.pid, job.pid_ticks)
        proc = self._procs.get(job.id)
        if proc:
            proc.wait(10)
        with self._record_lock(job.id):
            job = self._load(job.id)
            if job.status in ("completed", "stopped"):  # it ended cleanly just in time
                return job
            job.status, job.ended = "killed", job.ended or now()
            job.exit_code = proc.returncode if proc else job.exit_code
            job.error = f"did not stop within {waited:.0f} s (it was {doing}); killed"
            self._procs.pop(job.id, None)
            self._save(job)
        return job

    def resume(self, job_id: str) -> Job:
        """Relaunch a stopped, failed or killed job in its run folder, as the same job.

        It continues from the newest checkpoint; with none it starts over from step 0 and says so
        in `note`."""
        with self._starting():
            job = self.get(job_id)
            if job.active:
                raise JobError(f"job {job_id} is still {job.status}")
            if job.kind != "train":
                raise JobError(f"job {job_id} scores a batch; score the same file again and it resumes")
            self._check_capacity()
            run_dir = Path(job.run_dir)
            if not (run_dir / CONFIG_FILE).is_file():  # it never claimed its folder: begin it again
                own = self.registry.folder(job.id) / CONFIG_FILE
                if not own.is_file():
                    raise JobError(f"job {job_id} has no config to resume from; start a new run")
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / CONFIG_FILE).write_text(own.read_text())
            for stale in (STOP_FILE, RESULT_FILE, PHASE_FILE):  # so the new launch is not read as the old end
                (run_dir / stale).unlink(missing_ok=True)
            step = last_checkpoint_step(run_dir)
            job.command = [sys.executable, "-m", "raft", "train", "--resume", str(run_dir)]
            job.attempt += 1
            job.note = f"resumed from checkpoint-{step}" if step else "no checkpoint: starting over from step 0"
            job.ended = job.exit_code = job.error = job.stop_requested = None
            return self._launch(job)

    def phase(self, job: Job) -> dict[str, Any] | None:
        """What the run is doing now (its phase.json), None before the trainer names a phase."""
        return read_phase(job.run_dir)

    def activity(self, job: Job) -> str:
        """What the job is doing, in words: the phase with its progress while running, what a stop
        waits for while stopping, how it ended after; e.g. "validating 3/10 batches (before training)"."""
        if job.status == "running":
            return describe_phase(self.phase(job))
        if job.status == "stopping":
            waited = ""
            if job.stop_requested:
                asked = datetime.fromisoformat(job.stop_requested)
                waited = f" (asked {(datetime.now(timezone.utc) - asked).total_seconds():.0f} s ago)"
            return waiting_for(self.phase(job)) + waited
        if job.status in ("completed", "stopped", QUEUED):
            return job.note or ""
        return ""

    def describe(self, job: Job) -> str:
        """The status and the activity, e.g. "stopped · stopped before training began"."""
        return " · ".join(filter(None, [job.status, self.activity(job)]))

    def log_path(self, job: Job) -> Path:
        """The job's log, where the server put it (never a path read from a record)."""
        return self.registry.folder(job.id) / ("score.log" if job.kind == "batch" else "train.log")

    def progress(self, job: Job | str) -> list[dict[str, Any]]:
        job = self._load(job) if isinstance(job, str) else job
        return job_logs.read_progress(Path(job.run_dir) / PROGRESS_FILE)

    def log_tail(self, job: Job | str, lines: int = 40) -> str:
        job = self._load(job) if isinstance(job, str) else job
        return job_logs.tail(self.log_path(job), lines)


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


def _turn(job: Job) -> tuple[float, str]:
    """A queued job's place in the queue: when it joined, then its id."""
    return (job.queued_at or 0.0, job.id)


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
