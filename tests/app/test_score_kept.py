"""The Score tab's kept copy (app.score_state): a reload gives back the last item, rubric, judge and
result (a newcomer's reload emptied the tab); what the browser sends back is the visitor's own text,
so only valid values come back and the result's words are made again from its numbers."""

import gradio as gr
import pytest

from app import score_state, score_tab
from app.studio import DEFAULT_CHOICE
from raft.rubrics import presets as rubric_presets

PRESETS = [*rubric_presets(), score_tab.CUSTOM]


def no_progress(*args, **kwargs):
    return None


def _restore(studio, saved):
    return score_state.restore(studio, saved, PRESETS, score_tab.MAX_LEVELS, score_tab.verdicts_markdown)


def test_a_scored_item_comes_back_with_its_result(studio):
    example = score_tab.random_example(seed=1)
    item = (studio, DEFAULT_CHOICE, "score_only", *example)
    markdown, figure, details = score_tab.score_item(*item, progress=no_progress)
    kept = score_tab.keep(DEFAULT_CHOICE, "score_only", score_tab.CUSTOM, *example, True, details)
    restored = _restore(studio, kept)
    form, boxes = restored[:7], restored[7 : 7 + score_tab.MAX_LEVELS]
    own, result, plot, shown = restored[7 + score_tab.MAX_LEVELS :]
    assert form == [DEFAULT_CHOICE, "score_only", score_tab.CUSTOM, *example[:4]]
    assert boxes == example[4:] and own is True
    assert result == markdown  # the same words, made again from the kept numbers
    assert shown == details and list(plot.data[0].y) == list(figure.data[0].y)


def test_nothing_kept_changes_nothing(studio):
    assert all(v == gr.skip() for v in _restore(studio, None))


def test_a_rubric_the_judge_proposed_stays_a_proposal_after_a_reload(studio):
    """Kept as not the visitor's own, so choosing another fine-tuned judge still proposes its rubric."""
    example = score_tab.random_example(seed=1)
    restored = _restore(studio, score_tab.keep(DEFAULT_CHOICE, "score_only", "Helpfulness", *example, False, None))
    assert restored[2] == "Helpfulness" and restored[7 + score_tab.MAX_LEVELS] is False


@pytest.mark.parametrize(
    "change",
    [
        {"details": {"<img src=x onerror=alert(1)>": {"probs": [0.2] * 5, "expected_score": 3.0}}},
        {"details": {"j": {"probs": ["1"] * 5, "expected_score": 3.0, "score_mass": 0.5, "mode_score": 3}}},
        {"details": {"j": {"probs": [0.2] * 5, "expected_score": float("nan"), "score_mass": 0.5, "mode_score": 3}}},
        {"details": {"j": {"probs": [0.2] * 500, "expected_score": 3.0, "score_mass": 0.5, "mode_score": 3}}},
        {"details": {f"j{k}": {} for k in range(3)}},
        {"details": "<b>x</b>"},
    ],
)
def test_a_forged_result_is_not_shown(studio, change):
    restored = _restore(studio, {"instruction": "q", **change})
    assert restored[3] == "q" and all(v == gr.skip() for v in restored[-3:])


def test_kept_values_are_restored_only_when_valid_and_text_is_escaped(studio):
    judgment = {"probs": [0.2] * 5, "expected_score": 3.0, "score_mass": 0.9, "mode_score": 3}
    judgment.update(feedback="<script>alert(1)</script>", flag="<img src=x>")
    saved = {
        "model": "/etc/passwd",
        "mode": "evil",
        "preset": "<b>",
        "instruction": ["not", "text"],
        "response": "r" * 10**6,
        "descriptions": "junk",
        "details": {"<b>judge</b>": judgment},
    }
    restored = _restore(studio, saved)
    assert restored[:4] == [gr.skip()] * 4 and len(restored[4]) == 100_000
    assert restored[7 : 7 + score_tab.MAX_LEVELS] == [gr.skip()] * score_tab.MAX_LEVELS
    result = restored[-3]
    assert "<script>" not in result and "<img" not in result and "<b>" not in result
    assert "expected score **3**" in result
