"""Column names people use, recognised: a file with `question, answer, score` is mapped to the
judge fields without typing, and every field that is still missing is named at once."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from raft.scores import check_scale

ALIASES: dict[str, tuple[str, ...]] = {
    "orig_instruction": ("instruction", "question", "prompt", "query", "input", "user_input", "task"),
    "orig_response": ("response", "answer", "completion", "output", "generation", "model_answer", "model_output"),
    "orig_reference_answer": ("reference_answer", "reference", "ideal_answer", "gold_answer", "ground_truth"),
    "orig_criteria": ("criteria", "criterion", "rubric"),
    "orig_score": ("score", "gold", "label", "rating", "grade", "human_score", "gold_score"),
    "orig_feedback": ("feedback", "critique", "rationale", "explanation"),
}
"""Judge field -> column names that mean it, most specific first (compared lowercased, with
spaces and dashes as underscores)."""

PAIR_ALIASES: dict[str, tuple[str, ...]] = {
    "orig_instruction": ALIASES["orig_instruction"],
    "orig_response_A": ("response_a", "answer_a", "completion_a", "output_a", "chosen"),
    "orig_response_B": ("response_b", "answer_b", "completion_b", "output_b", "rejected"),
    "orig_reference_answer": ALIASES["orig_reference_answer"],
    "orig_criteria": ALIASES["orig_criteria"],
    "orig_preference": ("preference", "winner", "preferred", "choice", "label"),
    "orig_feedback": ALIASES["orig_feedback"],
}
"""Pair field -> column names that mean it: chosen/rejected data reads as A/B (A preferred, both
orders are presented in training and scoring), arena data as response_a/response_b and a winner."""
PAIR_FIELDS = tuple(PAIR_ALIASES)

LABELS = {
    "orig_instruction": "question / instruction",
    "orig_response": "answer / response",
    "orig_reference_answer": "reference answer",
    "orig_criteria": "criterion (rubric)",
    "orig_score": "gold score",
    "orig_feedback": "feedback",
    "orig_response_A": "response A",
    "orig_response_B": "response B",
    "orig_preference": "preference for A",
}
"""How a form names each field (description fields read 'description of score k')."""


WORDS = {
    "orig_instruction": "instruction",
    "orig_response": "response",
    "orig_reference_answer": "reference",
    "orig_criteria": "rubric",
    "orig_score": "score",
    "orig_feedback": "feedback",
}
"""A field in one plain word, where a line names several (a mapping, a report's gold column)."""


def word(field: str) -> str:
    """A field in a person's word ('score', 'score 2 description'); any other name as it is."""
    match = re.fullmatch(r"orig_score(-?\d+)_description", str(field))
    return f"score {match.group(1)} description" if match else WORDS.get(str(field), str(field))


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def description_field(k: int) -> str:
    return f"orig_score{k}_description"


def label(field: str) -> str:
    """A field as a person reads it."""
    match = re.fullmatch(r"orig_score(-?\d+)_description", field)
    return f"description of score {match.group(1)}" if match else LABELS.get(field, field)


def _aliases(field: str) -> tuple[str, ...]:
    match = re.fullmatch(r"orig_score(-?\d+)_description", field)
    if match:
        k = match.group(1)
        return (f"score{k}_description", f"score_{k}_description", f"level_{k}", f"level{k}", f"score{k}", f"score_{k}")
    return ALIASES.get(field, ())


def guess_mapping(columns: Iterable[str], scale: tuple[int, int] = (1, 5)) -> dict[str, str]:
    """{field: column} for each field whose own name is absent but a common name for it is present.

    A column is used for one field at most; a column named like a field itself is never taken."""
    lo, hi = check_scale(scale)
    columns = list(columns)
    by_norm: dict[str, str] = {}
    for c in columns:
        by_norm.setdefault(_norm(c), c)
    fields = [*ALIASES, *(description_field(k) for k in range(lo, hi + 1))]
    used: set[str] = set()
    mapping = {}
    for field in fields:
        if field in by_norm:
            continue
        for alias in _aliases(field):
            column = by_norm.get(alias)
            if column is not None and column not in used:
                mapping[field] = column
                used.add(column)
                break
    return mapping


def guess_pair_mapping(columns: Iterable[str]) -> dict[str, str]:
    """{pair field: column} for each pair field whose own name is absent but a common name for it is
    present (compared as `guess_mapping` does; a column is used once)."""
    by_norm: dict[str, str] = {}
    for c in columns:
        by_norm.setdefault(_norm(c), c)
    used: set[str] = set()
    mapping = {}
    for field, aliases in PAIR_ALIASES.items():
        if _norm(field) in by_norm:
            continue
        for alias in aliases:
            column = by_norm.get(alias)
            if column is not None and column not in used:
                mapping[field] = column
                used.add(column)
                break
    return mapping


def is_pairs(columns: Iterable[str]) -> bool:
    """Whether a file's columns hold two responses to compare (its own pair fields, or common names for them)."""
    columns = list(columns)
    found = {*guess_pair_mapping(columns), *(c for c in columns if c in PAIR_FIELDS)}
    return {"orig_response_A", "orig_response_B"} <= found


def required_fields(
    scale: tuple[int, int] = (1, 5), need_score: bool = False, need_feedback: bool = False, need_reference: bool = False
) -> list[str]:
    """The fields every row must have (for training: the gold score too; feedback mode: feedback)."""
    lo, hi = check_scale(scale)
    fields = ["orig_instruction", "orig_response", "orig_criteria", *(description_field(k) for k in range(lo, hi + 1))]
    if need_reference:
        fields.append("orig_reference_answer")
    if need_score:
        fields.append("orig_score")
    if need_feedback:
        fields.append("orig_feedback")
    return fields


def missing_fields(row: dict[str, Any], scale: tuple[int, int] = (1, 5), **need: bool) -> list[str]:
    """The required fields a (mapped) row has no column for: all of them, so a form can name them at once.

    An `output` column in the '<feedback> [RESULT] k' form stands for the score and the feedback."""
    have = set(row)
    if "output" in have:
        have |= {"orig_score", "orig_feedback"}
    return [f for f in required_fields(scale, **need) if f not in have]


def missing_message(missing: list[str], rubric_hint: str = "give a rubric for the whole file") -> str:
    """One sentence naming every missing field and how to supply it."""
    names = ", ".join(f"{label(f)} ({f})" for f in missing)
    rubric_fields = any(f == "orig_criteria" or f.endswith("_description") for f in missing)
    fix = "map a column to each" + (f", or {rubric_hint} (criterion and score descriptions)" if rubric_fields else "")
    return f"no column for {names}: {fix}"
