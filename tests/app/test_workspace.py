"""Visitors' workspaces: keys, quotas, lookups and the idle clean-up."""

import os
import time
from types import SimpleNamespace

import pytest

from app.workspace import WorkspaceError, offer, sweep, visitor_key, workspace_for


def test_the_key_prefers_the_signed_in_user_then_the_session():
    assert visitor_key(None) is None
    assert visitor_key(SimpleNamespace(username="ada", session_hash="s1", request=None)) == "user:ada"
    oauth = SimpleNamespace(scope={"session": {"oauth_info": {"userinfo": {"preferred_username": "bob"}}}})
    assert visitor_key(SimpleNamespace(username=None, session_hash="s1", request=oauth)) == "user:bob"
    assert visitor_key(SimpleNamespace(username=None, session_hash="s1", request=None)) == "session:s1"


def test_public_workspaces_are_private_folders_and_local_is_the_root(tmp_path):
    assert workspace_for(tmp_path, None, public=False, quota_bytes=0).root == tmp_path
    a = workspace_for(tmp_path, "session:a", public=True, quota_bytes=10)
    b = workspace_for(tmp_path, "session:b", public=True, quota_bytes=10)
    assert a.root != b.root and a.root.parent == b.root.parent == tmp_path / "workspaces"
    assert "session" not in a.root.name and a.datasets.is_dir() and a.batch.is_dir()
    with pytest.raises(WorkspaceError, match="no visitor session"):
        workspace_for(tmp_path, None, public=True, quota_bytes=10)


def test_the_quota_refuses_new_work_once_full(tmp_path):
    ws = workspace_for(tmp_path, "session:a", public=True, quota_bytes=1000)
    ws.check_quota()
    (ws.batch / "big.jsonl").write_bytes(b"x" * 1001)
    with pytest.raises(WorkspaceError, match="workspace is full"):
        ws.check_quota()


def test_idle_workspaces_are_swept(tmp_path):
    old = workspace_for(tmp_path, "session:old", public=True, quota_bytes=10).root
    new = workspace_for(tmp_path, "session:new", public=True, quota_bytes=10).root
    past = time.time() - 3 * 3600
    os.utime(old, (past, past))
    assert sweep(tmp_path, idle_s=3600) == 1
    assert not old.exists() and new.exists()


def test_offered_files_are_copies_outside_the_workspace(tmp_path):
    source = tmp_path / "r.csv"
    source.write_text("a\n1\n")
    [copy] = offer([source])
    assert copy != str(source) and open(copy).read() == "a\n1\n" and not copy.startswith(str(tmp_path))
