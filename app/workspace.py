"""Visitors' workspaces: on a public studio each visitor's datasets, batch results, reports and
staged downloads live in private folders keyed by the signed-in user or the Gradio session;
locally (one trusted user) the data root itself is the workspace.

Disk is bounded twice: a quota per workspace that counts everything the visitor causes (staged
downloads included) and a total cap for all workspaces together (`Disk`), both checked against
the size about to be written. A workspace's folder is made on its first write, not on a visit,
and when the total is near its cap the workspaces idle the longest go first. Nothing a client
sends becomes a path here: a folder's name is a hash of the server-side key.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SWEEP_EVERY_S = 600.0
STAGING_TTL_S = 300.0
"""Staged download copies older than this are removed (Gradio copied them to its cache long before)."""
MIN_IDLE_S = 600.0
"""A workspace visited within this time is never evicted to make room for another."""


class WorkspaceError(ValueError):
    """A request the visitor's workspace cannot take (quota, disk full, unknown name)."""


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under a folder (0 when it does not exist)."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:  # removed meanwhile
            pass
    return total


class Disk:
    """The studio-wide bound: all workspaces and staged downloads together stay under `total_bytes`."""

    def __init__(self, workspaces: Path, staging: Path, total_bytes: int, min_idle_s: float = MIN_IDLE_S):
        self.workspaces, self.staging = workspaces, staging
        self.total_bytes, self.min_idle_s = total_bytes, min_idle_s
        self.lock = threading.Lock()

    def used(self) -> int:
        return folder_bytes(self.workspaces) + folder_bytes(self.staging)

    def make_room(self, more: int, keep: Path, now: float | None = None) -> int:
        """Evict the workspaces idle the longest until `more` bytes fit; returns how many went.
        Refuses when even that is not enough (the workspace `keep` and recent visitors are spared)."""
        now = time.time() if now is None else now
        used = self.used()
        if used + more <= self.total_bytes:
            return 0
        idle = [f for f in self.workspaces.glob("*") if f.is_dir() and f != keep]
        idle = [f for f in idle if now - f.stat().st_mtime > self.min_idle_s]
        gone = 0
        for folder in sorted(idle, key=lambda f: f.stat().st_mtime):
            used -= folder_bytes(folder) + folder_bytes(self.staging / folder.name)
            remove_workspace(folder, self.staging)
            gone += 1
            if used + more <= self.total_bytes:
                return gone
        raise WorkspaceError(
            f"this studio's disk for visitors is full ({self.total_bytes >> 20} MB for everyone): "
            "try again later, when idle workspaces have been cleared"
        )


@dataclass(frozen=True)
class Workspace:
    """One visitor's folders (or the studio's own, locally)."""

    root: Path
    staging: Path
    quota_bytes: int | None = None
    disk: Disk | None = None

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
        """Everything this visitor holds: their folder and their staged downloads."""
        return folder_bytes(self.root) + folder_bytes(self.staging)

    def reserve(self, more: int) -> Workspace:
        """Check that `more` bytes about to be written fit the quota and the total cap (evicting
        idle workspaces if need be), then make the folders: a workspace exists from its first write."""
        if self.quota_bytes is not None and self.used_bytes() + more > self.quota_bytes:
            raise WorkspaceError(
                f"your workspace is full: this needs {_mb(more)}, {_mb(self.used_bytes())} of your "
                f"{_mb(self.quota_bytes)} are in use; download what you need and come back later "
                "(idle workspaces are cleared)"
            )
        if self.disk is not None:
            with self.disk.lock:
                self.disk.make_room(more, self.root)
                self.make()
        return self.make()

    def offer(self, paths: list[Path], names: list[str] | None = None) -> list[str]:
        """Copies of files for a download, staged in a fresh folder of this visitor's staging area
        (in the temporary folder, so Gradio can serve them whatever the data root is; the data root
        itself is never served). The copies count against the quota. `names` (the server's own,
        descriptive) replace the files' names in the download."""
        clear_staged(self.staging)
        self.reserve(sum(p.stat().st_size for p in paths))
        self.staging.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="offer-", dir=self.staging))
        out = []
        for path, name in zip(paths, names or [p.name for p in paths]):
            copy = folder / Path(name).name  # a name the server chose, never a visitor's path
            shutil.copyfile(path, copy)
            out.append(str(copy))
        return out


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def staging_root(root: Path) -> Path:
    """The staging area of a data root: in the temporary folder, one per data root."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"raft-staging-{digest}"


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


def workspace_for(root: Path, key: str | None, public: bool, quota_bytes: int, disk: Disk | None = None) -> Workspace:
    """The shared root locally; on a public studio a private folder named by a hash of the key.
    Nothing is made on disk here: a visit only refreshes an existing workspace's last-visit time."""
    staging = staging_root(root)
    if not public:
        return Workspace(root, staging / "local").make()
    if key is None:
        raise WorkspaceError("no visitor session: reload the page")
    name = hashlib.sha256(key.encode()).hexdigest()[:32]
    folder = root / "workspaces" / name
    if folder.is_dir():
        folder.touch()  # its modification time is the last visit
    return Workspace(folder, staging / name, quota_bytes, disk)


def clear_staged(staging: Path, now: float | None = None) -> None:
    """Remove the staged copies older than STAGING_TTL_S under a staging area."""
    now = time.time() if now is None else now
    for offered in staging.glob("offer-*"):
        try:
            if now - offered.stat().st_mtime > STAGING_TTL_S:
                shutil.rmtree(offered, ignore_errors=True)
        except OSError:
            pass


def remove_workspace(folder: Path, staging: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(staging / folder.name, ignore_errors=True)


def sweep(root: Path, idle_s: float, now: float | None = None) -> int:
    """Remove the workspaces not visited for idle_s seconds (with their staged downloads) and staged
    copies older than STAGING_TTL_S; returns how many workspaces went."""
    now = time.time() if now is None else now
    staging = staging_root(root)
    gone = 0
    for folder in (root / "workspaces").glob("*"):
        if folder.is_dir() and now - folder.stat().st_mtime > idle_s:
            remove_workspace(folder, staging)
            gone += 1
    for area in staging.glob("*"):
        clear_staged(area, now)
    return gone
