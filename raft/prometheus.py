"""Rendered Prometheus prompts: benchmark files whose `instruction` is the whole absolute-grading
prompt (Feedback-Bench, Vicuna Bench, MT Bench, FLASK, BiGGen-Bench evaluation files).

The sections are parsed back into the judge fields, so such a file is scored (and trained on) with
the judge's own template like any other; the gold is the mean of `gpt4_score` when it is a list.
Only absolute grading is read: a relative (A/B) prompt is refused with that reason.
"""

from __future__ import annotations

import re
from typing import Any

from raft.files import DataError
from raft.metrics import as_number

INSTRUCTION = re.compile(re.escape("###The instruction to evaluate:"))
RESPONSE = re.compile(re.escape("###Response to evaluate:"))
REFERENCE = re.compile(r"###Reference Answer(?: \(Score \d+\))?:")
RUBRIC = re.compile(re.escape("###Score Rubrics:"))
END = re.compile(r"###Feedback:\s*$")
RELATIVE = re.compile(r"###Response [AB] to evaluate:")
GOLD_COLUMNS = ("gpt4_score",)
"""Columns that hold several gold scores (a list) whose mean is the row's gold."""
_SCORE_LINE = re.compile(r"^Score (\d+):\s?(.*)$")


def is_rendered(row: dict[str, Any]) -> bool:
    """A row whose `instruction` is a rendered grading prompt and that has no judge fields of its own."""
    text = row.get("instruction")
    if "orig_instruction" in row or not isinstance(text, str):
        return False
    return bool(INSTRUCTION.search(text) or RESPONSE.search(text) or RELATIVE.search(text))


def _section(text: str, header: re.Pattern, stops: list[re.Pattern]) -> str | None:
    """The text after `header` up to the first of `stops` that follows it; None without the header."""
    head = header.search(text)
    if head is None:
        return None
    ends = [m.start() for stop in stops if (m := stop.search(text, head.end()))]
    return text[head.end() : min(ends, default=len(text))].strip()


def _name(header: re.Pattern) -> str:
    return header.pattern.replace("\\", "")


def parse_rubric(block: str) -> dict[str, str]:
    """'[criterion]' then 'Score k: description' lines (a description may run over several lines)."""
    lines = block.strip().splitlines()
    fields: dict[str, str] = {}
    criterion: list[str] = []
    current: str | None = None
    for line in lines:
        match = _SCORE_LINE.match(line.strip())
        if match:
            current = f"orig_score{int(match.group(1))}_description"
            fields[current] = match.group(2).strip()
        elif current:
            fields[current] = (fields[current] + "\n" + line).strip()
        else:
            criterion.append(line)
    text = "\n".join(criterion).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1].strip()
    if not text:
        raise DataError(f"section '{_name(RUBRIC)}' has no [criterion] line", field="instruction")
    if not fields:
        raise DataError(f"section '{_name(RUBRIC)}' has no 'Score k:' lines", field="instruction")
    return {"orig_criteria": text, **fields}


def parse_rendered(text: str) -> dict[str, str]:
    """The judge fields of one rendered absolute-grading prompt; a missing section is named."""
    if RELATIVE.search(text):
        raise DataError(
            "a relative (A/B) grading prompt: only absolute grading (one response, a 1-5 score) is supported",
            field="instruction",
        )
    stops = [RESPONSE, REFERENCE, RUBRIC, END]
    fields = {
        "orig_instruction": _section(text, INSTRUCTION, stops),
        "orig_response": _section(text, RESPONSE, stops),
        "orig_reference_answer": _section(text, REFERENCE, stops) or "",
    }
    for key, header in (("orig_instruction", INSTRUCTION), ("orig_response", RESPONSE)):
        if fields[key] is None:
            raise DataError(f"section '{_name(header)}' not found", field="instruction")
    rubric = _section(text, RUBRIC, stops)
    if rubric is None:
        raise DataError("section '###Score Rubrics:' not found", field="instruction")
    return {**fields, **parse_rubric(rubric)}


def mean_gold(value: Any) -> float | None:
    """The gold of a cell: a number, or the mean of a list of numbers (several raters); None if absent."""
    if isinstance(value, (list, tuple)):
        numbers = [n for n in map(as_number, value) if n is not None]
        return sum(numbers) / len(numbers) if numbers else None
    return as_number(value)


def from_rendered(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its judge fields parsed from `instruction` and, where absent, `orig_score` from
    the mean of a gold list (the list kept as `rater_scores`); every other column is kept."""
    out = {**row, **parse_rendered(row["instruction"])}
    if out.get("orig_score") in (None, ""):
        for column in GOLD_COLUMNS:
            gold = mean_gold(row.get(column))
            if gold is not None:
                out["orig_score"] = gold
                if isinstance(row[column], (list, tuple)):
                    out["rater_scores"] = list(row[column])
                break
    return out
