"""`python -m raft export`: a run folder as a Hub-ready folder that `Judge.load` serves exactly as
the run (prompts byte for byte, scores to 1e-6), with a model card holding what the judge reads."""

import json

import numpy as np
import pytest
import yaml

from raft.cli import main
from raft.data import prepare_dataset
from raft.export import export_judge, hub_id
from raft.files import DataError, write_rows
from raft.judge import Judge
from raft.report import build_report, to_markdown
from raft.synthetic import generate_rows
from raft.train import TrainConfig, train


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("export")
    prepare_dataset(write_rows(root / "rows.jsonl", generate_rows(24, seed=5)), root / "ds", validation_ratio=0.25)
    config = TrainConfig(
        data=str(root / "ds"),
        output_dir=str(root / "run"),
        base_model=str(tiny_model),
        max_steps=2,
        eval_steps=1,
        eval_rows=2,
        batch_size=4,
        lora=True,
        lora_r=4,
        learning_rate=5e-2,
        save_steps=1000,
        device="cpu",
    )
    return train(config)


def _frontmatter(text):
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_the_exported_adapter_serves_exactly_as_the_run(lora_run, tmp_path, rows):
    out = export_judge(lora_run, tmp_path / "hub")
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "judge.json", "README.md"} <= names
    assert "tokenizer.json" in names or "tokenizer_config.json" in names
    assert all(p.is_file() and not p.is_symlink() for p in out.iterdir())  # upload_folder pushes it as it is
    run, exported = Judge.load(lora_run, device="cpu"), Judge.load(out, device="cpu")
    for mode in ("score_only", "feedback", "decode"):
        assert [exported.render(r, mode) for r in rows[:6]] == [run.render(r, mode) for r in rows[:6]]
    a, b = run.score(rows[:8], batch_size=3), exported.score(rows[:8], batch_size=3)
    np.testing.assert_allclose([x.expected_score for x in b], [x.expected_score for x in a], atol=1e-6)
    np.testing.assert_allclose([x.probs for x in b], [x.probs for x in a], atol=1e-6)
    assert exported.mode == run.mode and exported.scale == run.scale and exported.score_tokens == run.score_tokens


def test_an_exported_judge_loads_by_its_hub_id(lora_run, tmp_path, rows, monkeypatch):
    import huggingface_hub

    out = export_judge(lora_run, tmp_path / "hub")

    def download(repo_id, filename, **kw):
        if repo_id != "me/demo-judge":
            raise OSError(f"{repo_id} not found")
        return str(out / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: str(out))
    judge = Judge.load("me/demo-judge", device="cpu")
    run = Judge.load(lora_run, device="cpu")
    assert judge.render(rows[0]) == run.render(rows[0])
    assert judge.score(rows[:2])[0].expected_score == pytest.approx(run.score(rows[:2])[0].expected_score, abs=1e-6)


def test_the_model_card_holds_what_the_judge_reads(lora_run, tmp_path):
    rng = np.random.default_rng(0)
    gold = rng.integers(1, 6, 40)
    scored = [{"orig_score": int(g), "expected_score": float(g + rng.normal(0, 0.7))} for g in gold]
    report = build_report(scored, scale=(1, 5))
    (tmp_path / "report.json").write_text(json.dumps(report))
    out = export_judge(lora_run, tmp_path / "hub", report=tmp_path / "report.json")
    card = (out / "README.md").read_text()
    meta = _frontmatter(card)
    assert meta["library_name"] == "peft" and "lora" in meta["tags"] and "raft-judge-studio" in meta["tags"]
    assert "base_model" not in meta  # a local base model has no hub id to link
    manifest = json.loads((out / "judge.json").read_text())
    for template in manifest["prompt"].values():
        assert template["text"].rstrip() in card
    assert repr(manifest["score_cue"]) in card and "scale: 1 to 5" in card
    for token_id in manifest["score_token_ids"]:
        assert f"| {token_id} |" in card
    assert "```yaml" in card and "loss: raft" in card and "Last validation during training" in card
    assert "## Report card" in card and to_markdown(report).strip() in card and "pearson" in card
    (tmp_path / "bad.json").write_text(json.dumps({"n": 3}))
    with pytest.raises(DataError, match="not a report card"):
        export_judge(lora_run, tmp_path / "hub2", report=tmp_path / "bad.json")
    assert not (tmp_path / "hub2").exists()


@pytest.mark.slow
def test_merged_weights_serve_as_the_run_and_the_cli_exports(lora_run, tmp_path, rows):
    assert main(["export", str(lora_run), str(tmp_path / "merged"), "--merge"]) == 0
    out = tmp_path / "merged"
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert _frontmatter((out / "README.md").read_text())["library_name"] == "transformers"
    a = Judge.load(lora_run, device="cpu").score(rows[:6])
    b = Judge.load(out, device="cpu").score(rows[:6])
    worst = float(np.max(np.abs(np.array([x.probs for x in a]) - np.array([x.probs for x in b]))))
    print(f"merged vs adapter: largest probability difference {worst:.1e}")
    assert worst < 1e-5


def test_export_refuses_a_folder_that_is_no_run_or_an_occupied_target(lora_run, tmp_path, capsys):
    with pytest.raises(DataError, match="not a run folder"):
        export_judge(tmp_path, tmp_path / "out")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("mine")
    assert main(["export", str(lora_run), str(tmp_path / "taken")]) == 2
    assert "not empty" in capsys.readouterr().err and (tmp_path / "taken" / "file.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "name, expected",
    [
        (None, "HuggingFaceTB/SmolLM2-135M-Instruct"),
        ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"),
        ("/tmp", None),
        ("not a hub id", None),
    ],
)
def test_hub_ids_for_the_card(name, expected):
    assert hub_id(name) == expected


def test_the_exported_folder_leaves_the_training_state_behind(lora_run, tmp_path):
    """A judge whose weights are a checkpoint (a calibrated judge, a judge stopped and kept) carries
    the optimizer, scheduler and RNG state beside its adapter: a taken-home judge needs none of it."""
    import shutil

    run = shutil.copytree(lora_run, tmp_path / "run")
    weights = run / json.loads((run / "judge.json").read_text()).get("weights", "model")
    state = ["optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "training_args.bin", "scaler.pt"]
    for name in state:
        (weights / name).write_bytes(b"state")
    out = export_judge(run, tmp_path / "hub")
    names = {p.name for p in out.iterdir()}
    assert not names & set(state)
    assert "adapter_model.safetensors" in names
