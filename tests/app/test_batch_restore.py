"""A reloaded Batch tab shows the visitor's newest batch result (finished, not only running), and a
batch says what it is doing from its first seconds: loading the judge, then rows scored of the total
with the rate and the time left, read by the tab's timer from the status file that the score
process rewrites after every batch of rows."""

import json
import os
import time
from types import SimpleNamespace

from app import batch_tab
from app.studio import DEFAULT_CHOICE, Settings, Studio
from raft import cli, job_process
from raft.files import write_rows
from raft.job_registry import Job, new_job_id
from raft.jobs import BATCH_INFO, BATCH_STATUS
from raft.synthetic import generate_rows


def _visitor(name):
    return SimpleNamespace(username=None, session_hash=name, request=None)


def test_a_finished_batch_is_shown_again_after_a_reload_to_its_own_visitor_only(tmp_path, tiny_model):
    studio = Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model), public=True))
    path = write_rows(tmp_path / "few.jsonl", generate_rows(6, seed=5))
    ada = _visitor("ada")
    job_id, status, shown = batch_tab.follow_batch(
        studio, str(path), "", DEFAULT_CHOICE, "score_only", 2, "orig_score", request=ada
    )
    assert shown == job_id and "running" in status  # the click hands the job to the timer at once
    while studio.jobs.get(job_id).active:
        time.sleep(0.5)
    # the page is reloaded: the load finds the newest batch although it has ended
    assert batch_tab.latest_batch(studio, ada) == job_id
    assert batch_tab.latest_batch(studio, _visitor("bob")) == ""  # another visitor's result is not theirs
    status, table, summary, _, _, downloads, shown = batch_tab.watch_batch(studio, job_id, None, ada)
    assert shown == job_id and "completed" in status and "few.jsonl" in status
    assert len(table) == 6 and "Scored 6 rows" in summary
    assert [p.rsplit(".", 1)[-1] for p in downloads] == ["csv", "jsonl"]
    assert str(tmp_path) not in status + summary


def _running_batch(studio, tmp_path, status=None):
    """A batch job record whose process is this one (alive), with the given status file."""
    job_id = new_job_id()
    folder = studio.jobs.registry.folder(job_id)
    folder.mkdir(parents=True)
    out = studio.workspace(None).batch / "rows-abc.jsonl"
    info = {"out": str(out), "file": "rows.csv", "judge": "my judge", "total": 32}
    (folder / BATCH_INFO).write_text(json.dumps(info))
    if status is not None:
        (folder / BATCH_STATUS).write_text(json.dumps(status))
    pid = os.getpid()
    job = Job(id=job_id, run_dir=str(folder), log=str(folder / "score.log"), command=[], kind="batch")
    job.status, job.pid, job.pid_ticks = "running", pid, job_process.start_ticks(pid)
    studio.jobs.registry.save(job)
    return job_id


def test_the_timer_shows_the_phase_then_rows_with_rate_and_time_left(studio, tmp_path):
    before = _running_batch(studio, tmp_path)  # the process has not written its status yet
    status = batch_tab.watch_batch(studio, before, None)[0]
    assert "loading the judge my judge" in status and "rows.csv" in status
    loading = _running_batch(studio, tmp_path, {"phase": "loading", "rows": 0, "total": None, "tokens": 0})
    assert "loading the judge" in batch_tab.watch_batch(studio, loading, None)[0]
    state = {"phase": "scoring", "rows": 8, "total": 32, "tokens": 0, "first": 0, "since": time.time() - 10}
    scoring = _running_batch(studio, tmp_path, state)
    status = batch_tab.watch_batch(studio, scoring, None)[0]
    assert "scoring: 8 of 32 rows" in status and "rows/s" in status and "s left" in status, status
    assert "(25%)" in status


def test_the_score_process_names_its_loading_phase_and_writes_rows_after_each_batch(tmp_path, tiny_model, monkeypatch):
    path = write_rows(tmp_path / "rows.jsonl", generate_rows(10, seed=6))
    seen = []
    update = cli.StatusFile.update

    def record(self, **values):
        update(self, **values)
        seen.append(dict(self.state))

    monkeypatch.setattr(cli.StatusFile, "update", record)
    args = ["score", "--input", str(path), "--out", str(tmp_path / "o.jsonl"), "--model", str(tiny_model)]
    args += ["--device", "cpu", "--batch-size", "3", "--status", str(tmp_path / "status.json")]
    assert cli.main(args) == 0
    assert seen[0]["phase"] == "loading"  # from the process's first second, before the judge loads
    rows = [s["rows"] for s in seen if s["phase"] == "scoring"]
    assert rows == [0, 3, 6, 9, 10], rows  # after every batch of rows
    assert all(s.get("since") and s.get("first") == 0 for s in seen if s["phase"] == "scoring")
