"""The job registry: one `job.json` per job under DATA_ROOT/jobs, signed with a key only the server
holds. A job id is a token of a fixed form that is looked up here, never a path, and a record the
server did not write (an uploaded `job.json`, say) is no job."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from raft.errors import RaftError

ACTIVE = ("starting", "running", "stopping")
QUEUED = "queued"
"""A job waiting for its turn (not active: it holds no process until `JobManager.promote` launches it)."""
JOB_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
"""What a job id looks like (UTC start time and a random suffix); anything else is no job."""


class JobError(RaftError, RuntimeError):
    """A job request that cannot be carried out, with the reason."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_job_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


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
    started: str = field(default_factory=now)
    ended: str | None = None
    exit_code: int | None = None
    error: str | None = None
    resume_of: str | None = None
    attempt: int = 1
    """1 for the first launch; each Resume relaunches the same job (same id, same run folder)."""
    note: str | None = None
    """What the last launch or end means for the run, e.g. "no checkpoint: starting over from step 0"."""
    stop_requested: str | None = None
    launched: str | None = None
    """When the current attempt's process started (`started` is the first attempt's)."""
    queued_at: float | None = None
    """When it joined the queue (seconds since the epoch, finer than ids made in one second): its turn."""
    kind: str = "train"
    """"train" (`python -m raft train`) or "batch" (`python -m raft score` of a file)."""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class JobRegistry:
    """Signed job records in `jobs_dir`, one folder per job id."""

    def __init__(self, jobs_dir: Path):
        self.jobs_dir = jobs_dir
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
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

    def folder(self, job_id: str) -> Path:
        """The job's own folder (its log and config live there); the id must be a well-formed one."""
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise JobError(f"no job '{str(job_id)[:80]}'")
        return self.jobs_dir / job_id

    def save(self, job: Job) -> None:
        folder = self.folder(job.id)
        folder.mkdir(parents=True, exist_ok=True)
        record = asdict(job)
        tmp = folder / f"job.json.{uuid.uuid4().hex}.tmp"  # several threads may save one job
        tmp.write_text(json.dumps({**record, "mac": self._mac(record)}, indent=2))
        tmp.replace(folder / "job.json")

    def load(self, job_id: str) -> Job:
        """A job by id, from a record this server signed; a malformed id or a forged record is no job."""
        path = self.folder(job_id) / "job.json"
        try:
            record = json.loads(path.read_text())
            mac = record.pop("mac")
            if not hmac.compare_digest(str(mac), self._mac(record)):
                raise ValueError("bad signature")
            return Job(**record)
        except (OSError, ValueError, KeyError, TypeError):
            raise JobError(f"no job '{job_id}'") from None

    def ids(self) -> list[str]:
        """Ids of the folders holding a record, newest first (signatures are checked by `load`)."""
        return sorted((p.parent.name for p in self.jobs_dir.glob("*/job.json")), reverse=True)
