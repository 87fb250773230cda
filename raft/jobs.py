"""Training and batch-scoring jobs: subprocesses with a registry on disk, so that a reloaded page or
a restarted studio finds them again.

`JobManager` ties its parts together: the signed registry (`raft.job_registry`), process control
(`raft.job_process`, `raft.job_runtime`), reading a job's log and progress (`raft.job_logs`) and
status (`raft.job_status`), preparing a launch (`raft.job_setup`), stopping (`raft.job_stop`) and
the queue (`raft.job_queue`). Status comes from the process and the run folder (`progress.jsonl`,
`result.json`); a job whose process died without a result is marked failed with the tail of its
log; the run's phase.json says what it is doing now. Stop is cooperative first (a STOP file:
before any step the trainer ends at once, later it saves a checkpoint after the current step; a
validation pass is abandoned between batches), then a hard kill of the process group. Resume
relaunches the same job in the same run folder.

A batch job (`kind="batch"`) is `python -m raft score` of one file into one output; its folder is
the job's own, where the scorer writes `status.json` (phase, rows done of total) as it goes and
`result.json` at the end. It resumes row by row: starting the same output again continues it.
Batch jobs neither wait in nor hold up the training queue; at most `max_batches` run at once.
A second training job waits in a queue; `advance_queue` starts it on the server when its turn comes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raft import job_logs, job_process, job_queue, job_setup, job_status
from raft.job_registry import JOB_ID, QUEUED, Job, JobError, JobRegistry, new_job_id, now
from raft.job_runtime import JobLocks, Processes
from raft.job_status import BATCH_INFO, BATCH_STATUS, summarize
from raft.job_stop import Stopper
from raft.runs import CONFIG_FILE, PROGRESS_FILE
from raft.train.config import TrainConfig
from raft.train.phase import read_phase

__all__ = ["BATCH_INFO", "BATCH_STATUS", "JOB_ID", "QUEUED", "Job", "JobError", "JobManager", "summarize"]


class JobManager:
    """Start, watch, stop and resume training jobs under `root` (the studio's data root)."""

    def __init__(self, root: str | Path, max_active: int = 1, max_batches: int = 2):
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"
        self.registry = JobRegistry(self.jobs_dir)
        self.max_active = max_active
        self.max_batches = max_batches
        self._procs = Processes()
        self._locks = JobLocks(self.jobs_dir)
        self._stopper = Stopper(self.registry, self._locks, self._procs, self.refresh)
        self._queue = job_queue.QueueThread()

    def _save(self, job: Job) -> None:
        self.registry.save(job)

    def _load(self, job_id: str) -> Job:
        return self.registry.load(job_id)

    def _new_folder(self) -> tuple[str, Path]:
        job_id = new_job_id()
        folder = self.registry.folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        return job_id, folder

    def start(self, config: TrainConfig, resume_of: str | None = None, queue: bool = False) -> Job:
        """Write the run's config and launch the trainer. When max_active jobs are running it refuses,
        or with `queue` records the job as "queued": `promote` launches it when its turn comes."""
        with self._locks.starting():
            jobs = self.list("train")
            waiting = job_queue.waiting_on(jobs, queue, self.max_active)
            job_setup.check_run_free(Path(config.output_dir), jobs, resume_of)
            job = job_setup.train_job(config, *self._new_folder(), resume_of)
            if waiting is None:
                return self._launch(job)
            job_queue.mark_queued(job, waiting)
            self._save(job)
            return job

    def start_batch(self, command: list[str], info: dict[str, Any]) -> Job:
        """Launch `python -m raft score ...` (`command`, without its status and result files, which
        the job's own folder holds) as a batch job; `info` (JSON) describes it for `batch_info`.

        The same output already being scored by an active job gives that job (an identical run
        resumes rather than writing twice); more than `max_batches` at once are refused."""
        with self._locks.starting():
            for job in self.list("batch"):
                if job.active and self.batch_info(job).get("out") == info.get("out"):
                    return job
            running = [j for j in self.list("batch") if j.active]
            if len(running) >= self.max_batches:
                raise JobError(f"{len(running)} batches are being scored on this machine; try again when one ends")
            return self._launch(job_setup.batch_job(command, info, *self._new_folder()))

    def batch_info(self, job: Job) -> dict[str, Any]:
        """A batch job's description (as given to `start_batch`) and its scorer's latest status
        (`phase`, `rows`, `total`, `tokens`) under "status", and how it ended (`scored`, `skipped`,
        `errors`) under "result"; empty for a training job."""
        return job_status.read_batch_info(self.registry.folder(job.id)) if job.kind == "batch" else {}

    def promote(self) -> Job | None:
        """Launch the oldest queued job when fewer than max_active jobs run (the queue thread of
        `advance_queue` calls this every few seconds); returns the job launched, if any."""
        with self._locks.starting():
            job = job_queue.next_in_line(self.list("train"), self.max_active)
            if job is None:
                return None
            if job_queue.lost_its_folder(job):
                self._save(job)
                return None
            job.note = None
            return self._launch(job)

    def advance_queue(self, every: float = job_queue.QUEUE_EVERY_S) -> None:
        """Advance the queue on the server: a daemon thread calls `promote` every `every` seconds, so
        a queued job starts when the one before it ends whether or not a page is open. Idempotent;
        the thread ends with `stop_queue` or when the manager is gone."""
        self._queue.start(self, every)

    def stop_queue(self) -> None:
        """End the queue thread (queued jobs then wait for `promote`)."""
        self._queue.stop()

    def _launch(self, job: Job) -> Job:
        """Start the job's command, its output appended to the job's log, and record it running."""
        proc = self._procs.launch(job, self.log_path(job))
        job.pid, job.pid_ticks, job.status, job.launched = proc.pid, job_process.start_ticks(proc.pid), "running", now()
        self._save(job)
        return job

    def refresh(self, job: Job) -> Job:
        """Bring an active job's status up to date from its process and run folder.

        It reads the newest record first (under the job's lock), so that a stale copy held by a
        timer or a stopping thread never writes an old status back. A result.json that says
        completed or stopped decides at once, even while the process is still exiting."""
        if not job.active:
            return job
        with self._locks.record(job.id):
            job = self._load(job.id)
            if not job.active:
                return job
            code, alive = self._procs.state(job)
            result = job_status.read_result(job)
            if alive and result.get("status") not in job_status.ENDED:
                return job
            job_status.settle(job, code, result, self.log_path(job))
            if not alive:
                self._procs.pop(job.id, None)
            self._save(job)
            return job

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
        return self._stopper.stop(job_id, timeout, wait)

    def resume(self, job_id: str) -> Job:
        """Relaunch a stopped, failed or killed job in its run folder, as the same job.

        It continues from the newest checkpoint; with none it starts over from step 0 and says so
        in `note`."""
        with self._locks.starting():
            job = self.get(job_id)
            if job.active:
                raise JobError(f"job {job_id} is still {job.status}")
            if job.kind != "train":
                raise JobError(f"job {job_id} scores a batch; score the same file again and it resumes")
            job_queue.check_capacity(self.list("train"), self.max_active)
            job_setup.prepare_resume(job, self.registry.folder(job.id) / CONFIG_FILE)
            return self._launch(job)

    def phase(self, job: Job) -> dict[str, Any] | None:
        """What the run is doing now (its phase.json), None before the trainer names a phase."""
        return read_phase(job.run_dir)

    def activity(self, job: Job) -> str:
        """What the job is doing, in words, e.g. "validating 3/10 batches (before training)"."""
        return job_status.activity(job, self.phase(job))

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
