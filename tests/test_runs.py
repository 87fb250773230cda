"""Every run is servable from its first checkpoint: judge.json is written when training starts and
a stopped run loads as a judge from its newest checkpoint, saying so."""

import json
import logging
import shutil

import pytest

from raft.data import prepare_dataset, read_jsonl
from raft.files import write_rows
from raft.judge import Judge
from raft.models import ModelError
from raft.runs import newest_checkpoint, run_weights
from raft.synthetic import generate_rows
from raft.train import TrainConfig, train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    prepare_dataset(write_rows(root / "rows.jsonl", generate_rows(24, seed=2)), root / "ds")
    return root / "ds"


@pytest.mark.parametrize("lora", [True, False])
def test_a_stopped_run_loads_as_a_judge_from_its_newest_checkpoint(dataset, tiny_model, tmp_path, caplog, lora):
    run = tmp_path / "run"
    config = TrainConfig(
        data=str(dataset),
        output_dir=str(run),
        base_model=str(tiny_model),
        max_steps=1,
        batch_size=4,
        lora=lora,
        save_steps=1,
        device="cpu",
    )
    train(config)
    final = run / ("adapter" if lora else "model")
    assert (run / "judge.json").is_file() and (run / "checkpoints" / "checkpoint-1").is_dir()
    shutil.rmtree(final)  # as a run stopped (or killed) after its first checkpoint leaves its folder
    (run / "result.json").write_text(json.dumps({"status": "stopped", "step": 1}))
    with caplog.at_level(logging.WARNING):
        judge = Judge.load(str(run), device="cpu")
    assert "run 'run' has no final judge (stopped): serving its newest checkpoint, step 1" in caplog.text
    items = [r["item"] for r in read_jsonl(dataset / "train.jsonl")[:3]]
    got = [r.expected_score for r in judge.score(items, mode="score_only")]
    checkpoint = run / "checkpoints" / "checkpoint-1"
    direct = (
        Judge.load(str(tiny_model), adapter=str(checkpoint), device="cpu")
        if lora
        else Judge.load(str(checkpoint), device="cpu")
    )
    assert got == pytest.approx([r.expected_score for r in direct.score(items, mode="score_only")], abs=1e-6)
    assert judge.scale == (1, 5) and json.loads((run / "judge.json").read_text())["loss"] == "raft"


def test_run_weights_prefer_the_final_folder_then_the_newest_checkpoint(tmp_path):
    manifest = {"weights": "adapter"}
    assert run_weights(tmp_path, manifest) is None and newest_checkpoint(tmp_path) is None
    for step in (5, 40, 10):
        (tmp_path / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        (tmp_path / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoints" / "checkpoint-x").mkdir()
    (tmp_path / "result.json").write_text('{"status": "failed"}')
    found = run_weights(tmp_path, manifest)
    assert found.step == 40 and found.folder.name == "checkpoint-40" and "(failed)" in found.note
    (tmp_path / "adapter").mkdir()
    assert (
        run_weights(tmp_path, manifest).folder == tmp_path / "adapter" and run_weights(tmp_path, manifest).step is None
    )


def test_a_run_without_any_weights_yet_says_so(tmp_path):
    (tmp_path / "judge.json").write_text(json.dumps({"weights": "adapter", "adapter": "adapter", "base_model": None}))
    with pytest.raises(ModelError, match="has no weights yet: it is training and saves its first checkpoint"):
        Judge.load(str(tmp_path), device="cpu")


def test_export_of_a_run_without_a_final_judge_says_how_to_finish_it(tmp_path):
    from raft.export import export_judge
    from raft.files import DataError

    run = tmp_path / "run"
    (run / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-3" / "trainer_state.json").write_text("{}")
    (run / "judge.json").write_text(json.dumps({"weights": "adapter", "adapter": "adapter", "base_model": None}))
    (run / "result.json").write_text('{"status": "stopped", "step": 3}')
    with pytest.raises(
        DataError, match=r"has no final judge \(stopped\); finish it with `python -m raft train --resume"
    ):
        export_judge(run, tmp_path / "out")
