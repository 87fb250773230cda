"""Resumable batch scoring of a file: results are appended and flushed as they are made, and a
rerun with the same output skips the rows already there (a torn last line is dropped)."""

from __future__ import annotations

import fcntl
import heapq
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from raft.data import HEAD_ROWS, apply_mapping, check_fields, check_mapping
from raft.files import DataError, Record, read_records
from raft.judge import Judge
from raft.output import open_output
from raft.rubrics import Rubric, with_rubric

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
    mode: str | None = None,
    columns: dict[str, str] | None = None,
    batch_size: int = 8,
    chunk_rows: int = 256,
    progress: Callable[[int], None] | None = None,
    shard: tuple[int, int] = (0, 1),
    also_done: Iterable[int] = (),
    rubric: Rubric | None = None,
    label: str | None = None,
    **score_kwargs: Any,
) -> dict[str, int]:
    """Score every row of input_path into out_path (jsonl), resuming where a previous run stopped.

    The input is streamed in chunks of `chunk_rows` (bucketed by length inside a chunk), and each
    chunk's lines are flushed to disk before the next is read. Each output line holds the row's
    own fields, the judgment fields and `row`. A bad row gets an `error` naming file, row and
    field; the other rows are scored. `shard=(rank, world)` keeps the rows whose number is
    rank modulo world; `also_done` are rows to skip because another file already holds them.
    `progress(rows)` is called after every batch with the rows this run has handled so far.
    Fields no row has come from the whole-file `rubric`; a field that neither a column nor the
    rubric supplies refuses the file before any row is scored (`check_source`). Each output line
    also holds the mapped fields under their own names (`orig_score` for gold, ...).
    Errors name the input by `label` when given, else by its path.
    """
    check_source(input_path, columns or {}, judge.scale, rubric)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with holding(lock_path(out)):  # a second run into the same output waits, then resumes it
        return _score_file(
            judge,
            input_path,
            out,
            mode,
            columns,
            batch_size,
            chunk_rows,
            progress,
            shard,
            also_done,
            rubric,
            score_kwargs,
            label,
        )


