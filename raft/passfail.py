"""Pass/fail gold on a two-level scale: the words a team writes (pass/fail, yes/no, true/false,
JSON booleans) read as the scale's high and low level, so a pass/fail column needs no recoding
to be prepared, reported on or estimated from."""

from __future__ import annotations

from typing import Any

TWO_LEVEL_WORDS = {"pass": True, "fail": False, "yes": True, "no": False, "true": True, "false": False}
"""Gold words a two-level scale reads as its high (True) or low (False) level."""


def word_level(value: Any, scale: tuple[int, int]) -> int | None:
    """The level a pass/fail word (or boolean) stands for on a two-level `scale`; None otherwise."""
    if scale[1] - scale[0] != 1 or not isinstance(value, (str, bool)):
        return None
    word = str(value).strip().lower()
    if word not in TWO_LEVEL_WORDS:
        return None
    return scale[1] if TWO_LEVEL_WORDS[word] else scale[0]


def has_words(rows: list[dict[str, Any]], column: str) -> bool:
    """Whether any row's `column` holds a pass/fail word."""
    return any(word_level(r.get(column), (0, 1)) is not None for r in rows)


def gold_levels(rows: list[dict[str, Any]], column: str, scale: tuple[int, int]) -> list[dict[str, Any]]:
    """The rows with the pass/fail words of `column` replaced by the levels of a two-level `scale`
    (copies; other rows and scales are returned as they are)."""
    if scale[1] - scale[0] != 1 or not has_words(rows, column):
        return rows
    out = []
    for r in rows:
        level = word_level(r.get(column), scale)
        out.append(r if level is None else {**r, column: level})
    return out
