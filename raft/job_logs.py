"""Reading a job's output while it runs: the tail of its log and the rows of its progress file
(a line being written right now is skipped, not an error)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TAIL_BYTES = 64_000


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a text file (read from its last TAIL_BYTES only), or "" if absent."""
    if not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - TAIL_BYTES))
        return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])


def read_progress(path: Path) -> list[dict[str, Any]]:
    """The JSON rows of a progress file written line by line, or [] if absent."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written right now
    return rows
