"""Score tab: one item, a rubric editor with presets, one or two judges, the score distribution."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from app import judge_rubric, pair_view, plots, score_state
from app.studio import (
    DEFAULT_CHOICE,
    ENGINE_CHOICES,
    MODE_CHOICES,
    MODE_INFO,
    SEVERAL_ENGINES,
    Studio,
    bind,
    gpu,
    model_dropdown,
)
from raft.calibration import Calibration
from raft.judge import LOW_MASS, Judge
from raft.limits import LIMITS, too_long
from raft.prompts import rubric_item
from raft.repetition import find_repetition
from raft.rubrics import presets as rubric_presets
from raft.streaming import Cancelled, follow
from raft.synthetic import generate_rows
from raft.text import md_text

MAX_LEVELS = 10
"""Description boxes in the rubric editor; a judge's scale shows as many as it has levels."""


def _padded(descriptions: list[str]) -> list[str]:
    return [*descriptions, *[""] * (MAX_LEVELS - len(descriptions))][:MAX_LEVELS]


GLOSSARY = (
    "<small>**Expected score** (RAIL): the scores weighted by the probability the judge gives each score token, "
    "read in one forward pass. **Most likely**: the score with the highest probability. **Score-token mass**: the "
    "share of the next-token probability on the score tokens; a low mass means the model did not expect to write "
    "a score here.</small>"
)
CUSTOM = "(custom: typed, or the example's own)"
"""The preset dropdown's value once the criterion is typed or comes from a random example."""


def preset_fields(name: str) -> list[Any]:
    """A preset's criterion and descriptions (scores 1..5), padded to MAX_LEVELS boxes; a custom
    rubric leaves the boxes as they are."""
    if name not in rubric_presets():
        return [gr.skip()] * (1 + MAX_LEVELS)
    preset = rubric_presets()[name]
    return [preset.criteria, *_padded(list(preset.descriptions))]


def random_example(seed: float | None = None) -> list[str]:
    """A synthetic item: instruction, response, reference, criteria and the descriptions (1..5)."""
    row = generate_rows(1, seed=int(seed if seed is not None else random.randrange(10**6)))[0]
    return [
        row["orig_instruction"],
        row["orig_response"],
        row["orig_reference_answer"],
        row["orig_criteria"],
        *_padded([row[f"orig_score{k}_description"] for k in range(1, 6)]),
    ]


def rubric_boxes(studio: Studio, choice: str | None) -> list[Any]:
    """The judge's mode, then one update per description box: labelled by score, shown for its scale."""
    lo, hi = studio.model_scale(choice)
    boxes = [gr.Textbox(label=f"Score {lo + i}", visible=lo + i <= hi) for i in range(MAX_LEVELS)]
    return [studio.model_mode(choice), *boxes]


def trained_rubric(studio: Studio, choice: str | None, own: bool = False) -> list[Any]:
    """A fine-tuned judge chosen: the rubric it was trained with, in the preset and boxes, unless the
    visitor chose or typed one (`own`) (app.judge_rubric)."""
    return judge_rubric.for_score(studio, choice, CUSTOM, MAX_LEVELS, bool(own))


def _verdict_markdown(name: str, j: Any, coverage: float | None = None) -> str:
    lines = [
        f"**{name}**: expected score **{j.expected_score:.3g}**, most likely **{j.mode_score}**, "
        f"score-token mass {j.score_mass:.3g}"
    ]
    if j.flag:
        lines.append(f"⚠️ {j.flag}")
    if j.interval:
        share = f"{coverage:.0%} " if coverage is not None else ""
        lines.append(f"{share}interval (calibrated): **[{j.interval[0]:.3g}, {j.interval[1]:.3g}]**")
    if j.score_mass < LOW_MASS:
        lines.append(
            f"⚠️ Only {j.score_mass:.0%} of the probability is on the score tokens: the model does not "
            "expect to write a score here; check the template or the model."
        )
    repeated = find_repetition(j.feedback)
    if repeated:
        lines.append(
            f"⚠️ The feedback repeats itself: {md_text(repeated.describe())}. The model has degenerated; the score "
            "read after it is unreliable. A judge fine-tuned for feedback (loss cot_raft) avoids this; a "
            "lower max new tokens cuts it short."
        )
    if j.feedback:  # the model's text, often the row's own words: shown as text, its lines kept
        lines.append("> " + md_text(j.feedback, newline="<br>"))
    return "\n\n".join(lines)


