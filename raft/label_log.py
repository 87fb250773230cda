"""A labelling project's labels file: append-only JSON lines (label, skip, undo), each written with
one `write` under an exclusive lock after any torn last line so that concurrent writers lose
nothing, read back passing over torn lines, and folded into the label in force per row."""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Container
from pathlib import Path
from typing import Any

from raft.output import charge

MAX_LABELLER = 100


def labeller_name(labeller: str | None) -> str:
    """A labeller's name as recorded: a string cut to MAX_LABELLER characters."""
    return str(labeller or "")[:MAX_LABELLER]


def entry_id() -> str:
    """A new entry's id."""
    return uuid.uuid4().hex[:12]


def append(path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Append one entry as one write under an exclusive lock, after any torn last line."""
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    charge(path, len(line) + 1)  # the quota is charged before the append
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size:
            with path.open("rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    line = b"\n" + line  # a writer killed mid-line: its fragment stays unreadable
        os.write(fd, line)
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return entry


def read_entries(path: Path) -> list[dict[str, Any]]:
    """Every readable entry in file order (a torn line from a killed writer is passed over)."""
    out = []
    if not path.is_file():
        return out
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and "id" in entry and "kind" in entry:
                out.append(entry)
    return out


def undone(entries: list[dict[str, Any]]) -> set[str]:
    """The ids of the entries an undo retracted."""
    return {e["target"] for e in entries if e.get("kind") == "undo"}


def last_undoable(entries: list[dict[str, Any]], labeller: str) -> dict[str, Any] | None:
    """`labeller`'s last label or skip not yet undone, or None."""
    retracted = undone(entries)
    for entry in reversed(entries):
        if entry.get("kind") in ("label", "skip") and entry["id"] not in retracted:
            if entry.get("labeller", "") == labeller:
                return entry
    return None


def in_force(entries: list[dict[str, Any]], keys: Container[int]) -> tuple[dict[int, dict[str, Any]], set[int]]:
    """(the label in force per row, the rows skipped and not labelled), undos applied, for rows in `keys`."""
    retracted = undone(entries)
    labels: dict[int, dict[str, Any]] = {}
    skipped: set[int] = set()
    for e in entries:
        if e["id"] in retracted or e.get("key") not in keys:
            continue
        if e["kind"] == "label":
            labels[e["key"]] = e
        elif e["kind"] == "skip":
            skipped.add(e["key"])
    return labels, skipped - set(labels)
