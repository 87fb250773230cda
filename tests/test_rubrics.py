"""A rubric for the whole file: presets or a file, checked against the scale, filled where rows have none."""

import json

import pytest

from raft.cli import main
from raft.data import build_dataset, read_dataset_manifest
from raft.files import DataError, write_rows
from raft.rubrics import Rubric, load_rubric, presets, with_rubric

PLAIN = [{"question": f"What is {i} + {i}?", "answer": str(2 * i + i % 2), "score": 1 + i % 5} for i in range(12)]


def test_presets_have_a_criterion_and_five_levels():
    named = presets()
    assert {"Helpfulness", "Factual accuracy", "Harmlessness"} <= set(named)
    for rubric in named.values():
        assert rubric.check((1, 5)).criteria and len(rubric.descriptions) == 5


def test_a_rubric_is_checked_against_the_scale_and_for_empty_levels(tmp_path):
    with pytest.raises(DataError, match="5 level descriptions; the scale 1..10 needs 10"):
        load_rubric("Helpfulness", (1, 10))
    with pytest.raises(DataError, match="criterion, score 2 are empty"):
        load_rubric({"criteria": " ", "descriptions": ["a", "", "c"]}, (1, 3))
    with pytest.raises(DataError, match="not a rubric preset"):
        load_rubric("Nope", (1, 5))
    typed = tmp_path / "r.yaml"
    typed.write_text("criteria: Is it correct?\ndescriptions: [wrong, partly, right]\n")
    assert load_rubric(str(typed), (0, 2)).fields(0) == {
        "orig_criteria": "Is it correct?",
        "orig_score0_description": "wrong",
        "orig_score1_description": "partly",
        "orig_score2_description": "right",
    }


def test_a_row_keeps_its_own_rubric_and_gets_the_file_rubric_where_it_has_none():
    rubric = Rubric("C", ("1", "2", "3", "4", "5"))
    row = with_rubric({"orig_criteria": "own", "orig_score1_description": ""}, rubric)
    assert (
        row["orig_criteria"] == "own"
        and row["orig_score1_description"] == "1"
        and row["orig_score5_description"] == "5"
    )


def test_question_answer_score_with_a_preset_builds_and_records_the_rubric(tmp_path):
    path = write_rows(tmp_path / "plain.csv", PLAIN)
    columns = {"orig_instruction": "question", "orig_response": "answer", "orig_score": "score"}
    built = build_dataset(path, columns=columns, rubric=load_rubric("Helpfulness"))
    assert not built.rejected and len(built.train) == len(PLAIN)
    assert presets()["Helpfulness"].criteria in built.train[0]["prompt"]
    assert built.manifest["rubric"]["name"] == "Helpfulness" and built.manifest["columns"] == columns


def test_prepare_recognises_columns_and_takes_a_rubric_preset_or_file(tmp_path, capsys):
    path = write_rows(tmp_path / "plain.csv", PLAIN)
    assert main(["prepare", "--source", str(path), "--out", str(tmp_path / "ds"), "--rubric", "Helpfulness"]) == 0
    assert "columns recognised: orig_instruction=question" in capsys.readouterr().err
    manifest = read_dataset_manifest(tmp_path / "ds")
    assert manifest["rubric"]["name"] == "Helpfulness" and manifest["columns"]["orig_score"] == "score"
    rubric = tmp_path / "mine.json"
    rubric.write_text(
        json.dumps({"criteria": "Is the sum right?", "descriptions": ["no", "far", "near", "close", "yes"]})
    )
    assert main(["prepare", "--source", str(path), "--out", str(tmp_path / "ds2"), "--rubric", str(rubric)]) == 0
    train = (tmp_path / "ds2" / "train.jsonl").read_text()
    assert "Is the sum right?" in train


def test_score_takes_a_rubric_and_refuses_a_file_without_one_before_any_row(tmp_path, tiny_model, capsys):
    path = write_rows(tmp_path / "plain.csv", PLAIN[:3])
    out = tmp_path / "out.jsonl"
    assert main(["score", "--input", str(path), "--out", str(out), "--model", str(tiny_model)]) == 2
    assert "plain.csv: no column for criterion (rubric) (orig_criteria)" in capsys.readouterr().err
    assert not out.exists()
    args = ["score", "--input", str(path), "--out", str(out), "--model", str(tiny_model), "--rubric", "Helpfulness"]
    assert main(args) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3 and all(r["error"] is None for r in lines)
    assert [int(r["orig_score"]) for r in lines] == [r["score"] for r in PLAIN[:3]]  # gold under the mapped name