def feedback_note(studio: Studio, choice: str | None, mode: str) -> str:
    """In feedback mode, a warning when the judge was not fine-tuned to write feedback (an untrained
    model, or one trained for the score alone): its feedback is then often generic or looping."""
    if mode != "feedback":
        return ""
    name = (choice or "").strip() or DEFAULT_CHOICE
    if studio.model_mode(choice) == "feedback":
        return ""
    loss = studio.model_loss(choice)
    why = (
        f"was fine-tuned to give the score alone (loss {loss})"
        if loss
        else "is not fine-tuned as a judge (an untrained model)"
    )
    return (
        f"⚠️ **{name}** {why}: the feedback it writes is not what it learned, and often generic or "
        "repeated, and the score read after it is less reliable than in score-only mode. For feedback, "
        "fine-tune a judge on a feedback dataset with the loss cot_raft."
    )


def judge_item(
    studio: Studio,
    model: str,
    mode: str,
    instruction: str,
    response: str,
    reference: str,
    criteria: str,
    d1: str,
    d2: str,
    d3: str,
    d4: str,
    d5: str,
    d6: str = "",
    d7: str = "",
    d8: str = "",
    d9: str = "",
    d10: str = "",
    compare: bool = False,
    model_b: str | None = None,
    calibration_file: str | None = None,
    engine: str = "hf",
    max_new_tokens: int = 256,
    progress: gr.Progress = gr.Progress(),
    on_text: Callable[[str, str], None] | None = None,
    cancelled: threading.Event | None = None,
) -> tuple[str, Any, dict]:
    """Score one item with one judge (or two, to compare); returns markdown, figure and details.

    Each judge reads the rubric on its own scale (the first boxes, numbered from its lowest score).
    With a calibration file, the first judge's distribution is tempered and an interval shown.
    While feedback is generated, `on_text(judge name, text so far)` follows it token by token, and
    a set `cancelled` event ends the generation at its next token (`Cancelled` is raised)."""
    descriptions = [d1, d2, d3, d4, d5, d6, d7, d8, d9, d10]
    _check_lengths(
        {"instruction": instruction, "response": response, "reference": reference, "criterion": criteria}, descriptions
    )
    names = [model or DEFAULT_CHOICE] + ([model_b or DEFAULT_CHOICE] if compare else [])
    cal = studio.calibration(calibration_file)
    verdicts, coverages = [], []
    for k, name in enumerate(names):
        progress(k / len(names), desc=studio.loading_note(name, engine) or f"{name} is loaded")
        judge = _ready_judge(studio, name, engine, cal if k == 0 else None)
        progress((k + 0.5) / len(names), desc=f"scoring with {name}")
        lo, hi = judge.scale
        item = rubric_item(criteria, descriptions[: hi - lo + 1], instruction, response, reference, low=lo)
        follow = _follower(judge, name, on_text, cancelled) if on_text or cancelled else None
        [j] = judge.score([item], mode=mode, max_new_tokens=int(max_new_tokens), on_tokens=follow)
        if j.error:
            raise gr.Error(f"{name}: {j.error}")
        verdicts.append((name, j))
        coverages.append(judge.calibration.coverage if judge.calibration else None)  # a file's, or the judge's own
    values = list(range(judge.scale[0], judge.scale[1] + 1))
    details = {name: j.to_dict() for name, j in verdicts}
    markdown = "\n\n---\n\n".join(_verdict_markdown(n, j, c) for (n, j), c in zip(verdicts, coverages))
    return markdown, plots.score_distribution(verdicts, values), details


def _check_lengths(fields: dict[str, str], descriptions: list[str]) -> None:
    """Refuse a field or score description longer than one field may be (`LIMITS.field_chars`), naming it."""
    for field, text in [*fields.items(), *((f"score {k} description", d) for k, d in enumerate(descriptions, 1))]:
        if len(text or "") > LIMITS.field_chars:
            raise gr.Error(f"the {field} is {too_long(len(text), LIMITS)}")


def _ready_judge(studio: Studio, name: str, engine: str, cal: Calibration | None) -> Judge:
    """The judge `name` on `engine` for one item, refused if it compares pairs (they go to the pair
    section), tempered by the calibration when one is given."""
    judge = studio.judge(name, engine)
    if judge.pairwise:
        raise gr.Error(f"{name} compares two answers: give it a pair in '{pair_view.SCORE_TITLE}' below")
    if cal is not None:
        try:
            judge = judge.with_calibration(cal)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
    return judge


