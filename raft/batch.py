"""Resumable batch scoring of a file: results are appended and flushed as they are made, and a
rerun with the same output skips the rows already there (a torn last line is dropped)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from raft.data import apply_mapping, check_mapping
from raft.files import Record, read_records
from raft.judge import Judge

ROW_KEY = "row"
"""Each output line carries the input row number (1-based) under this key."""


def done_rows(out: Path) -> set[int]:
    """Row numbers already in an output file; a partial last line (a crash mid-write) is cut off."""
    if not out.is_file():
        return set()
    done, good_bytes = set(), 0
    with out.open("rb") as f:
        for line in f:
            try:
                done.add(int(json.loads(line)[ROW_KEY]))
            except (ValueError, KeyError, TypeError):
                break
            good_bytes += len(line)
    if good_bytes != out.stat().st_size:
        with out.open("r+b") as f:
            f.truncate(good_bytes)
    return done


def _chunks(records: Iterable[Record], size: int) -> Iterable[list[Record]]:
    chunk: list[Record] = []
    for rec in records:
        chunk.append(rec)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def score_file(
    judge: Judge,
    input_path: str | Path,
    out_path: str | Path,
    mode: str = "score_only",
    columns: dict[str, str] | None = None,
    batch_size: int = 8,
    chunk_rows: int = 64,
    progress: Callable[[int], None] | None = None,
    **score_kwargs: Any,
) -> dict[str, int]:
    """Score every row of input_path into out_path (jsonl), resuming where a previous run stopped.

    Each output line holds the row's own fields, the judgment fields and `row`. A bad row gets an
    `error` naming file, row and field; the other rows are scored.
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_rows(out)
    columns = columns or {}
    summary = {"scored": 0, "skipped": len(done), "errors": 0}
    checked = False

    def pending() -> Iterable[Record]:
        nonlocal checked
        for rec in read_records(input_path):
            if rec.error is None and not checked:
                check_mapping(columns, rec.data.keys(), str(input_path))
                checked = True
            if rec.row not in done:
                yield rec

    with out.open("a", encoding="utf-8") as f:
        for chunk in _chunks(pending(), chunk_rows):
            good = [rec for rec in chunk if rec.error is None]
            judged = judge.score(
                [apply_mapping(rec.data, columns) for rec in good], mode=mode, batch_size=batch_size, **score_kwargs
            )
            verdicts = {rec.row: j.to_dict() for rec, j in zip(good, judged)}
            for rec in chunk:
                verdict = verdicts.get(rec.row) or {"error": str(rec.error)}
                if verdict.get("error") and rec.error is None:
                    verdict["error"] = f"{input_path}: row {rec.row}: {verdict['error']}"
                summary["errors"] += bool(verdict.get("error"))
                summary["scored"] += 1
                f.write(json.dumps({**rec.data, **verdict, ROW_KEY: rec.row}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
            if progress:
                progress(summary["scored"])
    return summary
