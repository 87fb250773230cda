"""Visitors' workspaces, and the one writer through which every byte a visitor causes goes.

On a public studio each visitor's datasets, batch results, Align projects and labels, reports and
staged downloads live in private folders keyed by the signed-in user or the Gradio session;
locally (one trusted user) the data root itself is the workspace.

Disk is bounded twice: a quota per workspace and a total cap for all workspaces together (`Disk`).
Both are charged as bytes are written, not from an estimate beforehand: `Workspace.open` gives a
file whose every write is charged first, and `Workspace.writing()` installs the same writer for the
library's output (`raft.output`). A write that would pass a bound raises `WorkspaceError` before
its bytes land, and the file it was writing is put back as it was (a new file removed, an appended
one cut back), so a refused request leaves nothing half-written and loses nothing that was there.
A batch job writes from a process of its own: it is given the same two bounds and the folders they
count (`job_bounds`), measured there on disk as it writes (`raft.disk_quota`).
Eviction takes only workspaces idle past the stated idle time (`RAFT_WORKSPACE_IDLE_HOURS`), the
same ones the periodic sweep removes: never a workspace in use because another visitor's write did
not fit. A workspace's folder is made on its first write, not on a visit. Nothing a client sends
becomes a path here: a folder's name is a hash of the server-side key.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from raft.disk_quota import folder_bytes
from raft.errors import RaftError
from raft.output import writing_through

SWEEP_EVERY_S = 600.0
STAGING_TTL_S = 300.0
"""Staged download copies older than this are removed (Gradio copied them to its cache long before)."""


class WorkspaceError(RaftError, ValueError):
    """A request the visitor's workspace cannot take (quota, disk full, unknown name)."""


class Disk:
    """The studio-wide bound and the ledger of writes in flight.

    While a workspace has a writer open, its usage is the folder's size when the first writer
    opened plus every byte charged since (a file rewritten meanwhile counts twice: the error is on
    the safe side); when none is open, the folder is measured again. The same holds for the total."""

    def __init__(self, workspaces: Path, staging: Path, total_bytes: int, idle_s: float = 24 * 3600.0):
        self.workspaces, self.staging = workspaces, staging
        self.total_bytes, self.idle_s = total_bytes, idle_s
        self.lock = threading.Lock()
        self._open: dict[Path, int] = {}
        self._usage: dict[Path, int] = {}
        self._total: int | None = None

    def used(self) -> int:
        return folder_bytes(self.workspaces) + folder_bytes(self.staging)

    def begin(self, workspace: Workspace) -> None:
        with self.lock:
            if not self._open.get(workspace.root):
                self._usage[workspace.root] = workspace.used_bytes()
            if not any(self._open.values()):
                self._total = self.used()
            self._open[workspace.root] = self._open.get(workspace.root, 0) + 1

    def end(self, workspace: Workspace) -> None:
        with self.lock:
            self._open[workspace.root] -= 1
            if not self._open[workspace.root]:
                self._open.pop(workspace.root)
                self._usage.pop(workspace.root, None)
            if not self._open:
                self._total = None

    def charge(self, workspace: Workspace, n: int) -> None:
        """Count `n` bytes about to be written into `workspace`, or refuse them (quota, total cap)."""
        with self.lock:
            used = self._usage.get(workspace.root)
            if used is None:  # a write outside a writer's span (should not happen): measure
                used = workspace.used_bytes()
            quota = workspace.quota_bytes
            if quota is not None and used + n > quota:
                raise WorkspaceError(
                    f"your workspace is full: {_mb(used)} of your {_mb(quota)} are in use and this needs more; "
                    "nothing of this request was kept. Download what you need and come back later (workspaces "
                    "idle for a while are cleared)"
                )
            total = self._total if self._total is not None else self.used()
            if total + n > self.total_bytes:
                total -= self._evict_expired(keep=workspace.root)
                self._total = total if self._total is not None else None
            if total + n > self.total_bytes:
                raise WorkspaceError(
                    f"this studio's disk for visitors is full ({self.total_bytes >> 20} MB for everyone): nothing of "
                    "this request was kept; try again later, when idle workspaces have been cleared"
                )
            if workspace.root in self._usage:
                self._usage[workspace.root] += n
            if self._total is not None:
                self._total += n

    def _evict_expired(self, keep: Path, now: float | None = None) -> int:
        """Remove the workspaces idle past the idle time (none with a writer open); bytes freed."""
        now = time.time() if now is None else now
        freed = 0
        for folder in list(self.workspaces.glob("*")):
            try:
                idle = now - folder.stat().st_mtime
            except OSError:
                continue
            if folder.is_dir() and folder != keep and folder not in self._open and idle > self.idle_s:
                freed += folder_bytes(folder) + folder_bytes(self.staging / folder.name)
                remove_workspace(folder, self.staging)
        return freed


