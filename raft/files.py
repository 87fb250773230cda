"""Row files for judge data: read local .jsonl/.json/.csv/.parquet files (streamed) and hub datasets; write rows.

Each reader yields `Record`s one at a time, so a large file is never loaded whole (except .json,
which is one document, size-capped). A row that cannot be read (a malformed JSON line, a field
over the caps of raft.limits) is yielded with its error instead of stopping the read: the caller
reports it on that row and goes on.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raft.errors import RaftError
from raft.limits import LIMITS, Limits, arrow_sizes, current_budget, row_problem, too_long
from raft.output import open_output, write_text

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


class DataError(RaftError, ValueError):
    """Bad input, located: file, row (1-based, as a person counts) and field where known."""

    def __init__(self, reason: str, file: str | None = None, row: int | None = None, field: str | None = None):
        self.reason, self.file, self.row, self.field = reason, file, row, field
        where = [
            p for p in (file, f"row {row}" if row is not None else None, f"field '{field}'" if field else None) if p
        ]
        super().__init__(": ".join([*where, reason]))


@dataclass
class Record:
    """One input row: its 1-based number in the source, its fields, or why it could not be read."""

    row: int
    data: dict[str, Any]
    error: DataError | None = None


def undecodable(path: Path, encoding: str = "utf-8") -> DataError | None:
    """None when the whole file decodes; else one error naming the file, byte offset and encoding."""
    import codecs

    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = offset - pending + exc.start
                return DataError(
                    f"not {encoding.upper()} text: byte 0x{exc.object[exc.start]:02x} at byte offset {at} cannot be "
                    f"decoded as {encoding.upper()} (was it saved as Latin-1 or Windows-1252? save it as UTF-8)",
                    str(path),
                )
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return DataError(
            f"not {encoding.upper()} text: the file ends inside a character (byte offset {offset})", str(path)
        )
    return None


def _decoded(reader: Any) -> Any:
    """A reader whose UnicodeDecodeError becomes one DataError line with the byte offset."""

    def read(path: Path, limits: Limits = LIMITS) -> Iterator[Record]:
        try:
            yield from reader(path, limits)
        except UnicodeDecodeError:
            raise undecodable(path) or DataError("not UTF-8 text", str(path)) from None

    return read


def _lines(f: Any, limit: int) -> Iterator[tuple[str, bool]]:
    """The lines of a text file, each cut at `limit` characters: (line, whether it was cut)."""
    while line := f.readline(limit + 1):
        if len(line) <= limit or line.endswith("\n"):
            yield line, False
            continue
        while (rest := f.readline(1 << 16)) and not rest.endswith("\n"):
            pass
        yield line, True


@_decoded
def _jsonl(path: Path, limits: Limits = LIMITS) -> Iterator[Record]:
    with path.open(encoding="utf-8-sig") as f:
        n = 0
        for line, cut in _lines(f, 4 * limits.row_bytes):
            if not line.strip():
                continue
            n += 1
            if cut:
                yield Record(
                    n, {}, DataError(f"the line is longer than {4 * limits.row_bytes:,} characters", str(path), n)
                )
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Record(n, {}, DataError(f"malformed JSON line ({exc.msg})", str(path), n))
                continue
            except RecursionError:
                yield Record(n, {}, DataError(f"nested more than {limits.depth} levels deep", str(path), n))
                continue
            if not isinstance(obj, dict):
                yield Record(n, {}, DataError("line is not a JSON object", str(path), n))
                continue
            yield Record(n, obj)


@_decoded
def _json(path: Path, limits: Limits = LIMITS) -> Iterator[Record]:
    if path.stat().st_size > limits.json_bytes:
        raise DataError(
            f"a .json file is read whole, so it is at most {limits.json_bytes >> 20} MB; save larger data as .jsonl",
            str(path),
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg} at line {exc.lineno})", str(path)) from exc
    except RecursionError:
        raise DataError(f"nested more than {limits.depth} levels deep", str(path)) from None
    if isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError("a .json file holds a list of rows (or one object with one list of rows)", str(path))
        doc = lists[0]
    if not isinstance(doc, list):
        raise DataError("a .json file holds a list of rows", str(path))
    for n, obj in enumerate(doc, 1):
        if isinstance(obj, dict):
            yield Record(n, obj)
        else:
            yield Record(n, {}, DataError("row is not a JSON object", str(path), n))


@_decoded
def _csv(path: Path, limits: Limits = LIMITS) -> Iterator[Record]:
    """CSV as UTF-8, with or without the byte-order mark that Excel writes; a repeated header is refused.

    The csv module stops a field at `field_chars` (never holding more): that row gets the error."""
    csv.field_size_limit(limits.field_chars)
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        try:
            header = reader.fieldnames or []
        except csv.Error:
            raise DataError(f"the header has a field over {limits.field_chars:,} characters", str(path)) from None
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise DataError(f"the header names column(s) {', '.join(map(repr, repeated))} more than once", str(path))
        n = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error:
                n += 1
                yield Record(n, {}, DataError(f"a field is over {limits.field_chars:,} characters", str(path), n))
                continue
            n += 1
            yield Record(n, {k: v for k, v in row.items() if k is not None})


def _parquet(path: Path, limits: Limits = LIMITS) -> Iterator[Record]:
    """Parquet by small batches with every text column kept dictionary-encoded: each row's decoded
    size is computed from the dictionary first, and a row over the caps is never expanded."""
    import pyarrow.parquet as pq

    try:
        schema = pq.ParquetFile(path).schema
        text = [c.path for c in (schema.column(i) for i in range(len(schema))) if c.physical_type == "BYTE_ARRAY"]
        file = pq.ParquetFile(path, read_dictionary=text)
        n = 0
        for batch in file.iter_batches(batch_size=limits.batch_rows):
            sizes = {name: arrow_sizes(batch.column(name)) for name in batch.schema.names}
            for i in range(batch.num_rows):
                n += 1
                over = next((name for name, s in sizes.items() if s[i] > limits.field_chars), None)
                if over is not None:
                    yield Record(n, {}, DataError(too_long(int(sizes[over][i]), limits), str(path), n, over))
                    continue
                if sum(int(s[i]) for s in sizes.values()) > limits.row_bytes:
                    yield Record(n, {}, DataError(f"the row is over {limits.row_bytes:,} bytes", str(path), n))
                    continue
                yield Record(n, batch.slice(i, 1).to_pylist()[0])
    except (OSError, ValueError) as exc:  # pyarrow's ArrowIOError and ArrowInvalid
        if isinstance(exc, DataError):
            raise
        raise DataError(f"not a readable parquet file ({str(exc).splitlines()[0][:200]})", str(path)) from None


def _hub(name: str, split: str) -> Iterator[Record]:
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split, streaming=True)
    except Exception as exc:  # offline, unknown id, gated: all reach the user as one line
        raise DataError(f"could not load hub dataset (split '{split}'): {type(exc).__name__}: {exc}", name) from exc
    for n, obj in enumerate(ds, 1):
        yield Record(n, dict(obj))


def is_hub_id(source: str) -> bool:
    """A 'owner/name' string that is not a local path."""
    s = str(source)
    return not Path(s).exists() and s.count("/") == 1 and not s.endswith(SUFFIXES) and not s.startswith((".", "/"))


def read_records(
    source: str | Path, split: str = "train", limits: Limits = LIMITS, label: str | None = None
) -> Iterator[Record]:
    """Stream the rows of a local file (by suffix) or a hub dataset id, within `limits`: a row over
    a cap comes with its error, a file over the row or decoded-size cap stops with one. Errors name
    the file by `label` when given (the studio names an upload by its name, not its server path)."""
    if label is None:
        yield from _read_records(source, split, limits)
        return
    try:
        for rec in _read_records(source, split, limits):
            if rec.error is not None:
                rec = Record(rec.row, rec.data, DataError(rec.error.reason, label, rec.row, rec.error.field))
            yield rec
    except DataError as exc:
        raise DataError(exc.reason, label, exc.row, exc.field) from None


def _read_records(source: str | Path, split: str, limits: Limits) -> Iterator[Record]:
    if is_hub_id(str(source)):
        records, name = _hub(str(source), split), str(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError("file not found", str(path))
        readers = {".jsonl": _jsonl, ".json": _json, ".csv": _csv, ".parquet": _parquet}
        reader = readers.get(path.suffix.lower())
        if reader is None:
            raise DataError(f"unsupported file type '{path.suffix}'; use one of {', '.join(SUFFIXES)}", str(path))
        records, name = reader(path, limits), str(path)
    empty, decoded = True, 0
    budget = current_budget()
    for rec in records:
        empty = False
        if rec.row > limits.rows:
            raise DataError(f"more than {limits.rows:,} rows; split the file", name)
        if rec.error is None:
            reason, field, size = row_problem(rec.data, limits)
            decoded += size
            if decoded > limits.decoded_bytes:
                raise DataError(f"the rows decode to more than {limits.decoded_bytes >> 20:,} MB; split the file", name)
            over = budget.spend(size, name, rec.row) if budget is not None else ""
            if over:
                raise DataError(over, name)
            if reason:
                rec = Record(rec.row, {}, DataError(reason, name, rec.row, field))
        yield rec
    if empty and not is_hub_id(str(source)):
        raise DataError("the file holds no rows", name)


def peek_columns(source: str | Path, rows: int = 50) -> list[str]:
    """Column names seen in the first rows, in first-seen order (for mapping forms)."""
    seen: dict[str, None] = {}
    first_error = None
    for i, rec in enumerate(read_records(source)):
        if i >= rows:
            break
        seen.update(dict.fromkeys(rec.data))
        first_error = first_error or rec.error
    if not seen and first_error is not None:
        raise first_error
    return list(seen)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet reads as a formula at the start of a cell (OWASP, CSV injection)."""


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, prefixed with ' so it shows as text;
    numbers (and text that is a plain number, such as '-3') are left as they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def safe_header(names: list[Any]) -> dict[Any, str]:
    """Each column name as a spreadsheet may show it in a header row: a name that starts like a
    formula is prefixed with ' (a column name comes from the visitor's file as much as a cell does),
    and a name that then collides with another gets a numbered suffix, so no column is lost."""
    out: dict[Any, str] = {}
    taken: set[str] = set()
    for name in names:
        safe = str(spreadsheet_safe(str(name)))
        base, n = safe, 2
        while safe in taken:
            safe, n = f"{base} ({n})", n + 1
        taken.add(safe)
        out[name] = safe
    return out


