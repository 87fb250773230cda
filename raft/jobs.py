"""Training jobs: subprocesses with a registry on disk, so that a reloaded page or a restarted
studio finds them again.

Each job is `python -m raft train` in its own process group (no shell), its output in a log
file. The registry is one `job.json` per job under DATA_ROOT/jobs, signed with a key only the server
holds: a job id is a token of a fixed form that is looked up there, never a path, and a record the
server did not write (an uploaded `job.json`, say) is refused. Status comes from the process
and the run folder (`progress.jsonl`, `result.json`); a job whose process died without a result
is marked failed with the tail of its log. Stop is cooperative first (a STOP file: the trainer
saves a checkpoint and ends after the current step), then a hard kill of the process group.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from raft.train.config import TrainConfig
from raft.train.trainer import PROGRESS_FILE, RESULT_FILE, STOP_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent
ACTIVE = ("starting", "running", "stopping")
JOB_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
"""What a job id looks like (UTC start time and a random suffix); anything else is no job."""


class JobError(RuntimeError):
    """A job request that cannot be carried out, with the reason."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _start_ticks(pid: int) -> int | None:
    """The process start time from /proc (guards against a reused pid); None when unavailable."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int, ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{pid}/stat")
    if state.exists():
        fields = state.read_text().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return False
    return ticks is None or _start_ticks(pid) == ticks


def _is_trainer(pid: int) -> bool:
    """Whether pid runs `python -m raft train` (so that a stop never signals another program)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"raft" in argv and b"train" in argv


@dataclass
class Job:
    """One training job as recorded on disk."""

    id: str
    run_dir: str
    log: str
    command: list[str]
    pid: int | None = None
    pid_ticks: int | None = None
    status: str = "starting"
    started: str = field(default_factory=_now)
    ended: str | None = None
    exit_code: int | None = None
    error: str | None = None
    resume_of: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class JobManager:
    """Start, watch, stop and resume training jobs under `root` (the studio's data root)."""

    def __init__(self, root: str | Path, max_active: int = 1):
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.max_active = max_active
        self._procs: dict[str, subprocess.Popen] = {}
        self._thread_lock = threading.Lock()
        self._key = self._secret()

    def _secret(self) -> bytes:
        """The key that signs job records, created once with owner-only permissions."""
        path = self.jobs_dir / ".key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32))
        except FileExistsError:
            pass
        return path.read_bytes()

    def _mac(self, record: dict[str, Any]) -> str:
        return hmac.new(self._key, json.dumps(record, sort_keys=True).encode(), hashlib.sha256).hexdigest()

    def _save(self, job: Job) -> None:
        folder = self.jobs_dir / job.id
        folder.mkdir(parents=True, exist_ok=True)
        record = asdict(job)
        tmp = folder / f"job.json.{uuid.uuid4().hex}.tmp"  # several threads may save one job
        tmp.write_text(json.dumps({**record, "mac": self._mac(record)}, indent=2))
        tmp.replace(folder / "job.json")

    def _load(self, job_id: str) -> Job:
        """A job by id, from a record this server signed; a malformed id or a forged record is no job."""
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise JobError(f"no job '{str(job_id)[:80]}'")
        path = self.jobs_dir / job_id / "job.json"
        try:
            record = json.loads(path.read_text())
            mac = record.pop("mac")
            if not hmac.compare_digest(str(mac), self._mac(record)):
                raise ValueError("bad signature")
            return Job(**record)
        except (OSError, ValueError, KeyError, TypeError):
            raise JobError(f"no job '{job_id}'") from None

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
        job_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        run_dir = Path(config.output_dir)
        if not resume_of and run_dir.is_dir() and any(run_dir.iterdir()):
            raise JobError(f"run folder '{run_dir.name}' already holds a run; choose a new run name, or resume its job")
        (self.jobs_dir / job_id).mkdir(parents=True, exist_ok=True)
        if resume_of:
            command = [sys.executable, "-m", "raft", "train", "--resume", str(run_dir)]
        else:  # the trainer writes the run folder's own config.yaml when it claims the folder
            config.to_yaml(self.jobs_dir / job_id / "config.yaml")
            command = [sys.executable, "-m", "raft", "train", str(self.jobs_dir / job_id / "config.yaml")]
        log = self.jobs_dir / job_id / "train.log"
        job = Job(id=job_id, run_dir=str(run_dir), log=str(log), command=command, resume_of=resume_of)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        with log.open("ab") as out:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=env,
                start_new_session=True,
            )
        self._procs[job_id] = proc
        job.pid, job.pid_ticks, job.status = proc.pid, _start_ticks(proc.pid), "running"
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
            code, alive = None, _alive(job.pid or -1, job.pid_ticks)
        if alive:
            return job
        result_path = Path(job.run_dir) / RESULT_FILE
        result = json.loads(result_path.read_text()) if result_path.is_file() else {}
        job.exit_code, job.ended = code, _now()
        if result.get("status") in ("completed", "stopped") and code in (0, None):
            job.status = result["status"]
        else:
            job.status = "failed"
            job.error = result.get("error") or self._why(code) + "\n" + self.log_tail(job, 20)
        self._procs.pop(job.id, None)
        self._save(job)
        return job

    @staticmethod
    def _why(code: int | None) -> str:
        if code is None:
            return "the training process ended without a result (killed, or the machine restarted)"
        if code < 0:
            return f"the training process was killed by signal {signal.Signals(-code).name}"
        return f"the training process exited with code {code}"

    def get(self, job_id: str) -> Job:
        return self.refresh(self._load(job_id))

    def list(self) -> list[Job]:
        """All jobs, newest first, with fresh statuses (records this server did not sign are left out)."""
        jobs = []
        for name in sorted((p.parent.name for p in self.jobs_dir.glob("*/job.json")), reverse=True):
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
        if job.pid and _alive(job.pid, job.pid_ticks) and _is_trainer(job.pid):
            try:
                os.killpg(job.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
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
        return self.jobs_dir / job.id / "train.log"

    def progress(self, job: Job | str) -> list[dict[str, Any]]:
        job = self._load(job) if isinstance(job, str) else job
        path = Path(job.run_dir) / PROGRESS_FILE
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written right now
        return rows

    def log_tail(self, job: Job | str, lines: int = 40) -> str:
        job = self._load(job) if isinstance(job, str) else job
        path = self.log_path(job)
        if not path.is_file():
            return ""
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 64_000))
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])


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
