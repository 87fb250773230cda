"""Folders created whole or not at all: written into a hidden temporary folder beside their place
and renamed into it, so that a reader never sees a half-written dataset or project, a crash leaves
nothing under the name, and of two creates of one name at once exactly one wins while the other
gets a clear refusal (a directory rename never replaces a folder that holds files)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from raft.files import DataError


def publish(tmp: Path, out: Path, taken: str) -> None:
    """Rename the finished folder `tmp` to `out`, which must not exist (an empty folder there, left
    by an old crash, holds nothing and is replaced); DataError(`taken`) when another create won."""
    if out.exists() and not out.is_dir():
        raise DataError(taken)
    try:
        out.rmdir()
    except OSError:
        if out.exists():
            raise DataError(taken) from None
    try:
        os.rename(tmp, out)
    except OSError:  # ENOTEMPTY / EEXIST: the other create renamed first
        raise DataError(taken) from None


@contextmanager
def creating(out: str | Path, taken: str) -> Iterator[Path]:
    """A temporary folder to fill; on a clean exit it becomes `out` (see `publish`), on any error
    it is removed and `out` is left as it was. `taken` is the refusal when `out` exists or another
    create wins the race."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise DataError(taken)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name[:60]}.", suffix=".creating", dir=out.parent))
    try:
        yield tmp
        tmp.chmod(0o755)
        publish(tmp, out, taken)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
