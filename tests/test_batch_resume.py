"""A batch resumes row by row: every finished batch is on disk before the next one runs, so a crash
inside a chunk keeps what was scored (before, a chunk was written only when all of it was done)."""

import json

import pytest

from raft.batch import score_file
from raft.data import read_jsonl
from raft.files import write_rows
from raft.synthetic import generate_rows


class Crash(RuntimeError):
    pass


def test_a_crash_inside_the_first_chunk_keeps_the_batches_already_scored(tiny_judge, tmp_path):
    inp = write_rows(tmp_path / "rows.jsonl", generate_rows(12, seed=3))
    out = tmp_path / "out.jsonl"
    calls = []

    def crash_after_two_batches(rows):
        calls.append(rows)
        if len(calls) == 2:
            raise Crash("killed")

    with pytest.raises(Crash):
        score_file(tiny_judge, inp, out, batch_size=4, chunk_rows=32, progress=crash_after_two_batches)
    kept = read_jsonl(out)
    assert len(kept) == 8  # two batches of four, though the 32-row chunk never finished
    assert all(r["expected_score"] is not None for r in kept)

    summary = score_file(tiny_judge, inp, out, batch_size=4, chunk_rows=32)
    assert summary == {"scored": 4, "skipped": 8, "errors": 0}
    rows = read_jsonl(out)
    assert [r["row"] for r in rows] == list(range(1, 13))  # the finished file is in input order

    fresh = tmp_path / "fresh.jsonl"
    score_file(tiny_judge, inp, fresh, batch_size=4, chunk_rows=32)
    for a, b in zip(rows, read_jsonl(fresh)):
        assert a["expected_score"] == pytest.approx(b["expected_score"], abs=1e-5)


def test_rows_written_as_batches_finish_are_sorted_once_the_file_is_done(tiny_judge, tmp_path):
    rows = generate_rows(10, seed=4)
    rows[0]["orig_response"] = "a much longer answer " * 30  # sorted last by length inside the chunk
    inp = write_rows(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "out.jsonl"
    score_file(tiny_judge, inp, out, batch_size=3, chunk_rows=64)
    assert [json.loads(line)["row"] for line in out.read_text().splitlines()] == list(range(1, 11))