def write_csv_download(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Rows as a CSV meant to be opened in a spreadsheet: nested values as JSON, formula cells and
    formula column names neutralised."""
    import pandas as pd

    def cell(value: Any) -> Any:
        return spreadsheet_safe(json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value)

    names = list(dict.fromkeys(k for r in rows for k in r))
    header = safe_header(names)
    frame = pd.DataFrame([{header[k]: cell(v) for k, v in r.items()} for r in rows], columns=list(header.values()))
    with open_output(path, "w", newline="") as f:
        frame.to_csv(f, index=False)
    return Path(path)


def write_rows(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows to a .jsonl/.json/.csv/.parquet file chosen by suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with open_output(path, "w") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif suffix == ".json":
        write_text(path, json.dumps(rows, ensure_ascii=False, indent=1))
    elif suffix == ".csv":
        import pandas as pd

        with open_output(path, "w", newline="") as f:
            pd.DataFrame(rows).to_csv(f, index=False)
    elif suffix == ".parquet":
        import pandas as pd

        with open_output(path, "wb") as f:
            pd.DataFrame(rows).to_parquet(f, index=False)
    else:
        raise DataError(f"unsupported file type '{suffix}'; use one of {', '.join(SUFFIXES)}", str(path))
    return path


def count_rows(source: str | Path) -> int | None:
    """Rows in a local file, counted cheaply (lines, or parquet metadata); None for a hub id."""
    path = Path(source)
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if suffix == ".jsonl":
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())
    return sum(1 for _ in read_records(path))
