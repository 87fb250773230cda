"""`python -m raft label ...`: create from a scored file, export the next rows, import graders'
labels (a bad row reported, the rest kept), agreement, the dataset, and a second judge compared."""

import csv
import json

import pytest

from raft.batch import score_file
from raft.cli import main
from raft.data import read_jsonl
from raft.files import write_rows
from raft.labels import LabelProject
from raft.synthetic import generate_rows


@pytest.fixture(scope="module")
def scored(tmp_path_factory, tiny_judge):
    root = tmp_path_factory.mktemp("labelcli")
    rows = generate_rows(30, seed=2)
    rows[0]["orig_response"] = '=HYPERLINK("http://x")'  # a formula must reach the CSV as text
    score_file(tiny_judge, write_rows(root / "rows.jsonl", rows), root / "scored.jsonl")
    return root / "scored.jsonl"


def test_the_loop_from_the_command_line(tmp_path, scored, tiny_model, capsys):
    proj = tmp_path / "proj"
    assert main(["label", "create", str(scored), "--project", str(proj), "--judge", str(tiny_model)]) == 0
    assert json.loads(capsys.readouterr().out)["heldout_rows"] == 9
    assert main(["label", "create", str(scored), "--project", str(proj)]) == 2  # held-out rows are fixed once
    assert "already exists" in capsys.readouterr().err

    out = tmp_path / "next.csv"
    assert main(["label", "next", "--project", str(proj), "--k", "30", "--out", str(out)]) == 0
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert "9 held-out, 21 by uncertain" in capsys.readouterr().out
    assert len(rows) == 30 and "judge_expected_score" not in rows[0]  # blind by default
    assert all(not r["response"].startswith("=") for r in rows)
    gold = {r["row"]: r["orig_score"] for r in read_jsonl(scored)}
    for r in rows:
        r["label"] = gold[int(r["key"])]
    rows[3]["label"] = "9"  # off the scale: reported on its row, the others recorded
    rows[4]["label"] = ""  # not labelled yet
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["label", "import", "--project", str(proj), str(out), "--labeller", "ann"]) == 2
    result = json.loads(capsys.readouterr().out)
    assert result["labelled"] == 28 and result["without_label"] == 1
    assert result["errors"] == ["next.csv: row 4: field 'label': score '9' must be an integer from 1 to 5"]

    project = LabelProject.open(proj)
    held = project.counts()["heldout_labelled"]
    assert main(["label", "agreement", "--project", str(proj)]) == 0
    assert f"(n = {held})" in capsys.readouterr().out

    assert main(["label", "dataset", "--project", str(proj), "--out", str(tmp_path / "ds")]) == 0
    written = read_jsonl(tmp_path / "ds" / "train.jsonl")
    assert len(written) == project.counts()["train_labelled"] and not {e["row"] for e in written} & project.heldout

    assert main(["label", "compare", "--project", str(proj), "--model", str(tiny_model), "--device", "cpu"]) == 0
    card = capsys.readouterr().out
    assert "after vs before" in card and "Weighted kappa, after" in card
