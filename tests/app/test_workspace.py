"""Visitors' workspaces: keys, quotas checked before writing, the total cap with the idle evicted
first, folders made on first write only, and staged downloads counted and swept."""

import os
import time
from types import SimpleNamespace

import pytest

from app.workspace import Disk, WorkspaceError, staging_root, sweep, visitor_key, workspace_for


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
    a.reserve(5)
    assert a.datasets.is_dir() and a.batch.is_dir() and not b.root.exists()
    with pytest.raises(WorkspaceError, match="no visitor session"):
        workspace_for(tmp_path, None, public=True, quota_bytes=10)


def test_a_hundred_visits_make_no_folder(tmp_path):
    for i in range(100):
        workspace_for(tmp_path, f"session:{i}", public=True, quota_bytes=10)
    assert not (tmp_path / "workspaces").exists() or not list((tmp_path / "workspaces").iterdir())


def test_the_quota_is_checked_against_the_size_about_to_be_written(tmp_path):
    ws = workspace_for(tmp_path, "session:a", public=True, quota_bytes=1000)
    with pytest.raises(WorkspaceError, match="workspace is full: this needs"):
        ws.reserve(7100)  # the first write of a session overshot the quota before
    ws.reserve(600)
    (ws.batch / "out.jsonl").write_bytes(b"x" * 600)
    with pytest.raises(WorkspaceError, match="workspace is full"):
        ws.reserve(401)


def test_staged_downloads_count_against_the_quota_and_are_swept(tmp_path):
    ws = workspace_for(tmp_path, "session:a", public=True, quota_bytes=1000)
    ws.reserve(0)
    source = ws.reports / "r.csv"
    source.write_bytes(b"y" * 300)
    [copy] = ws.offer([source])
    assert open(copy, "rb").read() == b"y" * 300 and not copy.startswith(str(tmp_path))
    assert ws.used_bytes() == 600
    with pytest.raises(WorkspaceError, match="workspace is full"):
        ws.offer([source, source])
    past = time.time() - 3600
    os.utime(os.path.dirname(copy), (past, past))
    sweep(tmp_path, idle_s=24 * 3600)
    assert not os.path.exists(copy) and ws.used_bytes() == 300


def test_the_total_cap_evicts_the_longest_idle_workspaces_first(tmp_path):
    disk = Disk(tmp_path / "workspaces", staging_root(tmp_path), total_bytes=3000, min_idle_s=60)
    spaces = [workspace_for(tmp_path, f"session:{i}", True, 10_000, disk) for i in range(4)]
    for i, ws in enumerate(spaces[:3]):
        ws.reserve(1000)
        (ws.batch / "f").write_bytes(b"z" * 1000)
        past = time.time() - 3600 + i * 60  # 0 idle the longest, then 1, then 2
        os.utime(ws.root, (past, past))
    spaces[3].reserve(1500)
    assert not spaces[0].root.exists() and not spaces[1].root.exists() and spaces[2].root.exists()
    assert disk.used() <= 3000


def test_five_forged_sessions_stay_under_the_total_cap(tmp_path):
    disk = Disk(tmp_path / "workspaces", staging_root(tmp_path), total_bytes=2500)
    written = 0
    for i in range(5):
        ws = workspace_for(tmp_path, f"session:forged-{i}", True, 1000, disk)
        try:
            ws.reserve(900)
        except WorkspaceError as exc:
            assert "disk for visitors is full" in str(exc)
            continue
        (ws.batch / "f").write_bytes(b"z" * 900)
        written += 900
    assert written == 1800 and disk.used() <= 2500


def test_idle_workspaces_are_swept_with_their_staging(tmp_path):
    old = workspace_for(tmp_path, "session:old", public=True, quota_bytes=100).reserve(0)
    new = workspace_for(tmp_path, "session:new", public=True, quota_bytes=100).reserve(0)
    (old.reports / "r").write_text("r")
    old.offer([old.reports / "r"])
    past = time.time() - 3 * 3600
    os.utime(old.root, (past, past))
    assert sweep(tmp_path, idle_s=3600) == 1
    assert not old.root.exists() and not old.staging.exists() and new.root.exists()
