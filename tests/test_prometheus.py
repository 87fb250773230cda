"""Rendered Prometheus benchmark files (MT Bench here): sections parsed back into judge fields."""

import json
from pathlib import Path

import pytest

from raft.data import collect_examples, iter_items
from raft.files import DataError, write_rows
from raft.prometheus import from_rendered, is_rendered, mean_gold, parse_rendered

MT_BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "mt_bench_eval.json"


@pytest.fixture(scope="module")
def mt_bench():
    if not MT_BENCH.is_file():
        pytest.skip(f"{MT_BENCH} is not here")
    return json.loads(MT_BENCH.read_text())


def test_all_320_rows_parse_with_their_gold_means(mt_bench, tmp_path):
    assert len(mt_bench) == 320
    path = write_rows(tmp_path / "mt.jsonl", mt_bench)
    items = [(rec, item) for rec, item in iter_items(path)]
    assert len(items) == 320 and all(item is not None for _, item in items), [r.error for r, i in items if not i][:3]
    for (rec, item), raw in zip(items, mt_bench):
        assert item["orig_score"] == pytest.approx(sum(raw["gpt4_score"]) / 3)
        assert item["orig_response"] and item["orig_instruction"] and item["orig_criteria"]
        assert all(item[f"orig_score{k}_description"] for k in range(1, 6))
        assert rec.data["category"] == raw["category"]  # extra columns are kept
    first = from_rendered(mt_bench[0])
    assert first["orig_response"].startswith("Sure, here's a limerick comparing two smartphone models:")
    assert first["orig_reference_answer"].startswith("In this blog, two phones we'll compare,")
    assert first["orig_criteria"].startswith("Does the response properly address the specific request")
    assert first["orig_score5_description"].startswith("The response excellently addresses")
    assert first["orig_score"] == pytest.approx(8 / 3) and first["gpt4_score"] == [3, 2, 3]


def _prompt(**drop):
    parts = {
        "task": "###Task Description:\nGrade it.\n\n",
        "instruction": "###The instruction to evaluate:\nSay hi.\n\n",
        "response": "###Response to evaluate:\nHi!\n\n",
        "reference": "###Reference Answer (Score 5):\nHello!\n\n",
        "rubric": "###Score Rubrics:\n[Is it friendly?]\nScore 1: Rude.\nScore 2: Cold.\nScore 3: Fine.\n"
        "Score 4: Warm.\nScore 5: Delightful,\nand kind.\n\n",
        "cue": "###Feedback: ",
    }
    return "".join(v for k, v in parts.items() if k not in drop)


def test_a_small_prompt_parses_into_every_field():
    fields = parse_rendered(_prompt())
    assert fields == {
        "orig_instruction": "Say hi.",
        "orig_response": "Hi!",
        "orig_reference_answer": "Hello!",
        "orig_criteria": "Is it friendly?",
        "orig_score1_description": "Rude.",
        "orig_score2_description": "Cold.",
        "orig_score3_description": "Fine.",
        "orig_score4_description": "Warm.",
        "orig_score5_description": "Delightful,\nand kind.",
    }
    assert parse_rendered(_prompt(reference=1))["orig_reference_answer"] == ""


@pytest.mark.parametrize(
    "missing, message",
    [
        ("instruction", "###The instruction to evaluate:"),
        ("response", "###Response to evaluate:"),
        ("rubric", "###Score Rubrics:"),
    ],
)
def test_a_missing_section_is_named(missing, message):
    with pytest.raises(DataError, match=f"section '{message}' not found"):
        parse_rendered(_prompt(**{missing: 1}) + ("\n###Response to evaluate:\nx" if missing == "rubric" else ""))


def test_a_rubric_without_score_lines_is_refused():
    text = _prompt().replace("\nScore ", "\nLevel ")
    with pytest.raises(DataError, match="no 'Score k:' lines"):
        parse_rendered(text)


def test_relative_grading_is_refused_clearly(tmp_path):
    pair = "###Response A to evaluate:\nHi!\n###Response B to evaluate:\nYo"
    text = _prompt().replace("###Response to evaluate:\nHi!", pair)
    assert is_rendered({"instruction": text})
    path = write_rows(tmp_path / "rel.jsonl", [{"instruction": text, "gpt4_score": [4, 5, 4]}])
    _, rejected, _ = collect_examples(path)
    assert "relative (A/B) grading" in rejected[0]["reason"] and rejected[0]["field"] == "instruction"


def test_rows_with_their_own_fields_are_not_reparsed(rows):
    assert not is_rendered({**rows[0], "instruction": _prompt()})


@pytest.mark.parametrize(
    "value, expected",
    [([3, 2, 3], 8 / 3), ([5], 5.0), ("4", 4.0), (2, 2.0), (None, None), ("", None), ([], None), ("x", None)],
)
def test_gold_cells(value, expected):
    assert mean_gold(value) == (pytest.approx(expected) if expected is not None else None)


def test_a_rendered_file_is_scored_with_a_row_error_for_a_broken_row(tmp_path, tiny_judge, mt_bench):
    from raft.batch import score_file
    from raft.data import read_jsonl

    broken = {**mt_bench[1], "instruction": mt_bench[1]["instruction"].replace("###Score Rubrics:", "###Rubric:")}
    path = write_rows(tmp_path / "mt.jsonl", [mt_bench[0], broken, mt_bench[2]])
    score_file(tiny_judge, path, tmp_path / "out.jsonl")
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [r["error"] is None for r in out] == [True, False, True]
    assert "row 2" in out[1]["error"] and "###Score Rubrics:" in out[1]["error"]
