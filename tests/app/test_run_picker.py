"""The Score and Batch tabs' shared picker lists a stopped run with its checkpoint step and serves it."""

import shutil

from raft.data import prepare_dataset, read_jsonl
from raft.files import write_rows
from raft.synthetic import generate_rows
from raft.train import TrainConfig, train


def test_a_stopped_run_is_listed_with_its_step_and_serves(studio, tiny_model, tmp_path):
    prepare_dataset(write_rows(tmp_path / "rows.jsonl", generate_rows(12, seed=1)), tmp_path / "ds")
    run = studio.runs_dir / "halted"
    train(
        TrainConfig(
            data=str(tmp_path / "ds"),
            output_dir=str(run),
            base_model=str(tiny_model),
            max_steps=1,
            batch_size=4,
            save_steps=1,
            device="cpu",
        )
    )
    shutil.rmtree(run / "adapter")  # as a run stopped after its first checkpoint leaves its folder
    (run / "result.json").write_text('{"status": "stopped", "step": 1}')
    (studio.runs_dir / "empty").mkdir()
    (studio.runs_dir / "empty" / "judge.json").write_text('{"weights": "adapter"}')  # started, nothing saved yet
    choices = studio.model_choices()
    assert ("run: halted (checkpoint, step 1)", "run: halted") in choices
    assert not any("empty" in str(c) for c in choices)
    item = read_jsonl(tmp_path / "ds" / "train.jsonl")[0]["item"]
    result = studio.judge("run: halted").score([item], mode="score_only")[0]
    assert 1 <= result.expected_score <= 5
