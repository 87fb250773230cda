"""What a scored file was given travels with a labelling project (issue 21 item 1): `label create
--rubric` for a file whose rows carry none, the rubric that the studio's Batch recorded beside a
result read without it, `label next` that never leaves a header-only CSV; projects and datasets
created whole, with one winner of two creates at once (issue 22 item 10); label values that are
the scale's integers only (issue 22 item 14)."""

import csv
import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from raft.batch import score_file
from raft.cli import main
from raft.data import build_dataset, read_jsonl, write_dataset
from raft.files import DataError, write_rows
from raft.labels import LabelProject
from raft.rubrics import presets
from raft.synthetic import generate_rows

PLAIN = [{"question": f"What is {i} + {i}?", "answer": f"It is {2 * i}.", "score": 1 + i % 5} for i in range(14)]
COLUMNS = {"orig_instruction": "question", "orig_response": "answer", "orig_score": "score"}


@pytest.fixture(scope="module")
def plain_scored(tmp_path_factory, tiny_judge):
    """A question/answer/score CSV scored with the Helpfulness preset for the whole file (not in its rows)."""
    root = tmp_path_factory.mktemp("plain")
    out = root / "scored.jsonl"
    score_file(tiny_judge, write_rows(root / "mine.csv", PLAIN), out, columns=COLUMNS, rubric=presets()["Helpfulness"])
    return out


def test_label_create_with_rubric_then_next_writes_every_row(tmp_path, plain_scored, capsys):
    proj, out = tmp_path / "proj", tmp_path / "next.csv"
    assert main(["label", "create", str(plain_scored), "--project", str(proj)]) == 2  # no rubric: refused, says why
    err = capsys.readouterr().err
    assert "orig_criteria" in err and "--rubric" in err and not proj.exists()
    assert main(["label", "create", str(plain_scored), "--project", str(proj), "--rubric", "Helpfulness"]) == 0
    capsys.readouterr()
    assert main(["label", "next", "--project", str(proj), "--k", "5", "--out", str(out)]) == 0
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and all(r["criteria"] == presets()["Helpfulness"].criteria for r in rows)
    assert LabelProject.open(proj).meta["rubric"]["name"] == "Helpfulness"


def test_label_create_reads_the_rubric_the_studio_recorded_beside_a_batch_result(tmp_path, plain_scored, capsys):
    from raft.batch import meta_path

    result = tmp_path / "result.jsonl"
    result.write_bytes(plain_scored.read_bytes())
    meta = {"file": "mine.csv", "judge": "tiny", "scored": 14, "columns": COLUMNS}
    meta["rubric"] = presets()["Factual accuracy"].to_dict()
    meta_path(result).write_text(json.dumps(meta))
    assert main(["label", "create", str(result), "--project", str(tmp_path / "p")]) == 0
    assert LabelProject.open(tmp_path / "p").meta["rubric"]["name"] == "Factual accuracy"


def test_label_next_on_a_project_that_cannot_show_its_rows_writes_no_file(tmp_path, plain_scored, capsys):
    proj = LabelProject.create(tmp_path / "old", read_jsonl(plain_scored), rubric=presets()["Helpfulness"])
    meta = json.loads((proj.folder / "project.json").read_text())
    meta["rubric"] = None  # as a project made before the rubric travelled
    (proj.folder / "project.json").write_text(json.dumps(meta))
    out = tmp_path / "next.csv"
    assert main(["label", "next", "--project", str(proj.folder), "--out", str(out)]) == 2
    assert "--rubric" in capsys.readouterr().err and not out.exists()


def _create(args):
    folder, rows, barrier = args
    barrier.wait()
    try:
        LabelProject.create(folder, rows)
        return "made"
    except DataError as exc:
        return str(exc)


def _create_in_process(folder, rows, barrier, results):
    results.put(_create((folder, rows, barrier)))


