"""Which rows a judge was trained on, so that an evaluation can say how many of its rows were
training rows and report the rest on their own (a judge measured on its own training rows looks
better than it is).

A run writes `trained_rows.json` in its folder when training starts: a content hash of each
training example's judged text (instruction, response, reference answer; whitespace at the ends
ignored), never the text itself. A run continued from another run counts that run's rows too.
A scored row matches when the same fields hash the same: the Batch output holds them under these
names whatever the source's columns were called.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TRAINED_ROWS = "trained_rows.json"
FIELDS = ("orig_instruction", "orig_response", "orig_reference_answer")
"""The fields hashed: what the judge reads of a row besides the rubric."""


def row_hash(row: dict[str, Any]) -> str | None:
    """The content hash of a row's judged text; None for a row without instruction and response."""
    values = [str(row.get(f) or "").strip() for f in FIELDS]
    if not values[0] and not values[1]:
        return None
    return hashlib.sha256(json.dumps(values, ensure_ascii=False).encode("utf-8")).hexdigest()[:32]


def write_trained_rows(run_dir: str | Path, items: Iterable[dict[str, Any]], also: Iterable[str] = ()) -> Path:
    """Record the hashes of the items a run trains on (and `also`: a continued run's earlier ones)."""
    hashes = {h for h in (row_hash(i) for i in items) if h} | set(also)
    path = Path(run_dir) / TRAINED_ROWS
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fields": list(FIELDS), "hashes": sorted(hashes)}), encoding="utf-8")
    tmp.replace(path)
    return path


def trained_hashes(run_dir: str | Path | None) -> set[str] | None:
    """The training-row hashes a run recorded; None when it recorded none (a plain model, an old run)."""
    if not run_dir:
        return None
    path = Path(run_dir) / TRAINED_ROWS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    hashes = data.get("hashes") if isinstance(data, dict) else None
    return {str(h) for h in hashes} if isinstance(hashes, list) else None


def training_mask(rows: list[dict[str, Any]], hashes: set[str]) -> list[bool]:
    """For each row, whether it is one of the judge's training rows."""
    return [row_hash(r) in hashes for r in rows]
