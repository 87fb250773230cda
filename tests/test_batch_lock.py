"""A finished `score` leaves no lock or temp file behind, and two runs into one output still
take turns (the second resumes what the first wrote)."""

import json
import threading
from pathlib import Path

from raft.batch import lock_path, score_file
from raft.cli import main
from raft.data import read_jsonl


def test_score_leaves_only_its_output(tmp_path, rows_file, tiny_model, capsys):
    out = tmp_path / "out" / "scored.jsonl"
    args = ["score", "--input", str(rows_file), "--out", str(out), "--model", str(tiny_model), "--device", "cpu"]
    assert main(args) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["scored.jsonl"]
    assert main(args) == 0  # a rerun (nothing left to score) leaves nothing either
    assert sorted(p.name for p in out.parent.iterdir()) == ["scored.jsonl"]
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["skipped"] == 20


def test_two_runs_into_one_output_take_turns_and_leave_no_lock(tmp_path, rows_file, tiny_judge):
    out = tmp_path / "out" / "scored.jsonl"
    summaries = []
    runs = [
        threading.Thread(target=lambda: summaries.append(score_file(tiny_judge, rows_file, out, batch_size=4)))
        for _ in range(3)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join(120)
    assert sorted(s["scored"] for s in summaries) == [0, 0, 20]  # one scored, the others resumed a full file
    assert sorted(r["row"] for r in read_jsonl(out)) == list(range(1, 21))
    assert not lock_path(out).exists()


def test_the_lock_is_exclusive_even_when_its_file_is_removed_between_holders(tmp_path):
    from raft.batch import holding

    path = tmp_path / ".x.lock"
    inside, order = threading.Lock(), []

    def hold(name):
        with holding(path):
            assert inside.acquire(blocking=False), "two holders at once"
            order.append(name)
            threading.Event().wait(0.05)
            inside.release()

    workers = [threading.Thread(target=hold, args=(k,)) for k in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert sorted(order) == list(range(6))
    assert not path.exists() and not list(Path(tmp_path).iterdir())
