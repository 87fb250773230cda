"""Degenerate repetition in generated feedback: a model that was not trained to write feedback
often loops on one sentence. `find_repetition` flags such text so a page can say so.

The measure is rep-n (Welleck et al. 2019, "Neural text degeneration with unlikelihood
training"): the share of word n-grams that repeat an earlier n-gram of the same text. Ordinary
feedback stays well under a third; a sentence repeated ten times is above two thirds.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

WORD = re.compile(r"\w+(?:['’]\w+)?|[^\w\s]")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Repetition:
    """Repetitive text: the share of repeated n-grams, and the unit that repeats most."""

    share: float
    phrase: str
    count: int

    def describe(self) -> str:
        shown = self.phrase if len(self.phrase) <= 80 else self.phrase[:77] + "..."
        return f'"{shown}" {self.count} times ({self.share:.0%} of the text repeats itself)'


def repeated_share(words: list[str], n: int) -> float:
    """rep-n: the share of the n-grams of `words` that occurred earlier in them (0 when too short)."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def _most_repeated(text: str, words: list[str], n: int) -> tuple[str, int, bool]:
    """(unit, count, whether it is a sentence): the sentence of three words or more that occurs
    most often, when one occurs twice or more; else the most frequent word n-gram."""
    sentences = Counter(s.strip() for s in SENTENCE_END.split(text) if len(s.strip().split()) >= 3)
    if sentences:
        sentence, count = sentences.most_common(1)[0]
        if count >= 2:
            return sentence, count, True
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    gram, count = grams.most_common(1)[0]
    return " ".join(gram), count, False


def find_repetition(
    text: str | None, n: int = 4, threshold: float = 0.5, min_words: int = 24, max_sentence_repeats: int = 3
) -> Repetition | None:
    """The repetition in `text`, or None: flagged when at least `threshold` of its word n-grams
    repeat, or when one sentence occurs more than `max_sentence_repeats` times (a loop at the end
    of otherwise ordinary feedback). Texts under `min_words` words are never flagged: too few to tell."""
    words = [w.lower() for w in WORD.findall(text or "")]
    if len(words) < min_words:
        return None
    share = repeated_share(words, n)
    phrase, count, sentence = _most_repeated(text or "", words, n)
    looping = sentence and count > max_sentence_repeats
    if share < threshold and not looping:
        return None
    return Repetition(share=round(share, 3), phrase=phrase, count=count)
