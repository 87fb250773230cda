"""Bounded readers: a small hostile file cannot decode into gigabytes, a field over the cap is
rejected on its row (the others are read), deep JSON and oversized files stop with one error."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raft.files import DataError, peek_columns, read_records, write_rows
from raft.limits import Limits
from tests.helpers import parquet_bomb

MIB = 1 << 20


def test_the_parquet_bomb_is_small_on_disk_and_every_row_is_rejected_on_its_row(tmp_path):
    path = parquet_bomb(tmp_path / "bomb.parquet")
    assert path.stat().st_size < 8192
    records = list(read_records(path))
    assert len(records) == 1024 and all(r.error is not None for r in records)
    assert records[7].error.row == 8 and records[7].error.field == "orig_response"
    assert "1,048,576 characters long" in str(records[7].error)


BOMB_MEMORY = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.helpers import parquet_bomb
from raft.files import peek_columns, read_records
path = parquet_bomb(Path({tmp!r}) / "bomb.parquet")
def peak():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) // 1024
before = peak()
try:
    peek_columns(path)
except ValueError:
    pass
sum(1 for _ in read_records(path))
print(peak() - before)
"""


def test_reading_the_bomb_stays_within_the_memory_budget(tmp_path):
    """The peak resident memory of a fresh process grows by less than 64 MiB (1 GiB before the fix)."""
    root = str(Path(__file__).resolve().parents[1])
    code = "import pyarrow, pyarrow.parquet, numpy\n" + BOMB_MEMORY.format(root=root, tmp=str(tmp_path))
    grown = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grown < 64, f"peak memory grew by {grown} MiB"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet", ".json"])
def test_a_field_over_the_cap_is_rejected_on_its_row_and_the_rest_is_read(tmp_path, rows, suffix):
    rows = [dict(r) for r in rows[:5]]
    rows[2]["orig_response"] = "y" * 10 * MIB
    path = write_rows(tmp_path / f"big{suffix}", rows)
    limits = Limits(json_bytes=64 * MIB)
    started = time.time()
    records = list(read_records(path, limits=limits))
    assert time.time() - started < 10
    assert [r.row for r in records] == [1, 2, 3, 4, 5]
    assert records[2].error is not None and records[2].error.row == 3
    assert any(w in str(records[2].error) for w in ("limit is 100,000", "over 100,000", "longer than"))
    assert [r.data["orig_response"] for r in records if r.error is None] == [
        rows[i]["orig_response"] for i in (0, 1, 3, 4)
    ]


def test_json_nested_deeper_than_the_cap_is_rejected_on_its_row(tmp_path):
    deep = "x"
    for _ in range(40):
        deep = [deep]
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps({"a": "fine"}) + "\n" + json.dumps({"a": deep}) + "\n")
    first, second = read_records(path)
    assert first.error is None
    assert second.error and "nested more than 32 levels" in str(second.error) and second.error.field == "a"


def test_json_nested_past_the_parser_stack_is_one_error(tmp_path):
    path = tmp_path / "deeper.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match="nested more than"):
        list(read_records(path))


def test_a_json_document_over_its_cap_asks_for_jsonl(tmp_path, rows):
    path = write_rows(tmp_path / "rows.json", rows)
    with pytest.raises(DataError, match="save larger data as .jsonl"):
        list(read_records(path, limits=Limits(json_bytes=100)))


def test_a_file_over_the_row_or_decoded_size_cap_stops_with_one_error(tmp_path, rows):
    path = write_rows(tmp_path / "rows.jsonl", rows)
    with pytest.raises(DataError, match="more than 5 rows"):
        list(read_records(path, limits=Limits(rows=5)))
    with pytest.raises(DataError, match="decode to more than"):
        list(read_records(path, limits=Limits(decoded_bytes=1000)))


def test_a_jsonl_line_longer_than_the_cap_is_rejected_without_reading_it_whole(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_text('{"a": "' + "z" * 200 + '"}\n{"a": "b"}\n')
    first, second = read_records(path, limits=Limits(row_bytes=10))
    assert first.error and "longer than 40 characters" in str(first.error)
    assert second.data == {"a": "b"}


def test_peek_columns_reads_only_the_first_small_batches_of_a_bomb(tmp_path):
    path = parquet_bomb(tmp_path / "bomb.parquet", rows=100_000, size=MIB)
    started = time.time()
    with pytest.raises(DataError, match="row 1: field 'orig_response': 1,048,576 characters long"):
        peek_columns(path)
    assert time.time() - started < 10


def test_a_request_budget_counts_decoded_bytes_across_files_and_names_the_file(tmp_path):
    """Rows each under every cap, many of them: the per-request budget stops the read with the file
    and the budget named; a file read twice in one request (columns, then rows) counts once."""
    from raft.limits import within
    from tests.helpers import under_cap_bomb

    bomb = under_cap_bomb(tmp_path / "bomb.parquet", rows=200, size=50_000)  # 90 MB decoded, a few KB on disk
    assert bomb.stat().st_size < 20_000
    assert sum(1 for r in read_records(bomb) if r.error is None) == 200, "no cap of a single file stops it"
    with within(16 << 20) as budget, pytest.raises(DataError) as err:
        for _ in read_records(bomb, label="bomb.parquet"):
            pass
    assert "bomb.parquet" in str(err.value) and "budget for one request" in str(err.value)
    assert budget.used_bytes <= (16 << 20) + (1 << 20)
    small = write_rows(tmp_path / "small.jsonl", [{"a": "x" * 1000} for _ in range(100)])
    with within(150_000) as budget:
        peek_columns(small)
        rows = list(read_records(small))
        assert len(rows) == 100 and budget.used_rows == 100, "a re-read counts once"
        with pytest.raises(DataError, match="budget for one request"):
            list(read_records(write_rows(tmp_path / "more.jsonl", [{"a": "y" * 1000} for _ in range(100)])))
