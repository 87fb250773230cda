"""Caps on what one input file may decode to, so a small hostile upload cannot exhaust memory.

Every reader in raft.files applies them: a row whose field is longer than `field_chars`, nested
deeper than `depth` or larger than `row_bytes` is rejected on its row (the others are read); a file
past `rows` rows or `decoded_bytes` of decoded values stops with one error. Parquet is read by
small batches with its text columns kept dictionary-encoded, and each row's decoded size is
computed from the dictionary before any value is expanded: a 1 KB file of 1,024 references to a
1 MiB string costs one copy of the string, not a gigabyte.

Memory budget of one reader: about `batch_rows * row_bytes` (16 MiB) for parquet and CSV/JSONL
rows, plus one parquet dictionary page; a .json document (read whole) is capped at `json_bytes`
(16 MiB on disk, a few times that as Python objects).

What a caller keeps of the rows is another matter: a file of many rows each under every cap can
still decode to a gigabyte. A host that serves requests (the studio) therefore reads within a
per-request budget (`within`): every file read while it is in force counts its decoded bytes and
rows as they stream, all the files of one request together, and the read stops with one error
naming the file and the budget as soon as the sum passes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    """What one input file may hold; the defaults suit judge data (a few thousand characters a field)."""

    field_chars: int = 100_000
    row_bytes: int = 1 << 20
    rows: int = 1_000_000
    decoded_bytes: int = 1 << 30
    depth: int = 32
    json_bytes: int = 16 << 20
    batch_rows: int = 16


LIMITS = Limits()


@dataclass
class Budget:
    """What one request may decode from all the files it reads, and what it has decoded so far."""

    decoded_bytes: int
    rows: int
    used_bytes: int = 0
    used_rows: int = 0
    seen: dict[str, int] = dataclasses.field(default_factory=dict)
    """The furthest row counted of each file: a file read again (columns, then rows) counts once."""

    def spend(self, size: int, name: str, row: int) -> str:
        """Count row `row` of file `name`, of `size` decoded bytes; the reason to stop ('' while within)."""
        if row <= self.seen.get(name, 0):
            return ""
        self.seen[name] = row
        self.used_bytes += size
        self.used_rows += 1
        if self.used_bytes > self.decoded_bytes:
            return (
                f"the rows decode to more than {self.decoded_bytes >> 20:,} MB, this studio's budget for one "
                "request; use a smaller file (fewer rows or shorter texts) or the command line, which has no "
                "such budget"
            )
        if self.used_rows > self.rows:
            return f"more than {self.rows:,} rows, this studio's budget for one request; split the file"
        return ""


_BUDGET: ContextVar[Budget | None] = ContextVar("raft_read_budget", default=None)


@contextmanager
def within(decoded_bytes: int, rows: int = LIMITS.rows) -> Iterator[Budget]:
    """Within this block (in this thread), every file read shares one budget of decoded bytes and rows."""
    with using(Budget(decoded_bytes, rows)) as budget:
        yield budget


@contextmanager
def using(budget: Budget) -> Iterator[Budget]:
    """Put an existing budget in force for this block: a request whose work runs in steps (a
    generator resumed in another thread each time) puts its one budget in force for each step."""
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def current_budget() -> Budget | None:
    """The per-request budget in force, if any."""
    return _BUDGET.get()



def value_size(value: Any, limits: Limits = LIMITS) -> tuple[int, int, int]:
    """(decoded bytes, longest text, nesting depth) of a row value, walked without recursion."""
    total, longest, deepest = 0, 0, 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limits.depth:
            break
        if isinstance(item, (str, bytes)):
            total += len(item)
            longest = max(longest, len(item))
        elif isinstance(item, dict):
            total += 8 * len(item)
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, (list, tuple)):
            total += 8 * len(item)
            stack.extend((v, depth + 1) for v in item)
        else:
            total += 8
    return total, longest, deepest


def row_problem(data: dict[str, Any], limits: Limits = LIMITS) -> tuple[str, str | None, int]:
    """Why a row is too large ('' when it is not), the field at fault, and the row's decoded bytes."""
    size = 0
    for field, value in data.items():
        total, longest, depth = value_size(value, limits)
        size += total + len(str(field))
        if depth > limits.depth:
            return f"nested more than {limits.depth} levels deep", str(field), size
        if longest > limits.field_chars:
            return too_long(longest, limits), str(field), size
    if size > limits.row_bytes:
        return f"the row holds {size:,} bytes; the limit is {limits.row_bytes:,}", None, size
    return "", None, size


def too_long(length: int, limits: Limits = LIMITS) -> str:
    return f"{length:,} characters long; the limit is {limits.field_chars:,} a field"


def arrow_sizes(array: Any) -> Any:
    """Decoded bytes of each element of a pyarrow array (nested and dictionary types included),
    computed from lengths and offsets only: no value is expanded. A numpy int64 array."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    n = len(array)
    if pa.types.is_dictionary(kind):
        per_value = arrow_sizes(array.dictionary)
        indices = array.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        sizes = per_value[indices] if len(per_value) else np.zeros(n, np.int64)
        return np.where(array.is_null().to_numpy(zero_copy_only=False), 0, sizes)
    if pa.types.is_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_string(kind):
        return pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    if pa.types.is_large_binary(kind):
        return pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_map(kind):
        offsets = array.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        child = (
            array.values
            if not pa.types.is_map(kind)
            else pa.StructArray.from_arrays([array.keys, array.items], ["key", "value"])
        )
        child_sizes = np.concatenate([[0], np.cumsum(arrow_sizes(child))])
        return child_sizes[offsets[1:]] - child_sizes[offsets[:-1]] + 8 * (offsets[1:] - offsets[:-1])
    if pa.types.is_struct(kind):
        total = np.zeros(n, np.int64)
        for i in range(kind.num_fields):
            total += arrow_sizes(array.field(i))
        return total
    return np.full(n, 8, np.int64)
