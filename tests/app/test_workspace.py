"""Visitors' workspaces and their one writer: keys, the quota and the total cap charged as bytes are
written (not from an estimate), a refused write leaving things as they were, eviction only of
workspaces idle past the idle time, folders made on first write only, staged downloads counted."""

import os
import threading
import time
from types import SimpleNamespace

import pytest

from app.workspace import Disk, WorkspaceError, staging_root, sweep, visitor_key, workspace_for
from raft.output import open_output


def test_the_key_prefers_the_signed_in_user_then_the_session():
    assert visitor_key(None) is None
    assert visitor_key(SimpleNamespace(username="ada", session_hash="s1", request=None)) == "user:ada"
    oauth = SimpleNamespace(scope={"session": {"oauth_info": {"userinfo": {"preferred_username": "bob"}}}})
    assert visitor_key(SimpleNamespace(username=None, session_hash="s1", request=oauth)) == "user:bob"
    assert visitor_key(SimpleNamespace(username=None, session_hash="s1", request=None)) == "session:s1"


def test_public_workspaces_are_private_folders_made_on_first_write_and_local_is_the_root(tmp_path):
    assert workspace_for(tmp_path, None, public=False, quota_bytes=0).root == tmp_path
    a = workspace_for(tmp_path, "session:a", public=True, quota_bytes=10)
    b = workspace_for(tmp_path, "session:b", public=True, quota_bytes=10)
    assert a.root != b.root and a.root.parent == b.root.parent == tmp_path / "workspaces"
    assert "session" not in a.root.name
    assert not a.root.exists(), "a visit alone made a folder"
    a.write_text(a.reports / "r", "12345")
    assert a.datasets.is_dir() and a.batch.is_dir() and not b.root.exists()
    with pytest.raises(WorkspaceError, match="no visitor session"):
        workspace_for(tmp_path, None, public=True, quota_bytes=10)


def test_a_hundred_visits_make_no_folder(tmp_path):
    for i in range(100):
        workspace_for(tmp_path, f"session:{i}", public=True, quota_bytes=10)
    assert not (tmp_path / "workspaces").exists() or not list((tmp_path / "workspaces").iterdir())


def test_the_quota_is_charged_as_bytes_are_written_and_a_refused_file_is_put_back(tmp_path):
    disk = Disk(tmp_path / "workspaces", staging_root(tmp_path), total_bytes=10**9)
    ws = workspace_for(tmp_path, "session:a", True, 1000, disk)
    ws.write_text(ws.batch / "kept.jsonl", "k" * 300)
    with pytest.raises(WorkspaceError, match="workspace is full"), ws.writing():
        with open_output(ws.batch / "out.jsonl", "w") as f:  # the library's output, through the writer
            for _ in range(100):
                f.write("x" * 100)  # the 8th line passes 1000 bytes: refused before it lands
    assert not (ws.batch / "out.jsonl").exists(), "a refused new file is removed"
    assert (ws.batch / "kept.jsonl").read_text() == "k" * 300, "what was there is kept"
    with pytest.raises(WorkspaceError), ws.writing(), open_output(ws.batch / "kept.jsonl", "a") as f:
        f.write("y" * 600)
        f.write("y" * 200)
    assert (ws.batch / "kept.jsonl").read_text() == "k" * 300, "an append is cut back to what it was"
    assert ws.used_bytes() == 300


def test_a_second_call_in_the_same_session_is_charged_too(tmp_path):
    disk = Disk(tmp_path / "workspaces", staging_root(tmp_path), total_bytes=10**9)
    ws = workspace_for(tmp_path, "session:a", True, 1000, disk)
    ws.write_text(ws.batch / "one", "x" * 900)
    with pytest.raises(WorkspaceError, match="workspace is full"):
        ws.write_text(ws.batch / "two", "x" * 200)
    assert ws.used_bytes() == 900


