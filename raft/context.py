"""Fitting a prompt into the model's context: an over-long response is cut in the middle.

The cut is made at token boundaries given as character offsets into the original text (a fast
tokenizer's offset mapping), never by decoding token slices: a slice can end inside a multi-byte
character, and its decoded length is then not a position in the text.
"""

from __future__ import annotations

from collections.abc import Sequence

CUT_MARKER = " [...] "


def cut_middle(text: str, offsets: Sequence[tuple[int, int]], keep: int, marker: str = CUT_MARKER) -> str:
    """`text` with only its first keep//2 and last keep - keep//2 tokens, joined by `marker`.

    `offsets[i]` is the (start, end) character span of token i in `text`. Tokens that share a
    character (the bytes of one emoji, say) keep or drop that character whole.
    """
    n = len(offsets)
    if keep >= n:
        return text
    if keep < 0:
        raise ValueError(f"cannot keep {keep} tokens")
    head, tail = keep // 2, keep - keep // 2
    head_end = offsets[head - 1][1] if head else 0
    tail_start = max(offsets[n - tail][0] if tail else len(text), head_end)
    return text[:head_end].rstrip() + marker + text[tail_start:].lstrip()