score_item = gpu(duration=lambda *args, **kwargs: 120 if kwargs.get("compare") else 60)(judge_item)


def _follower(
    judge: Any, name: str, on_text: Callable[[str, str], None] | None, cancelled: threading.Event | None
) -> Callable[[int, list[int]], None]:
    """on_tokens for one item: the first sample's text so far to `on_text`; `Cancelled` once asked."""
    ids: list[int] = []

    def on_tokens(row: int, new: list[int]) -> None:
        if cancelled is not None and cancelled.is_set():
            raise Cancelled
        if row == 0 and on_text is not None:
            ids.extend(new)
            on_text(name, judge.tokenizer.decode(ids, skip_special_tokens=True))

    return on_tokens


def writing_markdown(name: str, text: str, max_new_tokens: int, tokens: int) -> str:
    """The feedback being written, as the page shows it while it streams (with a loop warning)."""
    lines = [f"**{name}** is writing feedback: {tokens} of at most {max_new_tokens} tokens (Cancel stops it)"]
    repeated = find_repetition(text)
    if repeated:
        lines.append(f"⚠️ It is repeating itself: {md_text(repeated.describe())}. Cancel, or wait for the score.")
    lines.append("> " + md_text(text, newline="<br>"))
    return "\n\n".join(lines)


@gpu(duration=lambda *args, **kwargs: 120)
def score_streaming(
    studio: Studio,
    model: str,
    mode: str,
    instruction: str,
    response: str,
    reference: str,
    criteria: str,
    d1: str,
    d2: str,
    d3: str,
    d4: str,
    d5: str,
    d6: str = "",
    d7: str = "",
    d8: str = "",
    d9: str = "",
    d10: str = "",
    compare: bool = False,
    model_b: str | None = None,
    calibration_file: str | None = None,
    engine: str = "hf",
    max_new_tokens: int = 256,
    progress: gr.Progress = gr.Progress(),
) -> Iterator[tuple[Any, Any, Any]]:
    """`score_item` for the page: feedback streams into the result as it is written, and the
    Cancel button (which closes this generator) stops the generation at its next token."""
    values = [model, mode, instruction, response, reference, criteria, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10]
    values += [compare, model_b, calibration_file, engine, int(max_new_tokens)]
    tokens: dict[str, int] = {}

    def work(emit: Callable[[Any], None], cancelled: threading.Event) -> tuple[str, Any, dict]:
        def on_text(name: str, text: str) -> None:
            tokens[name] = tokens.get(name, 0) + 1
            emit(writing_markdown(name, text, int(max_new_tokens), tokens[name]))

        return judge_item(studio, *values, progress=progress, on_text=on_text, cancelled=cancelled)

    for kind, value in follow(work):
        if kind == "update":
            yield value, gr.skip(), gr.skip()
        elif kind == "done":
            yield value
        else:
            yield gr.skip(), gr.skip(), gr.skip()


def verdicts_markdown(verdicts: list[tuple[str, Any]]) -> str:
    """A kept result's words made again from its verdicts (app.score_state)."""
    return "\n\n---\n\n".join(_verdict_markdown(n, j) for n, j in verdicts)


def keep(model: str, mode: str, preset: str, *rest: Any) -> dict[str, Any]:
    """The browser's copy of a finished score: instruction, response, reference, criterion, the
    descriptions, whether the rubric is the visitor's own, then the details (app.score_state)."""
    texts, descriptions, (own, details) = rest[:4], rest[4 : 4 + MAX_LEVELS], rest[4 + MAX_LEVELS :]
    return score_state.save(model, mode, preset, list(texts), list(descriptions), own, details)


