"""Score tokens: which vocabulary token carries each score label, found from the tokenizer.

Never hard-coded per model (bug 5 of the research code): the ids are discovered by tokenizing
the score cue followed by each label, and a label that is not one token is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from raft.errors import RaftError
from raft.prompts import PAIR_LABELS, SCORE_CUE


class ScaleError(RaftError, ValueError):
    """A score scale the tokenizer cannot express with one token per label."""


def check_scale(scale: tuple[int, int] | list[int]) -> tuple[int, int]:
    """Validate an inclusive integer scale (lo, hi) with lo < hi."""
    try:
        lo, hi = (int(v) for v in scale)
    except (TypeError, ValueError) as exc:
        raise ScaleError(f"a scale is two integers (lowest, highest), got {scale!r}") from exc
    if lo >= hi:
        raise ScaleError(f"scale lowest {lo} must be below highest {hi}")
    return lo, hi


@dataclass(frozen=True)
class ScoreTokens:
    """The score token ids in scale order, with the exact cue text that must precede them."""

    values: tuple[int, ...]
    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    cue: str
    variant: str  # "bare" (cue ends in a space, digit alone) or "space-prefixed" (" 4" is one token)

    def id_for(self, score: int) -> int:
        return self.ids[self.values.index(int(score))]

    def describe(self) -> str:
        pairs = ", ".join(f"{v}->{i} ({t!r})" for v, i, t in zip(self.values, self.ids, self.tokens))
        return f"score tokens ({self.variant}, cue {self.cue!r}): {pairs}"


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _try_variant(tokenizer: Any, cue: str, label_prefix: str, labels: tuple[str, ...]) -> tuple[list[int], list[str]]:
    base = _encode(tokenizer, cue)
    ids, bad = [], []
    for label in labels:
        full = _encode(tokenizer, cue + label_prefix + label)
        if full[: len(base)] == base and len(full) == len(base) + 1:
            ids.append(full[-1])
        else:
            bad.append(label)
    return ids, bad


def _find_label_tokens(
    tokenizer: Any, labels: tuple[str, ...], values: tuple[int, ...], cue: str
) -> tuple[ScoreTokens | None, list[str]]:
    """One token per label after `cue`, trying the bare label, then a space-prefixed one; else the labels that fail."""
    variants = [(cue, "", "bare"), (cue.rstrip(), cue[len(cue.rstrip()) :], "space-prefixed")]
    failures = {}
    for cue_text, prefix, name in variants:
        if name == "space-prefixed" and not prefix:
            continue
        ids, bad = _try_variant(tokenizer, cue_text, prefix, labels)
        if not bad and len(set(ids)) == len(ids):
            tokens = tuple(tokenizer.convert_ids_to_tokens(ids))
            return ScoreTokens(values, tuple(ids), tokens, cue_text, name), []
        failures[name] = bad or ["(labels share a token)"]
    return None, min(failures.values(), key=len)


def find_score_tokens(tokenizer: Any, scale: tuple[int, int] = (1, 5), cue: str = SCORE_CUE) -> ScoreTokens:
    """Find one token per score label after `cue`, trying a bare digit, then a space-prefixed one."""
    lo, hi = check_scale(scale)
    values = tuple(range(lo, hi + 1))
    found, worst = _find_label_tokens(tokenizer, tuple(str(v) for v in values), values, cue)
    if found is None:
        raise ScaleError(
            f"scale {lo}..{hi}: label(s) {', '.join(worst)} are not single tokens for this tokenizer "
            f"after the cue {cue!r}; choose a scale whose labels are one token each (for example 1..5)"
        )
    return found


PAIR_VALUES = (1, 0)
"""The value of each pairwise verdict token: A (the first response wins) is 1, B is 0, so the
expected value over the verdict tokens is the probability that A wins."""


def find_pair_tokens(tokenizer: Any, cue: str = SCORE_CUE) -> ScoreTokens:
    """The verdict tokens 'A' and 'B' after `cue`, each one token, found as the score digits are."""
    found, worst = _find_label_tokens(tokenizer, PAIR_LABELS, PAIR_VALUES, cue)
    if found is None:
        raise ScaleError(
            f"pairwise verdict label(s) {', '.join(worst)} are not single tokens for this tokenizer "
            f"after the cue {cue!r}"
        )
    return found


_RESULT = re.compile(r"\[RESULT\]\s*\(?\s*([-+]?\d+(?:\.\d+)?)")
_LOOSE = re.compile(r"(?:score(?: is|:)?|\bSCORE\b:?)\s*\(?\s*([-+]?\d+(?:\.\d+)?)\s*(?:/\s*\d+)?", re.IGNORECASE)


def cut_at_cue(tokenizer: Any, ids: list[int], st: ScoreTokens) -> tuple[list[int], list[int], bool]:
    """(prefix, suffix, cue written) of one generated sequence: where the score is read.

    The score distribution is the next-token one after prefix + suffix: the ids up to the end of
    the cue when the model wrote it (suffix empty), else the ids that end before any partial
    marker with the cue appended. Special tokens (end of turn, padding) end the sequence.
    """
    special = set(tokenizer.all_special_ids)
    end = next((k for k, i in enumerate(ids) if i in special), len(ids))
    ids = ids[:end]
    text = tokenizer.decode(ids)
    marker = st.cue.rstrip()
    if marker in text:
        cue_end = text.index(marker) + len(st.cue)
        for k in range(1, len(ids) + 1):
            head = tokenizer.decode(ids[:k])
            if len(head) == cue_end and head.endswith(st.cue):
                return ids[:k], [], True
            if len(head) > cue_end:
                break
        start = text.index(marker)  # keep the tokens that end before the marker begins, on a whole character
        kept = max(
            k
            for k in range(len(ids) + 1)
            if len(head := tokenizer.decode(ids[:k])) <= start and not head.endswith("\ufffd")
        )
        ids = ids[:kept]
        text = tokenizer.decode(ids)
    sep = " " if text and not text[-1].isspace() else ""
    return ids, _encode(tokenizer, sep + st.cue), False


def split_feedback(text: str | None, cue: str = SCORE_CUE) -> str:
    """The feedback a judge wrote: the text before the first score cue, without a 'Feedback:' label.

    The one place feedback is cut, for scoring, self-distillation and display alike. It is cut only
    at the cue: a 'so its score is 4' inside the reasoning stays part of the feedback.
    """
    text = text or ""
    marker = cue.strip()
    if marker in text:
        text = text[: text.index(marker)]
    text = text.strip()
    if text.lower().startswith("feedback:"):
        text = text[len("feedback:") :].strip()
    return text


def parse_result(text: str, scale: tuple[int, int] = (1, 5)) -> tuple[str, float | None]:
    """Split a judge's output into (feedback, score); the score is None when no valid one is found.

    The score is the last '[RESULT] k' (else a trailing 'score: k'; a number outside the scale is no
    score); the feedback is `split_feedback` of the text.
    """
    text = text or ""
    matches = list(_RESULT.finditer(text)) or list(_LOOSE.finditer(text))
    score = None
    if matches:
        value = float(matches[-1].group(1))
        if scale[0] <= value <= scale[1]:
            score = int(value) if value.is_integer() else value
    return split_feedback(text), score
