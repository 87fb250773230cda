import pytest

from raft.repetition import find_repetition, repeated_share

LOOP = "The response is helpful and accurate. " * 40
GOOD = (
    "The response answers the question directly and names the three causes the reference gives. "
    "It misses the second cause's mechanism, and its closing example about rainfall is not in "
    "the question's scope, so it is helpful but incomplete. Overall it meets most of the rubric "
    "for a four: clear, mostly accurate, with one omission."
)
RUBRIC_LIKE = (
    "Score 1: the answer is wrong. Score 2: the answer is partly wrong. Score 3: the answer is "
    "partly right. Score 4: the answer is right with small gaps. Score 5: the answer is fully right "
    "and well argued, with evidence and a clear conclusion."
)


@pytest.mark.parametrize(
    "text, flagged, phrase, count",
    [
        (LOOP, True, "The response is helpful and accurate.", 40),
        (GOOD, False, None, None),
        (RUBRIC_LIKE, False, None, None),
        ("the the the " * 30, True, "the the the the", 87),
        ("Good answer. Good answer. Good answer.", False, None, None),  # too short to tell
        ("", False, None, None),
        (None, False, None, None),
        (GOOD + " " + "I think it is fine. " * 12, True, "I think it is fine.", 12),
    ],
)
def test_degenerate_repetition_is_flagged_and_ordinary_feedback_is_not(text, flagged, phrase, count):
    found = find_repetition(text)
    assert (found is not None) == flagged
    if flagged:
        assert (found.phrase, found.count) == (phrase, count)
        assert f"{count} times" in found.describe()


@pytest.mark.parametrize(
    "words, n, share",
    [
        ("a b c d".split(), 2, 0.0),
        ("a b a b a b".split(), 2, 0.6),  # ab ba ab ba ab: 3 of 5 seen before
        ("a b".split(), 4, 0.0),
    ],
)
def test_rep_n_by_hand(words, n, share):
    assert repeated_share(words, n) == pytest.approx(share)