class ChargedFile:
    """A file whose writes are charged to a workspace before they happen. A refused write puts the
    file back as it was when opened (removed if it was new) and raises WorkspaceError."""

    def __init__(self, workspace: Workspace, path: Path, mode: str, encoding: str | None, newline: str | None):
        self.workspace, self.path, self.text = workspace, path, "b" not in mode
        path.parent.mkdir(parents=True, exist_ok=True)
        self.was = path.stat().st_size if path.is_file() and not mode.startswith("w") else None
        self.file: IO = path.open(mode, encoding=encoding, newline=newline) if self.text else path.open(mode)
        self.encoding = encoding or "utf-8"
        self.refused: WorkspaceError | None = None

    def write(self, data: Any) -> int:
        if self.refused is not None:  # a writer that goes on after a refusal (a zip's closing record)
            raise WorkspaceError(str(self.refused))
        n = (len(data) if data.isascii() else len(data.encode(self.encoding))) if self.text else len(data)
        try:
            self.workspace.charge(self.path, n)
        except WorkspaceError as exc:
            self.refused = exc
            self.restore()
            raise
        return self.file.write(data)

    def restore(self) -> None:
        """Put the file back as it was when opened."""
        self.file.close()
        if self.was is None:
            self.path.unlink(missing_ok=True)
        else:
            os.truncate(self.path, self.was)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, seek, tell, ...
        return getattr(self.file, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.file)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> ChargedFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.file.close()


@dataclass(frozen=True)
class Workspace:
    """One visitor's folders (or the studio's own, locally), and the writer into them."""

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

    @contextmanager
    def writing(self) -> Iterator[Workspace]:
        """Within this block every write into the workspace (this writer's files and the library's
        output through `raft.output`) is charged as it happens; the folders exist from here."""
        if self.disk is not None:
            self.disk.begin(self)
        try:
            with writing_through(self):
                yield self.make()
        finally:
            if self.disk is not None:
                self.disk.end(self)

    def job_bounds(self) -> list[str]:
        """The `python -m raft score` flags that hold a job writing here (another process) to this
        workspace's quota and the total cap, both measured on disk by the job as it writes."""
        flags = []
        if self.quota_bytes is not None:
            flags += ["--quota-bytes", str(self.quota_bytes), "--quota-folder", str(self.root)]
            flags += ["--quota-folder", str(self.staging)]
        if self.disk is not None:
            flags += ["--disk-bytes", str(self.disk.total_bytes), "--disk-folder", str(self.disk.workspaces)]
            flags += ["--disk-folder", str(self.disk.staging)]
        return flags

    def charge(self, path: Path, n: int) -> None:
        """Charge `n` bytes about to be written (refused past the quota or the total cap)."""
        if self.disk is not None:
            self.disk.charge(self, n)
        elif self.quota_bytes is not None and self.used_bytes() + n > self.quota_bytes:
            raise WorkspaceError(f"your workspace is full ({_mb(self.quota_bytes)})")

    def open(self, path: Path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None) -> Any:
        """A file under the workspace (or its staging area) whose writes are charged first."""
        path = Path(path)
        if not (path.is_relative_to(self.root) or path.is_relative_to(self.staging)):
            raise WorkspaceError("a write outside the visitor's workspace was refused")
        return ChargedFile(self, path, mode, encoding, newline)

    def copy(self, source: Path, path: Path) -> Path:
        """A copy of `source` (a server-side file: an upload) at `path` in the workspace, charged as it
        is written; within `writing()`."""
        with Path(source).open("rb") as src, self.open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return path

    def write_text(self, path: Path, text: str) -> Path:
        with self.writing(), self.open(path) as f:
            f.write(text)
        return path

    def offer(self, paths: list[Path], names: list[str] | None = None) -> list[str]:
        """Copies of files for a download, staged in a fresh folder of this visitor's staging area
        (in the temporary folder, so Gradio can serve them whatever the data root is; the data root
        itself is never served). The copies are charged as they are written. `names` (the server's
        own, descriptive) replace the files' names in the download."""
        clear_staged(self.staging)
        self.staging.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="offer-", dir=self.staging))
        out = []
        try:
            with self.writing():
                for path, name in zip(paths, names or [p.name for p in paths]):
                    copy = folder / Path(name).name  # a name the server chose, never a visitor's path
                    out.append(str(self.copy(path, copy)))
        except WorkspaceError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
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
