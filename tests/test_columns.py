"""Common column names are recognised, and every missing field is named at once."""

import pytest

from raft.columns import guess_mapping, missing_fields, missing_message
from raft.data import collect_examples
from raft.files import DataError, write_rows


@pytest.mark.parametrize(
    "columns, expected",
    [
        (
            ["question", "answer", "score"],
            {"orig_instruction": "question", "orig_response": "answer", "orig_score": "score"},
        ),
        (
            ["Prompt", "Completion", "Label"],
            {"orig_instruction": "Prompt", "orig_response": "Completion", "orig_score": "Label"},
        ),
        (
            ["instruction", "output", "rating", "reference"],
            {
                "orig_instruction": "instruction",
                "orig_response": "output",
                "orig_score": "rating",
                "orig_reference_answer": "reference",
            },
        ),
        (["question", "response", "output"], {"orig_instruction": "question", "orig_response": "response"}),
        (
            ["prompt", "answer", "gold", "rubric"],
            {"orig_instruction": "prompt", "orig_response": "answer", "orig_score": "gold", "orig_criteria": "rubric"},
        ),
        (["orig_instruction", "orig_response", "question"], {}),
        (["q", "a"], {}),
        (
            ["input", "response", "score1_description", "Score 2"],
            {
                "orig_instruction": "input",
                "orig_response": "response",
                "orig_score1_description": "score1_description",
                "orig_score2_description": "Score 2",
            },
        ),
    ],
)
def test_common_names_are_recognised(columns, expected):
    assert guess_mapping(columns) == expected


def test_every_missing_field_is_named_at_once():
    missing = missing_fields({"orig_instruction": "q", "orig_response": "a"}, need_score=True)
    assert missing == ["orig_criteria", *(f"orig_score{k}_description" for k in range(1, 6)), "orig_score"]
    text = missing_message(missing)
    assert "criterion (rubric) (orig_criteria)" in text and "description of score 5" in text
    assert "gold score (orig_score)" in text and "rubric for the whole file" in text
    assert (
        missing_fields({"orig_instruction": "q", "orig_response": "a", "output": "x"}, need_score=True)[-1]
        != "orig_score"
    )


def test_a_file_without_the_fields_is_refused_before_any_row_naming_all_of_them(tmp_path):
    path = write_rows(tmp_path / "mine.csv", [{"question": "q", "answer": "a", "score": 3}] * 4)
    with pytest.raises(DataError) as err:
        collect_examples(path, columns={"orig_instruction": "question"})
    message = str(err.value)
    assert message.startswith("mine.csv: no column for")  # the file's name, not a server path
    for field in ("orig_response", "orig_criteria", "orig_score1_description", "orig_score5_description", "orig_score"):
        assert field in message


def test_a_field_missing_from_some_jsonl_rows_only_is_reported_on_those_rows(tmp_path, rows):
    rows[1].pop("orig_criteria")
    examples, rejected, _ = collect_examples(write_rows(tmp_path / "r.jsonl", rows))
    assert [(r["row"], r["field"]) for r in rejected] == [(2, "orig_criteria")]
    assert len(examples) == len(rows) - 1
