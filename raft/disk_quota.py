"""A writer (for `raft.output.writing_through`) that charges writes against disk bounds measured on
disk: what a separate process (a batch job) installs so that the quota its host keeps for the same
folders holds across the process boundary.

Each bound is a byte limit over some folders (a visitor's workspace and staged downloads; all the
visitors' workspaces together). Usage is the folders' size on disk, measured again every few
seconds and whenever a write would not fit (another process may have written or freed meanwhile),
plus the bytes this writer has charged since; each write is flushed at once, so what was charged
is what the next measure finds. A write that would pass a bound raises `QuotaError` before a byte
lands. What was already written stays: an appended file keeps its whole lines (a batch keeps the
rows it scored); a file opened for writing anew (a temporary copy) is removed, and so is an
appended file left empty.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from raft.errors import RaftError

REMEASURE_S = 5.0


class QuotaError(RaftError, ValueError):
    """A write refused because it would pass a disk bound; its message says which and how full."""


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


def mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


@dataclass
class Bound:
    """At most `limit` bytes under `folders` together; `what` names them in a refusal."""

    limit: int
    folders: tuple[Path, ...]
    what: str
    measured: int = 0
    charged: int = 0
    at: float = field(default=-1e18)

    def measure(self) -> None:
        self.measured, self.charged, self.at = sum(folder_bytes(Path(f)) for f in self.folders), 0, time.monotonic()

    def used(self) -> int:
        return self.measured + self.charged


class DiskQuota:
    """Opens files whose writes are charged to every bound first (the `raft.output.Writer` protocol)."""

    def __init__(self, bounds: Iterable[Bound], remeasure_s: float = REMEASURE_S):
        self.bounds, self.remeasure_s = list(bounds), remeasure_s

    def charge(self, path: Path, n: int) -> None:
        """Count `n` bytes about to be written, or raise QuotaError when a bound cannot take them."""
        for bound in self.bounds:
            if time.monotonic() - bound.at > self.remeasure_s or bound.used() + n > bound.limit:
                bound.measure()
            if bound.used() + n > bound.limit:
                raise QuotaError(
                    f"{bound.what} full: {mb(bound.used())} of its {mb(bound.limit)} are in use and the next "
                    f"write needs {n:,} bytes more"
                )
        for bound in self.bounds:
            bound.charged += n

    def open(self, path: Path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None) -> Any:
        return QuotaFile(self, Path(path), mode, encoding, newline)


class QuotaFile:
    """A file whose every write is charged, then written and flushed. A refused write leaves what
    was written before it, except in a file opened anew ("w"), which is removed, as is an empty one."""

    def __init__(self, quota: DiskQuota, path: Path, mode: str, encoding: str | None, newline: str | None):
        self.quota, self.path, self.text = quota, path, "b" not in mode
        path.parent.mkdir(parents=True, exist_ok=True)
        self.anew = mode.startswith(("w", "x"))
        self.file: IO = path.open(mode, encoding=encoding, newline=newline) if self.text else path.open(mode)
        self.encoding = encoding or "utf-8"
        self.refused: QuotaError | None = None

    def write(self, data: Any) -> int:
        if self.refused is not None:  # a writer that goes on after a refusal
            raise QuotaError(str(self.refused))
        n = (len(data) if data.isascii() else len(data.encode(self.encoding))) if self.text else len(data)
        try:
            self.quota.charge(self.path, n)
        except QuotaError as exc:
            self.refused = exc
            self.file.close()
            if self.anew or (self.path.is_file() and not self.path.stat().st_size):
                self.path.unlink(missing_ok=True)
            raise
        written = self.file.write(data)
        self.file.flush()
        return written

    def __getattr__(self, name: str) -> Any:  # fileno, seek, tell, ...
        return getattr(self.file, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.file)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> QuotaFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.file.close()
