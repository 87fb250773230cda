"""A judge is served exactly as it was trained: the template text, scale and mode travel from the
dataset to the run to `Judge.load`, run folders never mix, and resume never repeats progress."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from raft.data import prepare_dataset, read_jsonl
from raft.files import write_rows
from raft.jobs import JobError, JobManager
from raft.judge import Judge
from raft.prompts import apply_chat, builtin_templates
from raft.synthetic import generate_rows
from raft.train import TrainConfig, train
from raft.train.trainer import Evaluate
from tests.helpers import REPO, repo_env

USER_TEMPLATE = """Rate this answer ({min_score}-{max_score}).
Question: {instruction}
Answer: {response}
Rubric:
{rubric}
Verdict:"""


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    return write_rows(tmp_path_factory.mktemp("rows") / "rows.jsonl", generate_rows(24, seed=11))


def _config(data, out, model, **kw):
    base = dict(
        data=str(data),
        output_dir=str(out),
        base_model=str(model),
        max_steps=1,
        eval_steps=100,
        eval_rows=2,
        eval_max_new_tokens=4,
        batch_size=4,
        lora=False,
        save_steps=1000,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


CASES = [(name, mode) for name in builtin_templates() for mode in ("score_only", "feedback")] + [
    ("user file", "score_only"),
    ("user file", "feedback"),
]


@pytest.mark.parametrize("template, mode", CASES)
def test_a_run_renders_its_training_prompt_byte_for_byte(template, mode, rows, tmp_path, tiny_model, monkeypatch):
    if template == "user file":
        path = tmp_path / "elsewhere" / "my_template.txt"
        path.parent.mkdir()
        path.write_text(USER_TEMPLATE)
        template = str(path)
    data = tmp_path / "ds"
    prepare_dataset(rows, data, mode=mode, template=template, validation_ratio=0.25)
    if template.endswith(".txt"):  # the user's file is moved away after prepare: the dataset holds its text
        (tmp_path / "elsewhere" / "my_template.txt").rename(tmp_path / "moved.txt")

    rendered_in_training = []
    original_run = Evaluate.run

    def spy(self, *args, **kwargs):
        rendered_in_training.extend(self.judge.render(item) for item in self.items)
        return original_run(self, *args, **kwargs)

    monkeypatch.setattr(Evaluate, "run", spy)
    run = train(_config(data, tmp_path / "run", tiny_model, eval_rows=0))

    judge = Judge.load(run, device="cpu")
    assert judge.mode == mode
    examples = read_jsonl(data / "train.jsonl") + read_jsonl(data / "validation.jsonl")
    cue = judge.score_tokens.cue if mode == "score_only" else ""
    for ex in examples:
        assert judge.render(ex["item"]) == apply_chat(judge.tokenizer, ex["prompt"]) + cue
    validation = read_jsonl(data / "validation.jsonl")
    expected = [apply_chat(judge.tokenizer, ex["prompt"]) + cue for ex in validation]
    assert rendered_in_training[: len(expected)] == expected


def test_the_dataset_manifest_holds_template_text_scale_mode_cue_and_columns(tmp_path):
    from raft.data import read_dataset_manifest

    rows = [{**r, "answer": r.pop("orig_response")} for r in generate_rows(10, seed=1)]
    source = write_rows(tmp_path / "rows.jsonl", rows)
    prepare_dataset(source, tmp_path / "ds", mode="feedback", columns="orig_response=answer")
    manifest = read_dataset_manifest(tmp_path / "ds")
    assert manifest["mode"] == "feedback" and manifest["scale"] == [1, 5] and manifest["score_cue"] == "[RESULT] "
    assert manifest["columns"] == {"orig_response": "answer"}
    assert "{response}" in manifest["prompt"].with_reference.text


def test_a_config_naming_another_template_or_scale_is_refused(rows, tmp_path, tiny_model):
    prepare_dataset(rows, tmp_path / "ds")
    with pytest.raises(ValueError, match="template 'absolute_feedback' differs.*with reference"):
        train(_config(tmp_path / "ds", tmp_path / "a", tiny_model, template="absolute_feedback"))
    with pytest.raises(ValueError, match=r"scale \[1, 4\] differs"):
        train(_config(tmp_path / "ds", tmp_path / "b", tiny_model, scale=[1, 4]))
    train(_config(tmp_path / "ds", tmp_path / "c", tiny_model, scale=[1, 5]))
    prepare_dataset(rows, tmp_path / "one", template="absolute_score")
    train(_config(tmp_path / "one", tmp_path / "d", tiny_model, template="absolute_score"))


def test_a_second_run_into_one_folder_is_refused(rows, tmp_path, tiny_model):
    prepare_dataset(rows, tmp_path / "ds")
    run = train(_config(tmp_path / "ds", tmp_path / "run", tiny_model))
    before = (run / "progress.jsonl").read_text()
    with pytest.raises(ValueError, match="already holds a run"):
        train(_config(tmp_path / "ds", tmp_path / "run", tiny_model, max_steps=2))
    assert (run / "progress.jsonl").read_text() == before
    assert json.loads((run / "result.json").read_text())["status"] == "completed"
    with pytest.raises(JobError, match="already holds a run"):
        JobManager(tmp_path / "root").start(_config(tmp_path / "ds", run, tiny_model))


def _steps(run):
    return [r["step"] for r in read_jsonl(run / "progress.jsonl") if "loss" in r]


def test_resume_after_kill_past_a_checkpoint_logs_each_step_once(rows, tmp_path, tiny_model):
    prepare_dataset(rows, tmp_path / "ds")
    config = _config(tmp_path / "ds", tmp_path / "run", tiny_model, max_steps=400, save_steps=10, batch_size=2)
    config.to_yaml(tmp_path / "config.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "raft", "train", str(tmp_path / "config.yaml")],
        cwd=REPO,
        env=repo_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    run = tmp_path / "run"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if (run / "checkpoints" / "checkpoint-10").is_dir() and (run / "progress.jsonl").is_file():
                if max(_steps(run), default=0) > 10:
                    break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    logged = _steps(run)
    assert max(logged) > 10, "the run was not killed past its checkpoint"
    config.max_steps = max(logged) + 2
    train(config, resume=True)
    assert _steps(run) == list(range(1, config.max_steps + 1))


def test_resume_with_no_checkpoint_starts_the_progress_again(rows, tmp_path, tiny_model):
    prepare_dataset(rows, tmp_path / "ds", validation_ratio=0.25)
    config = _config(tmp_path / "ds", tmp_path / "run", tiny_model, max_steps=3, eval_rows=2, eval_steps=100)
    run = train(config)
    for folder in (run / "checkpoints").iterdir():  # as if killed before the first checkpoint was written
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    train(config, resume=True)
    progress = read_jsonl(run / "progress.jsonl")
    assert _steps(run) == [1, 2, 3]
    assert [r["step"] for r in progress if "eval" in r].count(0) == 1


def test_a_tract_judge_scores_in_feedback_mode_by_default(tmp_path, tiny_model, rows):
    from raft.cli import main

    prepare_dataset(rows, tmp_path / "ds", mode="feedback")
    run = train(_config(tmp_path / "ds", tmp_path / "run", tiny_model, loss="cot_raft"))
    judge = Judge.load(run, device="cpu")
    [j] = judge.score([read_jsonl(tmp_path / "ds" / "train.jsonl")[0]["item"]], max_new_tokens=4)
    assert judge.mode == "feedback" and j.samples is not None and j.error is None
    out = tmp_path / "scored.jsonl"
    args = ["score", "--input", str(rows), "--out", str(out), "--model", str(run), "--device", "cpu"]
    assert main([*args, "--max-new-tokens", "4"]) == 0
    assert all(r["samples"] is not None for r in read_jsonl(out) if not r["error"])
