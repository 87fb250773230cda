"""The writer a batch job writes through (raft.disk_quota): each write charged against bounds
measured on disk, so that a workspace's quota holds in a process of its own; a refusal keeps what
was written (a batch keeps its rows), and `python -m raft score` stops with "workspace full"."""

import json

import pytest

from raft.cli import main
from raft.disk_quota import Bound, DiskQuota, QuotaError, folder_bytes
from raft.files import write_rows
from raft.output import open_output, writing_through
from raft.synthetic import generate_rows


def test_appends_stop_at_the_bound_keeping_the_whole_lines_written(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "held.bin").write_bytes(b"h" * 400)
    quota = DiskQuota([Bound(1000, (tmp_path / "ws",), "workspace")])
    out = tmp_path / "ws" / "out.jsonl"
    with pytest.raises(QuotaError, match="workspace full: "), writing_through(quota), open_output(out, "a") as f:
        for i in range(100):
            f.write(f"{i:099d}\n")
    assert out.read_text().splitlines() == [f"{i:099d}" for i in range(6)], "the lines that fit are kept, whole"
    assert folder_bytes(tmp_path / "ws") <= 1000


def test_another_process_writing_the_same_folder_counts_at_the_next_measure(tmp_path):
    (tmp_path / "ws").mkdir()
    quota = DiskQuota([Bound(1000, (tmp_path / "ws",), "workspace")], remeasure_s=0.0)
    with writing_through(quota), open_output(tmp_path / "ws" / "a.txt", "a") as f:
        f.write("x" * 300)
        (tmp_path / "ws" / "other.bin").write_bytes(b"o" * 600)  # the studio, meanwhile
        with pytest.raises(QuotaError):
            f.write("y" * 200)
    assert (tmp_path / "ws" / "a.txt").read_text() == "x" * 300


def test_a_file_written_anew_is_removed_when_refused_and_stays_refused(tmp_path):
    quota = DiskQuota([Bound(100, (tmp_path,), "workspace")])
    with writing_through(quota), open_output(tmp_path / "copy.tmp", "wb") as f:
        f.write(b"a" * 60)
        with pytest.raises(QuotaError):
            f.write(b"b" * 60)
        with pytest.raises(QuotaError):  # a writer that carries on (a zip's closing record) is refused too
            f.write(b"c")
    assert not (tmp_path / "copy.tmp").exists()


def test_score_stops_at_the_quota_with_workspace_full_and_keeps_the_rows_scored(tmp_path, tiny_model, capsys):
    workspace = tmp_path / "ws"
    rows = generate_rows(20, seed=3)
    for row in rows:
        row["orig_response"] = "word " * 400  # about 2 KB a row, again in each scored line
    source = write_rows(workspace / "in.jsonl", rows)
    out, result = workspace / "batch" / "out.jsonl", tmp_path / "result.json"
    quota = folder_bytes(workspace) + 12_000
    args = ["score", "--input", str(source), "--out", str(out), "--model", str(tiny_model), "--device", "cpu"]
    args += ["--batch-size", "2", "--chunk-rows", "4", "--result", str(result)]
    args += ["--quota-bytes", str(quota), "--quota-folder", str(workspace)]
    assert main(args) == 2
    said = capsys.readouterr().err
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert 0 < len(kept) < 20 and all(r.get("expected_score") is not None for r in kept)
    assert folder_bytes(workspace) <= quota
    assert "workspace full: " in said and f"the {len(kept)} rows scored before it filled are kept" in said
    assert json.loads(result.read_text())["status"] == "failed"
    assert "workspace full" in json.loads(result.read_text())["error"]
    args[args.index("--quota-bytes") + 1] = str(10**9)
    assert main(args) == 0  # room again: the same run resumes after the rows kept
    assert sorted(json.loads(line)["row"] for line in out.read_text().splitlines()) == list(range(1, 21))
