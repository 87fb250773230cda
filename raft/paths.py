"""User-supplied names inside the data root: they never escape it."""

from __future__ import annotations

import re
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def is_name(value: object) -> bool:
    """A plain name: letters, digits, '.', '_', '-' (at most 100), never a path or '..'."""
    return isinstance(value, str) and bool(_NAME.match(value.strip())) and ".." not in value


def safe_child(root: str | Path, name: str) -> Path:
    """root/name for a plain name (letters, digits, '.', '_', '-'); anything else is refused."""
    name = (name or "").strip()
    if not _NAME.match(name) or ".." in name:
        raise ValueError(f"'{name}' is not a valid name: use letters, digits, '.', '_' and '-' (at most 100)")
    root = Path(root).resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise ValueError(f"'{name}' escapes {root}")
    return path