def build(studio: Studio, saved: gr.BrowserState | None = None) -> dict[str, Any]:
    """The tab; `saved` (score_state.browser_state) is made by the caller outside the tabs."""
    presets = list(rubric_presets())
    with gr.Tab("Score", id="score"):
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    model = model_dropdown(
                        studio, info="default model, a fine-tuned run, or a hub id / local path", elem_id="score-model"
                    )
                    mode = gr.Radio(
                        MODE_CHOICES, value="score_only", label="Mode", elem_id="score-mode", info=MODE_INFO
                    )
                with gr.Row():
                    compare = gr.Checkbox(label="Compare with a second judge", value=False)
                    model_b = model_dropdown(studio, "Second judge")
                engine = gr.Radio(ENGINE_CHOICES, value="hf", label="Engine", visible=SEVERAL_ENGINES)
                with gr.Accordion("Calibration (optional)", open=False):
                    calibration = gr.File(
                        label="CAL.json from `calibrate` or the Evaluate tab: tempers the scores, adds an interval",
                        file_types=[".json"],
                        height=90,
                    )
                with gr.Row():
                    max_new_tokens = gr.Slider(
                        16,
                        1024,
                        value=256,
                        step=16,
                        label="Max new tokens (feedback)",
                        info="the longest feedback the judge may write before its score",
                        visible=False,
                        elem_id="score-max-new-tokens",
                    )
                hint = gr.Markdown(elem_id="score-feedback-note")
                instruction = gr.Textbox(label="Instruction", lines=3)
                response = gr.Textbox(label="Response to evaluate", lines=5)
                reference = gr.Textbox(label="Reference answer (optional)", lines=3)
                with gr.Row():
                    example = gr.Button("Random example")
                    go_btn = gr.Button("Score", variant="primary", elem_id="score-button")
                    cancel_btn = gr.Button("Cancel", elem_id="score-cancel")
            with gr.Column(scale=2):
                preset = gr.Dropdown(
                    [*presets, CUSTOM],
                    value=presets[0],
                    label="Rubric preset",
                    info="the criterion and what each score means; edit any box to make your own",
                    elem_id="score-preset",
                )
                fields = preset_fields(presets[0])
                criteria = gr.Textbox(fields[0], label="Criterion", lines=2)
                descriptions = [
                    gr.Textbox(fields[k], label=f"Score {k}", lines=1, visible=k <= 5) for k in range(1, MAX_LEVELS + 1)
                ]
        result = gr.Markdown(elem_id="score-result")
        gr.Markdown(GLOSSARY)
        plot = gr.Plot(label="Score distribution", elem_id="score-plot")
        details = gr.JSON(label="Details")
        rubric_own = gr.State(False)  # a preset picked or a rubric typed by the visitor: no judge replaces it
        pair = pair_view.score_view(studio)

    preset.change(preset_fields, preset, [criteria, *descriptions], api_name="rubric_preset")
    model.change(bind(rubric_boxes, studio), model, [mode, *descriptions], api_name="score_model_mode")
    model.change(
        bind(trained_rubric, studio),
        [model, rubric_own],
        [preset, criteria, *descriptions],
        api_name="score_trained_rubric",
        show_progress="hidden",
    )
    gr.on(
        [preset.input, criteria.input, example.click, *(d.input for d in descriptions)],
        lambda: True,
        None,
        rubric_own,
        api_name=False,
        show_progress="hidden",
    )
    gr.on(
        [model.change, mode.change],
        bind(feedback_note, studio),
        [model, mode],
        hint,
        api_name="score_feedback_note",
        show_progress="hidden",
    )
    mode.change(lambda m: gr.Slider(visible=m == "feedback"), mode, max_new_tokens, show_progress="hidden")
    example.click(
        lambda: random_example(),
        None,
        [instruction, response, reference, criteria, *descriptions],
        api_name="random_example",
    ).then(lambda: CUSTOM, None, preset, api_name=False, show_progress="hidden")
    gr.on(
        [criteria.input, *(d.input for d in descriptions)],
        lambda: CUSTOM,
        None,
        preset,
        api_name=False,
        show_progress="hidden",
    )
    scored = go_btn.click(
        bind(score_streaming, studio),
        [
            model,
            mode,
            instruction,
            response,
            reference,
            criteria,
            *descriptions,
            compare,
            model_b,
            calibration,
            engine,
            max_new_tokens,
        ],
        [result, plot, details],
        api_name="score",
    )
    cancel_btn.click(None, None, None, cancels=[scored], api_name=False)
    if saved is None:
        saved = score_state.browser_state(studio)
    form = [model, mode, preset, instruction, response, reference, criteria, *descriptions]
    scored.success(keep, [*form, rubric_own, details], saved, api_name=False, show_progress="hidden")

    def restore(kept: Any) -> list[Any]:
        return score_state.restore(studio, kept, [*presets, CUSTOM], MAX_LEVELS, verdicts_markdown)

    return {
        "models": [model, model_b, *pair["models"]],
        "saved": saved,
        "restore": restore,
        "kept": [*form, rubric_own, result, plot, details],
    }
