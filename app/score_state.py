"""What the Score tab keeps in the browser (a BrowserState, as the Fine-tune form and Align's
choices are kept): the last item scored, its rubric and judge, and its result, so that a reload
shows them again instead of an empty tab.

What comes back from the browser is the visitor's own text: a judge, mode or preset is restored
only if it is still among the choices offered, text only as text (cut to the studio's limits), and
the result only when its numbers have the shape `save` wrote: its words and plot are made again
from them here (the browser's copy is readable and writable by the visitor).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gradio as gr

from app import plots
from app.align_state import kept_choice
from app.finetune_form import browser_secret
from app.studio import MODE_CHOICES, Studio
from raft.judge import Judgment
from raft.limits import LIMITS
from raft.text import md_text

STORAGE_KEY = "raft-score"
TEXTS = ("instruction", "response", "reference", "criteria")


def browser_state(studio: Studio) -> gr.BrowserState:
    """The kept item and result; made outside the tabs, so that it is mounted (and read) as the page loads."""
    return gr.BrowserState(None, storage_key=STORAGE_KEY, secret=browser_secret(studio))


def save(
    model: Any, mode: Any, preset: Any, texts: list[Any], descriptions: list[Any], own: Any, details: Any
) -> dict[str, Any]:
    """What the browser keeps of a finished score: the form as it was scored (`own`: whether the
    rubric was the visitor's choice rather than the judge's proposal) and what it gave."""
    return {
        "model": model,
        "mode": mode,
        "preset": preset,
        **dict(zip(TEXTS, texts)),
        "descriptions": list(descriptions),
        "own": own,
        "details": details,
    }


def _text(value: Any) -> Any:
    return value[: LIMITS.field_chars] if isinstance(value, str) else gr.skip()


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _judgment(d: Any) -> Judgment | None:
    """A kept verdict rebuilt field by field from numbers and text (the flag and feedback are
    escaped where they are shown), or None when it is not what `save` wrote."""
    if not isinstance(d, dict):
        return None
    probs, score, mass = d.get("probs"), _number(d.get("expected_score")), _number(d.get("score_mass"))
    if not (isinstance(probs, list) and 1 < len(probs) <= 11) or score is None or mass is None:
        return None
    numbers = [_number(p) for p in probs]
    interval = d.get("interval")
    bounds = [_number(b) for b in interval] if isinstance(interval, list) and len(interval) == 2 else None
    if None in numbers or not isinstance(d.get("mode_score"), int) or (bounds and None in bounds):
        return None
    feedback, flag = d.get("feedback"), d.get("flag")
    return Judgment(
        expected_score=score,
        mode_score=d["mode_score"],
        probs=numbers,
        score_mass=mass,
        feedback=feedback[: LIMITS.field_chars] if isinstance(feedback, str) else None,
        flag=md_text(flag[:500]) if isinstance(flag, str) else None,
        interval=bounds,
    )


def _verdicts(details: Any) -> list[tuple[str, Judgment]] | None:
    """The judgments of a kept result (one judge, or two compared), or None when any is not valid."""
    if not isinstance(details, dict) or not 1 <= len(details) <= 2:
        return None
    verdicts = [(md_text(str(name)[:200]), _judgment(d)) for name, d in details.items()]
    return None if any(j is None for _, j in verdicts) else verdicts


def restore(
    studio: Studio,
    saved: Any,
    presets: list[str],
    levels: int,
    markdown_of: Callable[[list[tuple[str, Judgment]]], str],
) -> list[Any]:
    """As the page loads: the kept form, result (its words made again by `markdown_of` from the
    kept numbers), plot and details, each only if valid, else left as the page has it; the rubric
    is the visitor's own (no judge's trained rubric replaces it) if it was when scored."""
    kept = saved if isinstance(saved, dict) else {}
    model = kept_choice(kept, "model", studio.model_choices(), gr.skip())
    descriptions = kept.get("descriptions") if isinstance(kept.get("descriptions"), list) else []
    boxes = [_text(d) for d in [*descriptions, *[None] * levels][:levels]]
    form = [model, kept_choice(kept, "mode", MODE_CHOICES, gr.skip()), kept_choice(kept, "preset", presets, gr.skip())]
    form += [_text(kept.get(name)) for name in TEXTS]
    verdicts = _verdicts(kept.get("details"))
    if verdicts is None:
        shown = [gr.skip()] * 3
    else:
        lo, _ = studio.model_scale(model if isinstance(model, str) else None)
        values = list(range(lo, lo + len(verdicts[0][1].probs)))
        details = {name: j.to_dict() for name, j in verdicts}
        shown = [markdown_of(verdicts), plots.score_distribution(verdicts, values), details]
    own = kept.get("own") if isinstance(kept.get("own"), bool) else gr.skip()
    return [*form, *boxes, own, *shown]
