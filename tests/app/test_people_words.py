"""Where a person reads a mapping or a report, fields are named in people's words (instruction,
response, reference, rubric, score), never by the judge's field names (orig_instruction, orig_score)."""

import re

from app import batch_tab, evaluate_tab, mapping, own_files
from app.studio import DEFAULT_CHOICE
from raft.files import write_rows
from raft.synthetic import generate_rows

CLI = "orig_instruction=question, orig_response=answer, orig_reference_answer=ideal, orig_criteria=rule, " + (
    "orig_score=grade"
)


def test_the_mapping_line_names_fields_in_people_s_words():
    words = mapping.mapping_words(CLI)
    assert words == (
        "Columns: **question** → instruction, **answer** → response, **ideal** → reference, **rule** → rubric, "
        "**grade** → score"
    )
    assert mapping.mapping_words("orig_response=<b>*x*</b>") == r"Columns: **&lt;b&gt;\*x\*&lt;/b&gt;** → response"
    assert mapping.mapping_words("") == "" and mapping.mapping_words("nonsense") == ""


def test_the_evaluate_card_names_the_gold_column_in_people_s_words(studio, tmp_path):
    rows = [{"question": r["orig_instruction"], "answer": r["orig_response"], "grade": r["orig_score"]}
            for r in generate_rows(12, seed=4)]  # fmt: skip
    path = write_rows(tmp_path / "mine.csv", rows)
    batch_tab.score_batch(
        studio, str(path), "orig_instruction=question,orig_response=answer,orig_score=grade", DEFAULT_CHOICE,
        "score_only", 4, "orig_score", None, "hf", "Helpfulness", progress=lambda *a, **k: None,
    )  # fmt: skip
    [(_, result)] = own_files.batch_results(studio.workspace())
    card = evaluate_tab.evaluate(studio, result, None, None, None, "", "", "", None)[0]
    assert "rows with gold **score** and prediction" in card
    assert not re.search(r"orig_\w+", card), re.findall(r"orig_\w+", card)
