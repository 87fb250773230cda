"""Where the library's output files go: every file the library writes for a caller (datasets,
scored rows, labelling projects and their labels, reports) is opened with `open_output`, and an
append made with `os.write` is announced with `charge` first.

A host that bounds what its users may write (the studio's visitor workspaces) installs its writer
with `writing_through` around a call: each write is then charged to it before it happens, and a
write past a bound raises before a byte lands. Without one, files open as plain files. The writer
lives in a context variable, so a call in one thread never charges another's writer.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any, Protocol


class Writer(Protocol):
    """What a host installs: opens files that charge as they are written, and charges raw appends."""

    def open(self, path: Path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None) -> IO: ...

    def charge(self, path: Path, n: int) -> None: ...


_WRITER: ContextVar[Writer | None] = ContextVar("raft_output_writer", default=None)


@contextmanager
def writing_through(writer: Writer | None) -> Iterator[None]:
    """Within this block, the library's output in this thread goes through `writer`."""
    token = _WRITER.set(writer)
    try:
        yield
    finally:
        _WRITER.reset(token)


def open_output(path: str | Path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None) -> Any:
    """Open an output file (text unless 'b' is in the mode) through the installed writer, if any.
    The parent folder is made."""
    path = Path(path)
    writer = _WRITER.get()
    if writer is not None:
        return writer.open(path, mode, None if "b" in mode else encoding, newline)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "b" in mode:
        return path.open(mode)
    return path.open(mode, encoding=encoding, newline=newline)


def charge(path: str | Path, n: int) -> None:
    """Announce `n` bytes about to be written to `path` by other means (an `os.write` append)."""
    writer = _WRITER.get()
    if writer is not None:
        writer.charge(Path(path), n)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """`Path.write_text` through the installed writer."""
    with open_output(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def copy_file(source: str | Path, path: str | Path) -> Path:
    """A copy of `source` at `path`, written through the installed writer (contents only)."""
    with Path(source).open("rb") as src, open_output(path, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return Path(path)


def copy_tree(source: str | Path, path: str | Path, leave: Callable[[str], bool] = lambda name: False) -> Path:
    """A copy of the files under `source` at `path` (made), written through the installed writer;
    files whose name `leave` accepts stay behind."""
    source, path = Path(source), Path(path)
    path.mkdir(parents=True, exist_ok=False)
    for file in sorted(source.rglob("*")):
        if file.is_file() and not leave(file.name):
            copy_file(file, path / file.relative_to(source))
    return path
