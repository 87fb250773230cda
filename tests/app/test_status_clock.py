"""The training status keeps time: elapsed counts from the launch on every tick (it never freezes
between steps, nor jumps back when the trainer's own clock starts after loading), and the time
left counts down between steps."""

import json
import os
import time
from datetime import datetime, timedelta, timezone

from app import finetune_tab
from raft.jobs import Job


def _stamp(seconds_ago):
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).isoformat(timespec="seconds")


def test_elapsed_is_monotone_across_the_start_of_training_and_remaining_counts_down(studio, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    job = Job(id="20260101-000000-abcdef", run_dir=str(run), log="", command=[], status="running")
    job.launched = _stamp(100)  # loading took 90 s; the trainer's clock says 10 s at step 1
    before = finetune_tab.status_line(studio, job, [])
    progress = [{"step": 1, "total_steps": 10, "loss": 1.0, "elapsed_s": 10.0, "remaining_s": 90.0}]
    (run / "progress.jsonl").write_text(json.dumps(progress[0]) + "\n")
    written = time.time() - 30
    os.utime(run / "progress.jsonl", (written, written))
    after = finetune_tab.status_line(studio, job, progress)
    assert "elapsed 1m 40s" in before and "elapsed 1m 40s" in after  # not "10s": no jump back
    assert "remaining 1m 00s" in after or "remaining 59s" in after  # 90 s estimated 30 s ago
    job.status, job.ended = "completed", _stamp(0)
    assert "elapsed 1m 40s" in finetune_tab.status_line(studio, job, progress)