def test_two_creates_of_one_project_at_once_give_one_winner(tmp_path, tiny_judge):
    rows = generate_rows(400, seed=3)
    scored = tmp_path / "scored.jsonl"
    score_file(tiny_judge, write_rows(tmp_path / "rows.jsonl", rows), scored)
    scored_rows = read_jsonl(scored)
    for attempt in range(4):
        ctx = multiprocessing.get_context("fork")
        barrier, results = ctx.Barrier(2), ctx.Queue()
        folder = tmp_path / f"proj-{attempt}"
        procs = [ctx.Process(target=_create_in_process, args=(folder, scored_rows, barrier, results)) for _ in "ab"]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        answers = sorted(results.get(timeout=5) for _ in procs)
        assert answers[1] == "made" and "already exists" in answers[0], answers
        project = LabelProject.open(folder)  # whole: every line of rows.jsonl reads
        assert len(project.rows) == 400 and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _write(folder, source, seed, barrier, results):
    built = build_dataset(source, seed=seed)
    barrier.wait()
    try:
        write_dataset(folder, built, exclusive=True)
        results.put(("made", seed))
    except DataError as exc:
        results.put((str(exc), seed))


def test_two_writes_of_one_dataset_name_at_once_give_one_whole_winner(tmp_path):
    sources = [write_rows(tmp_path / f"s{i}.jsonl", generate_rows(600, seed=10 + i)) for i in range(2)]
    for attempt in range(3):
        ctx = multiprocessing.get_context("fork")
        barrier, results = ctx.Barrier(2), ctx.Queue()
        folder = tmp_path / f"ds-{attempt}"
        procs = [ctx.Process(target=_write, args=(folder, sources[i], i, barrier, results)) for i in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        answers = [results.get(timeout=5) for _ in procs]
        winners = [seed for what, seed in answers if what == "made"]
        assert len(winners) == 1, answers
        assert any("exists already" in what and "choose another name" in what for what, _ in answers)
        train = read_jsonl(folder / "train.jsonl")  # whole and from the winner alone
        expected = build_dataset(sources[winners[0]], seed=winners[0]).train
        assert [r["prompt"] for r in train] == [r["prompt"] for r in expected]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.parametrize("value", [True, False, "1e0", "+3", "\uff13", "3.0", 3.0, 2.5, "", None, "0x3", "٣"])
def test_a_label_value_that_is_not_plain_digits_or_an_integer_is_refused(value):
    from raft.labels import parse_label

    with pytest.raises(DataError, match="not a label"):
        parse_label(value, (1, 5))


@pytest.mark.parametrize("value,expected", [(3, 3), ("3", 3), (" 4 ", 4), (np.int64(5), 5), ("1", 1)])
def test_the_scales_integers_are_labels(value, expected):
    from raft.labels import parse_label

    assert parse_label(value, (1, 5)) == expected
    with pytest.raises(DataError, match="must be an integer from 1 to 5"):
        parse_label(6, (1, 5))


def test_a_project_folder_being_written_is_not_listed(tmp_path):
    from raft.data import list_datasets

    (tmp_path / ".ds.abc.creating").mkdir()
    (tmp_path / ".ds.abc.creating" / "train.jsonl").write_text("")
    assert list_datasets(tmp_path) == []
    assert not Path(tmp_path / "ds").exists()


def test_held_out_rows_of_a_plain_file_are_scored_again_with_its_rubric(tmp_path, plain_scored, tiny_judge):
    from raft.align import compare_judges, rescore_heldout

    project = LabelProject.create(tmp_path / "p", read_jsonl(plain_scored), rubric=presets()["Helpfulness"])
    for key in sorted(project.heldout):
        project.label(key, 3)
    after = rescore_heldout(project, tiny_judge, tmp_path / "after.jsonl")
    assert len(after) == len(project.heldout) and all(r.get("expected_score") is not None for r in after)
    assert all(not r.get("error") for r in after)
    assert compare_judges(project, after)["compare"]["n"] == len(project.heldout)
