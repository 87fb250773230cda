"""Feedback honest by default: the Score tab says when a judge was not trained for feedback,
offers max-new-tokens, and flags degenerate repetition."""

import inspect
import json
import time

from app import score_tab
from app.main import build_app
from app.studio import DEFAULT_CHOICE, Settings
from raft.judge import Judgment


def no_progress(*args, **kwargs):
    pass


def make_run(studio, name, mode, loss):
    run = studio.runs_dir / name
    run.mkdir(parents=True)
    (run / "judge.json").write_text(json.dumps({"mode": mode, "loss": loss, "scale": [1, 5], "weights": "model"}))
    (run / "model").mkdir()  # a run serves as a judge once it has weights (raft.runs.run_weights)


def test_a_judge_not_trained_for_feedback_is_named_in_feedback_mode(studio):
    make_run(studio, "fb", "feedback", "cot_raft")
    make_run(studio, "so", "score_only", "raft")
    untrained = score_tab.feedback_note(studio, DEFAULT_CHOICE, "feedback")
    assert "not fine-tuned as a judge" in untrained and "cot_raft" in untrained
    assert "fine-tuned to give the score alone (loss raft)" in score_tab.feedback_note(studio, "run: so", "feedback")
    assert score_tab.feedback_note(studio, "run: fb", "feedback") == ""
    assert score_tab.feedback_note(studio, DEFAULT_CHOICE, "score_only") == ""


def test_looping_feedback_is_flagged_and_ordinary_feedback_is_not():
    loop = Judgment(expected_score=3.0, mode_score=3, score_mass=0.45, feedback="The answer is good. " * 40)
    text = score_tab._verdict_markdown("m", loop)
    assert '⚠️ The feedback repeats itself: "The answer is good." 40 times' in text
    fine = Judgment(expected_score=3.0, mode_score=3, score_mass=0.9, feedback="Clear and correct, one gap.")
    assert "repeats itself" not in score_tab._verdict_markdown("m", fine)


def test_max_new_tokens_reaches_the_judge(studio):
    example = score_tab.random_example(seed=1)
    short = score_tab.score_item(studio, DEFAULT_CHOICE, "feedback", *example, max_new_tokens=4, progress=no_progress)[
        2
    ][DEFAULT_CHOICE]["feedback"]
    judge = studio.judge(DEFAULT_CHOICE)
    assert len(judge.encode(short)) <= 4


def test_the_score_button_sends_the_max_new_tokens_slider(tmp_path, tiny_model):
    demo, _ = build_app(Settings(data_root=tmp_path / "root", default_model=str(tiny_model)))
    config = demo.get_config_file()
    slider = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "score-max-new-tokens")
    [score] = [d for d in config["dependencies"] if d["api_name"] == "score"]
    assert score["inputs"][-1] == slider


def test_feedback_streams_token_by_token_into_the_result(studio):
    example = score_tab.random_example(seed=1)
    outputs = list(
        score_tab.score_streaming(
            studio, DEFAULT_CHOICE, "feedback", *example, False, None, None, "hf", 24, progress=no_progress
        )
    )
    writing = [o[0] for o in outputs if isinstance(o[0], str) and "is writing feedback" in o[0]]
    assert len(writing) >= 2 and "1 of at most 24 tokens" in writing[0]
    markdown, plot, details = outputs[-1]
    assert "expected score" in markdown and details[DEFAULT_CHOICE]["feedback"] is not None


def test_cancel_ends_the_generation_at_its_next_token(studio, monkeypatch):
    from raft.streaming import Cancelled

    ended = []
    real = score_tab.judge_item

    def recording(*args, **kwargs):
        try:
            return real(*args, **kwargs)
        except BaseException as exc:
            ended.append(exc)
            raise

    monkeypatch.setattr(score_tab, "judge_item", recording)
    example = score_tab.random_example(seed=2)
    steps = score_tab.score_streaming(
        studio, DEFAULT_CHOICE, "feedback", *example, False, None, None, "hf", 1024, progress=no_progress
    )
    next(o for o in steps if isinstance(o[0], str) and "is writing feedback" in o[0])
    steps.close()  # what Gradio does to a generator whose event is cancelled
    deadline = time.time() + 30
    while not ended and time.time() < deadline:
        time.sleep(0.05)
    assert ended and isinstance(ended[0], Cancelled)


def test_the_cancel_button_cancels_the_score_event(tmp_path, tiny_model):
    demo, _ = build_app(Settings(data_root=tmp_path / "root", default_model=str(tiny_model)))
    config = demo.get_config_file()
    button = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "score-cancel")
    [score] = [d for d in config["dependencies"] if d["api_name"] == "score"]
    on_click = [d for d in config["dependencies"] if [button, "click"] in [list(t) for t in d["targets"]]]
    assert any(score["id"] in d["cancels"] for d in on_click)
    [handler] = [f for f in demo.fns.values() if f.api_name == "score"]
    assert inspect.isgeneratorfunction(handler.fn)  # else Gradio shows one value: nothing streams