def test_concurrent_writers_of_one_workspace_share_its_quota(tmp_path):
    disk = Disk(tmp_path / "workspaces", staging_root(tmp_path), total_bytes=10**9)
    ws = workspace_for(tmp_path, "session:a", True, 10_000, disk)
    refusals = []

    def write(i):
        try:
            with ws.writing(), ws.open(ws.batch / f"f{i}", "w") as f:
                for _ in range(40):
                    f.write("z" * 100)
                    time.sleep(0.001)
        except WorkspaceError:
            refusals.append(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ws.used_bytes() <= 10_000 and refusals, "four writers of 4,000 bytes passed a 10,000-byte quota"


def test_staged_downloads_count_against_the_quota_and_are_swept(tmp_path):
    disk = Disk(tmp_path / "workspaces", staging_root(tmp_path), total_bytes=10**9)
    ws = workspace_for(tmp_path, "session:a", True, 1000, disk)
    source = ws.reports / "r.csv"
    ws.write_text(source, "y" * 300)
    [copy] = ws.offer([source])
    assert open(copy, "rb").read() == b"y" * 300 and not copy.startswith(str(tmp_path))
    assert ws.used_bytes() == 600
    with pytest.raises(WorkspaceError, match="workspace is full"):
        ws.offer([source, source])
    assert ws.used_bytes() == 600, "a refused offer leaves no partial copy"
    past = time.time() - 3600
    os.utime(os.path.dirname(copy), (past, past))
    sweep(tmp_path, idle_s=24 * 3600)
    assert not os.path.exists(copy) and ws.used_bytes() == 300


def test_the_total_cap_evicts_only_workspaces_idle_past_the_idle_time(tmp_path):
    disk = Disk(tmp_path / "workspaces", staging_root(tmp_path), total_bytes=3000, idle_s=3600)
    spaces = [workspace_for(tmp_path, f"session:{i}", True, 10_000, disk) for i in range(4)]
    for ws in spaces[:3]:
        ws.write_text(ws.batch / "f", "z" * 1000)
    expired, recent = time.time() - 2 * 3600, time.time() - 22 * 60
    os.utime(spaces[0].root, (expired, expired))  # past the idle time
    os.utime(spaces[1].root, (recent, recent))  # idle 22 minutes: a visitor still at work
    spaces[3].write_text(spaces[3].batch / "f", "z" * 900)
    assert not spaces[0].root.exists(), "the expired workspace makes room"
    with pytest.raises(WorkspaceError, match="disk for visitors is full"):
        spaces[3].write_text(spaces[3].batch / "g", "z" * 1500)
    assert spaces[1].root.exists() and spaces[2].root.exists(), "a refused write evicted a workspace in use"
    assert (spaces[1].batch / "f").read_text() == "z" * 1000
    assert disk.used() <= 3000


def test_five_forged_sessions_stay_under_the_total_cap(tmp_path):
    disk = Disk(tmp_path / "workspaces", staging_root(tmp_path), total_bytes=2500)
    written = 0
    for i in range(5):
        ws = workspace_for(tmp_path, f"session:forged-{i}", True, 1000, disk)
        try:
            ws.write_text(ws.batch / "f", "z" * 900)
        except WorkspaceError as exc:
            assert "disk for visitors is full" in str(exc)
            continue
        written += 900
    assert written == 1800 and disk.used() <= 2500


def test_idle_workspaces_are_swept_with_their_staging(tmp_path):
    old = workspace_for(tmp_path, "session:old", public=True, quota_bytes=100)
    new = workspace_for(tmp_path, "session:new", public=True, quota_bytes=100)
    old.write_text(old.reports / "r", "r")
    new.write_text(new.reports / "r", "r")
    old.offer([old.reports / "r"])
    past = time.time() - 3 * 3600
    os.utime(old.root, (past, past))
    assert sweep(tmp_path, idle_s=3600) == 1
    assert not old.root.exists() and not old.staging.exists() and new.root.exists()