@contextmanager
def holding(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` and remove the file on release, so a finished run leaves
    nothing behind. A waiter that wakes holding a file already removed tries again on the new one
    (the lock is the file at `path` now, not an inode that a finished run unlinked)."""
    while True:
        lock = path.open("a")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.fstat(lock.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        lock.close()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _score_file(
    judge: Judge,
    input_path: str | Path,
    out: Path,
    mode: str | None,
    columns: dict[str, str] | None,
    batch_size: int,
    chunk_rows: int,
    progress: Callable[[int], None] | None,
    shard: tuple[int, int],
    also_done: Iterable[int],
    rubric: Rubric | None,
    score_kwargs: dict[str, Any],
    label: str | None = None,
) -> dict[str, int]:
    done = done_rows(out) | set(also_done)
    rank, world = shard
    columns = columns or {}
    summary = {"scored": 0, "skipped": sum(1 for r in done if (r - 1) % world == rank), "errors": 0}
    checked = False

    def pending() -> Iterable[Record]:
        nonlocal checked
        for rec in read_records(input_path, label=label):
            if rec.error is None and not checked:
                check_mapping(columns, rec.data.keys(), label or str(input_path))
                checked = True
            if rec.row not in done and (rec.row - 1) % world == rank:
                yield rec

    with open_output(out, "a") as f:
        for chunk in _chunks(pending(), chunk_rows):
            mapped = {}
            for rec in chunk:
                if rec.error is None:
                    try:
                        mapped[rec.row] = with_rubric(apply_mapping(rec.data, columns), rubric, judge.scale[0])
                    except DataError as exc:
                        rec.error = DataError(exc.reason, label or str(input_path), rec.row, exc.field)
            good = [rec for rec in chunk if rec.error is None]
            write = _Writer(f, summary, columns, label or str(input_path), progress)
            write([rec for rec in chunk if rec.error is not None], {})

            def finished(
                indices: list[int], judged: list[Any], good: list[Record] = good, write: _Writer = write
            ) -> None:
                write([good[i] for i in indices], {good[i].row: judged[i].to_dict() for i in indices})

            judged = judge.score(
                [mapped[rec.row] for rec in good], mode=mode, batch_size=batch_size, on_done=finished, **score_kwargs
            )
            late = [i for i, rec in enumerate(good) if rec.row not in write.written]  # a judge that never said
            if late:
                finished(late, judged)
    _sort_by_row(out)
    return summary


class _Writer:
    """Appends finished rows to the output and flushes them to disk at once, so that a crash or a
    kill loses at most the batch being scored (a rerun resumes row by row)."""

    def __init__(
        self,
        f: Any,
        summary: dict[str, int],
        columns: dict[str, str],
        source: str,
        progress: Callable[[int], None] | None,
    ):
        self.f, self.summary, self.columns, self.source, self.progress = f, summary, columns, source, progress
        self.written: set[int] = set()

    def __call__(self, recs: list[Record], verdicts: dict[int, dict[str, Any]]) -> None:
        if not recs:
            return
        for rec in recs:
            verdict = verdicts.get(rec.row) or {"error": str(rec.error)}
            if verdict.get("error") and rec.error is None:
                verdict["error"] = f"{self.source}: row {rec.row}: {verdict['error']}"
            self.summary["errors"] += bool(verdict.get("error"))
            self.summary["scored"] += 1
            named = {f: rec.data[c] for f, c in self.columns.items() if c in rec.data}
            line = {**rec.data, **named, **verdict, ROW_KEY: rec.row}
            self.f.write(json.dumps(line, ensure_ascii=False) + "\n")
            self.written.add(rec.row)
        self.f.flush()
        os.fsync(self.f.fileno())
        if self.progress:
            self.progress(self.summary["scored"])


def _sort_by_row(out: Path) -> None:
    """Rewrite `out` in input order when it is not (rows are written as each batch finishes, and a
    batch is sorted by length): the finished file reads as one made in one pass, in input order."""
    last = -1
    with out.open("rb") as f:
        for line in f:
            row = int(json.loads(line)[ROW_KEY])
            if row <= last:
                break
            last = row
        else:
            return  # in order already: nothing held, nothing rewritten
    index: list[tuple[int, int, int]] = []
    offset = 0
    with out.open("rb") as f:
        for line in f:
            index.append((int(json.loads(line)[ROW_KEY]), offset, len(line)))
            offset += len(line)
    index.sort()
    tmp = out.with_name(out.name + ".sorting")
    with out.open("rb") as src, open_output(tmp, "wb") as dst:  # charged: for a while the rows are there twice
        for _, start, size in index:
            src.seek(start)
            dst.write(src.read(size))
        dst.flush()
        os.fsync(dst.fileno())
    tmp.replace(out)


def check_source(
    input_path: str | Path, columns: dict[str, str], scale: tuple[int, int], rubric: Rubric | None = None
) -> None:
    """Refuse a file whose columns (mapped, with the rubric) lack a field the judge reads, naming them all."""
    head = [rec.data for rec in itertools.islice(read_records(input_path), HEAD_ROWS) if rec.error is None]
    if head:
        check_mapping(columns, head[0].keys(), Path(input_path).name)
        check_fields(head, columns, scale, rubric, input_path)


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    if path.is_file():
        with path.open(encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)[ROW_KEY], line


def download_rows(rows: list[dict[str, Any]], columns: dict[str, str] | None) -> list[dict[str, Any]]:
    """The scored rows as the visitor's own file again, each column once: the copies of mapped
    columns under the judge's field names (`orig_score` beside `score`), which the output keeps for
    Evaluate and Align, are left out where the row holds the column they copy."""
    copies = {f: c for f, c in (columns or {}).items() if f != c}
    return [{k: v for k, v in r.items() if not (k in copies and copies[k] in r)} for r in rows]


def meta_path(out: Path) -> Path:
    """The description of a finished batch result (file, judge, time, mapping, whole-file rubric)
    beside it, as the studio's Batch writes it; everything derived from the result reads it."""
    return out.with_name(out.stem + ".meta.json")


def lock_path(out: Path) -> Path:
    """The lock file that one scoring run into `out` holds while it writes (a hidden file beside it)."""
    return out.with_name(f".{out.name}.lock")


def shard_path(out: Path, rank: int, world: int) -> Path:
    return out.with_name(f"{out.name}.shard-{rank}-of-{world}")


def merge_shards(out_path: str | Path, world: int) -> int:
    """Merge the shard files (and what `out` already held) into `out` in input order; returns rows."""
    out = Path(out_path)
    shards = [shard_path(out, r, world) for r in range(world)]
    for path in [out, *shards]:
        done_rows(path)  # drop torn last lines
    tmp = out.with_name(out.name + ".merging")
    seen, n = set(), 0
    with open_output(tmp, "w") as f:
        for row, line in heapq.merge(*(_lines(p) for p in [out, *shards]), key=lambda pair: pair[0]):
            if row not in seen:
                seen.add(row)
                f.write(line)
                n += 1
    tmp.replace(out)
    for path in shards:  # every rank has finished: no run holds their locks now
        path.unlink(missing_ok=True)
        lock_path(path).unlink(missing_ok=True)  # a lock left by a run that was killed
    return n
