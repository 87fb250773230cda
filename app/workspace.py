"""Visitors' workspaces: on a public Space each visitor's datasets, batch results and reports live in
a private folder keyed by the signed-in user or the Gradio session, with a size quota and removal
after an idle time; locally (one trusted user) the data root itself is the workspace.

Nothing a client sends becomes a path here: the folder name is a hash of the server-side key.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SWEEP_EVERY_S = 600.0


class WorkspaceError(ValueError):
    """A request the visitor's workspace cannot take (quota, unknown name)."""


@dataclass(frozen=True)
class Workspace:
    """One visitor's folders (or the studio's own, locally)."""

    root: Path
    quota_bytes: int | None = None

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def batch(self) -> Path:
        return self.root / "batch"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def make(self) -> Workspace:
        for folder in (self.datasets, self.batch, self.reports):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def used_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def check_quota(self, more: int = 0) -> None:
        """Refuse new work once the workspace holds its quota."""
        if self.quota_bytes is not None and self.used_bytes() + more > self.quota_bytes:
            raise WorkspaceError(
                f"your workspace is full ({self.quota_bytes // 2**20} MB): download what you need and "
                "come back later (idle workspaces are cleared)"
            )


def visitor_key(request: Any) -> str | None:
    """The signed-in user (login or Hugging Face OAuth), else the Gradio session; None without a request."""
    if request is None:
        return None
    user = getattr(request, "username", None)
    if user:
        return f"user:{user}"
    scope = getattr(getattr(request, "request", None), "scope", None) or {}
    info = (scope.get("session") or {}).get("oauth_info") or {}  # present when hf_oauth is on
    name = (info.get("userinfo") or {}).get("preferred_username")
    if name:
        return f"user:{name}"
    session = getattr(request, "session_hash", None)
    return f"session:{session}" if session else None


def workspace_for(root: Path, key: str | None, public: bool, quota_bytes: int) -> Workspace:
    """The shared root locally; on a public studio a private folder named by a hash of the key."""
    if not public:
        return Workspace(root).make()
    if key is None:
        raise WorkspaceError("no visitor session: reload the page")
    folder = root / "workspaces" / hashlib.sha256(key.encode()).hexdigest()[:32]
    workspace = Workspace(folder, quota_bytes).make()
    folder.touch()  # its modification time is the last visit
    return workspace


def sweep(root: Path, idle_s: float, now: float | None = None) -> int:
    """Remove the workspaces not visited for idle_s seconds; returns how many went."""
    now = time.time() if now is None else now
    gone = 0
    for folder in (root / "workspaces").glob("*"):
        if folder.is_dir() and now - folder.stat().st_mtime > idle_s:
            shutil.rmtree(folder, ignore_errors=True)
            gone += 1
    return gone


def offer(paths: list[Path]) -> list[str]:
    """Copies of files for a download, staged in a fresh temporary folder: Gradio serves them from
    its cache, and the data root itself is never served."""
    staging = Path(tempfile.mkdtemp(prefix="raft-offer-"))
    out = []
    for path in paths:
        copy = staging / path.name
        shutil.copyfile(path, copy)
        out.append(str(copy))
    return out
