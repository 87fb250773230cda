"""How a job stands, read from its files: the run's result.json, a batch job's description and
scorer status, the status a process that has ended leaves, and what the job is doing in words."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from raft import job_logs, job_process
from raft.job_registry import QUEUED, Job, now
from raft.runs import RESULT_FILE
from raft.train.phase import describe_phase, waiting_for

BATCH_INFO = "batch.json"
"""What a batch job scores (the caller's description: file, judge, output), in the job's folder."""
BATCH_STATUS = "status.json"

ENDED = ("completed", "stopped")
"""The statuses a result.json may give that end a job cleanly."""


def _read_dict(path: Path, encoding: str | None = None) -> dict[str, Any]:
    """A JSON object from a file, or {} when it is absent, unreadable or not an object."""
    try:
        found = json.loads(path.read_text(encoding=encoding))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def read_result(job: Job) -> dict[str, Any]:
    """The run's result.json, {} until the run writes one."""
    return _read_dict(Path(job.run_dir) / RESULT_FILE)


def read_batch_info(folder: Path) -> dict[str, Any]:
    """A batch job's description, its scorer's latest status under "status" and how it ended under
    "result", from the job's own `folder`."""
    info: dict[str, Any] = {}
    for name, key in ((BATCH_INFO, None), (BATCH_STATUS, "status"), (RESULT_FILE, "result")):
        found = _read_dict(folder / name, encoding="utf-8")
        info.update({key: found} if key else found)
    return info


def settle(job: Job, code: int | None, result: dict[str, Any], log: Path) -> None:
    """Record how a job ended: as its result says when it ended cleanly, else failed with the
    result's error or why the process ended and the tail of its `log`."""
    job.exit_code, job.ended = code, now()
    if result.get("status") in ENDED and code in (0, None):
        job.status, job.note = result["status"], result.get("note") or job.note
    else:
        job.status = "failed"
        what = "scoring" if job.kind == "batch" else "training"
        job.error = result.get("error") or job_process.why_ended(code, what) + "\n" + job_logs.tail(log, 20)


def activity(job: Job, phase: dict[str, Any] | None) -> str:
    """What the job is doing, in words: the `phase` with its progress while running, what a stop
    waits for while stopping, how it ended after; e.g. "validating 3/10 batches (before training)"."""
    if job.status == "running":
        return describe_phase(phase)
    if job.status == "stopping":
        waited = ""
        if job.stop_requested:
            asked = datetime.fromisoformat(job.stop_requested)
            waited = f" (asked {(datetime.now(timezone.utc) - asked).total_seconds():.0f} s ago)"
        return waiting_for(phase) + waited
    if job.status in ("completed", "stopped", QUEUED):
        return job.note or ""
    return ""


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
        out.update({f"val_{k}": v for k, v in evals[-1]["eval"].items() if k in ("n", "pearson", "rmse")})
    return out
