"""Cutting an over-long response at token boundaries, by character offsets (multi-byte text included)."""

import pytest

from raft.context import CUT_MARKER, cut_middle


def _words(text):
    """Offsets of whitespace-separated 'tokens', as a tokenizer's offset mapping gives them."""
    spans, start = [], None
    for i, ch in enumerate(text + " "):
        if ch != " " and start is None:
            start = i
        elif ch == " " and start is not None:
            spans.append((start, i))
            start = None
    return spans


@pytest.mark.parametrize(
    "text, keep, expected",
    [
        ("a b c d e f", 4, "a b" + CUT_MARKER + "e f"),
        ("a b c d e f", 3, "a" + CUT_MARKER + "e f"),
        ("a b c d e f", 6, "a b c d e f"),
        ("a b c d e f", 10, "a b c d e f"),
        ("a b c d e f", 1, CUT_MARKER.lstrip() + "f"),
        ("a b c d e f", 0, CUT_MARKER.strip()),
        ("héllo wörld ünï cödé 😀x ☃", 4, "héllo wörld" + CUT_MARKER + "😀x ☃"),
        ("日本 語の 文章 です ね", 2, "日本" + CUT_MARKER + "ね"),
    ],
)
def test_cut_middle_keeps_the_first_and_last_tokens(text, keep, expected):
    assert cut_middle(text, _words(text), keep).strip() == expected.strip()


def test_tokens_that_share_a_character_keep_it_whole():
    text = "ab😀cd"
    # a byte-level tokenizer splits the emoji's four bytes over two tokens that both span it
    offsets = [(0, 1), (1, 2), (2, 3), (2, 3), (3, 4), (4, 5)]
    assert cut_middle(text, offsets, 4) == "ab" + CUT_MARKER + "cd"
    assert cut_middle(text, offsets, 3) == "a" + CUT_MARKER + "cd"
    head_with_half_emoji = cut_middle(text, offsets, 6 - 1)  # head of 2 tokens, tail of 3 (half the emoji)
    assert "😀" in head_with_half_emoji and "\ufffd" not in head_with_half_emoji


def test_a_negative_budget_is_refused():
    with pytest.raises(ValueError):
        cut_middle("a b", [(0, 1), (2, 3)], -1)
