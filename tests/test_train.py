import json

import pytest

from raft.data import prepare_dataset, read_jsonl
from raft.files import write_rows
from raft.judge import Judge
from raft.loss import make_loss
from raft.models import build_tiny_model
from raft.synthetic import generate_rows
from raft.train import TrainConfig, train
from raft.train.trainer import Collator, tokenize
from tests.helpers import repo_env, torchrun


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rows = write_rows(root / "rows.jsonl", generate_rows(250, seed=5))
    prepare_dataset(rows, root / "score", validation_ratio=0.2, seed=0)
    prepare_dataset(rows, root / "feedback", mode="feedback", num_samples=60, validation_ratio=0.1, seed=0)
    return root


def test_config_yaml_round_trip_and_overrides(tmp_path):
    config = TrainConfig(data="d", lora_targets=["q_proj", "v_proj"])
    config.to_yaml(tmp_path / "c.yaml")
    loaded = TrainConfig.from_yaml(tmp_path / "c.yaml")
    assert loaded == config
    changed = loaded.override(
        [
            "--learning_rate",
            "1e-4",
            "--lora",
            "false",
            "--base-model",
            "123",
            "--lora_targets",
            "[q_proj]",
            "--max_steps",
            "7",
        ]
    )
    assert changed.learning_rate == 1e-4 and changed.lora is False and changed.base_model == "123"
    assert changed.lora_targets == ["q_proj"] and changed.max_steps == 7
    with pytest.raises(ValueError, match="unknown config key '--colour'"):
        loaded.override(["--colour", "red"])
    (tmp_path / "bad.yaml").write_text("colour: red\n")
    with pytest.raises(ValueError, match="unknown config key"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")


def test_head_at_score_gives_the_same_loss_as_full_logits(tiny_judge, dataset):
    rows = read_jsonl(dataset / "score" / "train.jsonl")[:4]
    tok, st = tiny_judge.tokenizer, tiny_judge.score_tokens
    examples = [tokenize(r, tok, st, score_only=True) for r in rows]
    loss = make_loss("raft", st.ids, st.values)
    values = []
    for head in (True, False):
        batch = Collator(tok.pad_token_id, head)(examples)
        labels = batch.pop("labels")
        out = tiny_judge.model(**batch)
        assert out.logits.shape[1] == (1 if head else batch["input_ids"].shape[1])
        values.append(loss(out, labels).item())
    assert values[0] == pytest.approx(values[1], rel=1e-6)


def _config(dataset, tmp_path, model, **kw):
    base = dict(
        data=str(dataset / "score"),
        output_dir=str(tmp_path / "run"),
        base_model=str(model),
        max_steps=150,
        eval_steps=50,
        batch_size=8,
        learning_rate=1e-3,
        lora=False,
        warmup_ratio=0.05,
        lr_scheduler="constant_with_warmup",
        save_steps=1000,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


def test_raft_learns_on_synthetic_data_and_ce_twin_is_printed(dataset, tmp_path):
    model = build_tiny_model(tmp_path / "tiny128", hidden=128)
    results = {}
    for loss in ("raft", "ce"):
        run = train(_config(dataset, tmp_path, model, loss=loss, output_dir=str(tmp_path / loss)))
        evals = [r["eval"] for r in read_jsonl(run / "progress.jsonl") if "eval" in r]
        results[loss] = (evals[0]["pearson"], evals[-1]["pearson"], evals[-1]["rmse"])
    print(
        "validation Pearson start -> end (RMSE):",
        {k: f"{a:.3f} -> {b:.3f} ({c:.3f})" for k, (a, b, c) in results.items()},
    )
    start, end, _ = results["raft"]
    assert end >= 0.8 and end > start


def test_the_ordinal_emd_loss_trains_from_the_table_row_alone(dataset, tmp_path):
    """EMD is one function and one row of raft.loss.LOSSES: the trainer labels just the score token
    (its row says score_only), the collator hands each row's target distribution, and it learns
    (at 3e-4: at RAFT's 1e-3 this tiny model settles on the labels' marginal distribution)."""
    model = build_tiny_model(tmp_path / "tiny128", hidden=128)
    run = train(_config(dataset, tmp_path, model, loss="emd", learning_rate=3e-4, output_dir=str(tmp_path / "emd")))
    progress = read_jsonl(run / "progress.jsonl")
    evals = [r["eval"] for r in progress if "eval" in r]
    steps = [r for r in progress if "loss" in r]
    assert steps[0]["loss"] == pytest.approx(steps[0]["score_loss"], rel=1e-6) and "ce_loss" not in steps[0]
    print(f"emd: validation Pearson {evals[0]['pearson']:.3f} -> {evals[-1]['pearson']:.3f}")
    assert evals[-1]["pearson"] >= 0.6 and evals[-1]["pearson"] > evals[0]["pearson"] + 0.3


def test_run_folder_holds_config_progress_adapter_and_manifest(dataset, tmp_path, tiny_model):
    run = train(
        _config(
            dataset,
            tmp_path,
            tiny_model,
            lora=True,
            max_steps=6,
            eval_steps=3,
            eval_rows=8,
            save_steps=3,
            learning_rate=1e-3,
        )
    )
    assert {"config.yaml", "progress.jsonl", "judge.json", "adapter", "checkpoints", "result.json"} <= {
        p.name for p in run.iterdir()
    }
    assert TrainConfig.from_yaml(run / "config.yaml").max_steps == 6
    progress = read_jsonl(run / "progress.jsonl")
    steps = [r for r in progress if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 7))
    for key in ("total_steps", "epoch", "loss", "score_loss", "lr", "elapsed_s", "remaining_s"):
        assert key in steps[0]
    assert [r["step"] for r in progress if "eval" in r] == [0, 3, 6]
    assert {"pearson", "spearman", "kendall", "rmse"} <= set(progress[0]["eval"])
    manifest = json.loads((run / "judge.json").read_text())
    assert manifest["adapter"] == "adapter" and manifest["scale"] == [1, 5] and len(manifest["score_token_ids"]) == 5
    assert json.loads((run / "result.json").read_text())["status"] == "completed"
    judge = Judge.load(run, device="cpu")
    item = read_jsonl(dataset / "score" / "validation.jsonl")[0]["item"]
    assert judge.score([item])[0].error is None
    assert judge.score_token_ids == manifest["score_token_ids"]


def test_resume_continues_from_the_last_checkpoint(dataset, tmp_path, tiny_model):
    config = _config(dataset, tmp_path, tiny_model, max_steps=4, save_steps=2, eval_rows=4, eval_steps=100)
    run = train(config)
    assert (run / "checkpoints" / "checkpoint-4").is_dir()
    config.max_steps = 8
    train(config, resume=True)
    steps = [r["step"] for r in read_jsonl(run / "progress.jsonl") if "loss" in r]
    assert steps == list(range(1, 9))


def test_cot_raft_training_and_self_distillation(dataset, tmp_path, tiny_model):
    from raft.distill import self_distill

    run = train(
        _config(
            dataset,
            tmp_path,
            tiny_model,
            data=str(dataset / "feedback"),
            loss="cot_raft",
            lam=1.0,
            max_steps=40,
            eval_steps=100,
            eval_rows=2,
            eval_max_new_tokens=8,
            learning_rate=3e-3,
        )
    )
    progress = [r for r in read_jsonl(run / "progress.jsonl") if "loss" in r]
    assert progress and all(r["loss"] == pytest.approx(r["ce_loss"] + r["score_loss"], rel=1e-4) for r in progress)
    assert json.loads((run / "judge.json").read_text())["mode"] == "feedback"
    stats = self_distill(run, dataset / "feedback", tmp_path / "stage2", max_new_tokens=12)
    assert stats["distilled_from"] == str(run)
    new = read_jsonl(tmp_path / "stage2" / "train.jsonl")
    old = read_jsonl(dataset / "feedback" / "train.jsonl")
    assert len(new) + stats["rows_rejected"] == len(old)
    for ex in new:
        assert ex["target"].endswith(f"[RESULT] {ex['score']}") and ex["mode"] == "feedback"


def test_cot_raft_refuses_a_score_only_dataset(dataset, tmp_path, tiny_model):
    with pytest.raises(ValueError, match="needs a feedback dataset"):
        train(_config(dataset, tmp_path, tiny_model, loss="cot_raft", max_steps=1))


@pytest.mark.slow
def test_lora_raft_on_smollm2_trains_saves_reloads_and_scores(default_model, dataset, tmp_path):
    config = TrainConfig(
        data=str(dataset / "score"),
        output_dir=str(tmp_path / "smol"),
        max_steps=3,
        batch_size=2,
        eval_steps=100,
        eval_rows=2,
        learning_rate=1e-4,
        lora_r=8,
        max_length=1024,
        device="cpu",
        gradient_checkpointing=True,
    )
    run = train(config)
    progress = [r for r in read_jsonl(run / "progress.jsonl") if "loss" in r]
    assert len(progress) == 3 and all(r["loss"] >= 0 for r in progress)
    judge = Judge.load(run, device="cpu")
    assert judge.score_token_ids == [33, 34, 35, 36, 37]
    [result] = judge.score([read_jsonl(dataset / "score" / "validation.jsonl")[0]["item"]])
    assert result.error is None and 1 <= result.expected_score <= 5


def test_the_same_command_trains_under_torchrun(dataset, tmp_path, tiny_model):
    import subprocess

    run = tmp_path / "ddp"
    cmd = torchrun(
        "-m",
        "raft",
        "train",
        "--data",
        str(dataset / "score"),
        "--output_dir",
        str(run),
        "--base_model",
        str(tiny_model),
        "--max_steps",
        "4",
        "--batch_size",
        "2",
        "--eval_steps",
        "100",
        "--eval_rows",
        "4",
        "--lora",
        "false",
        "--device",
        "cpu",
    )
    done = subprocess.run(cmd, env=repo_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["step"] for r in read_jsonl(run / "progress.jsonl") if "loss" in r] == [1, 2, 3, 4]
    assert json.loads((run / "result.json").read_text())["status"] == "completed"
    assert (
        Judge.load(run, device="cpu").score([read_jsonl(dataset / "score" / "train.jsonl")[0]["item"]])[0].error is None
    )


def test_the_stop_decision_is_rank_zeros_and_reaches_every_rank(tmp_path):
    import subprocess
    from pathlib import Path

    script = Path(__file__).with_name("stop_decision.py")
    done = subprocess.run(torchrun(script, tmp_path), env=repo_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "rank 1: stop=True save=True" in done.stdout


def test_stop_under_torchrun_ends_both_processes_with_a_checkpoint(dataset, tmp_path, tiny_model):
    import subprocess
    import time

    run = tmp_path / "ddp-stop"
    cmd = torchrun(
        "-m", "raft", "train", "--data", str(dataset / "score"), "--output_dir", str(run),
        "--base_model", str(tiny_model), "--max_steps", "5000", "--batch_size", "2", "--eval_steps", "100000",
        "--eval_rows", "2", "--save_steps", "100000", "--lora", "false", "--device", "cpu",
    )  # fmt: skip
    proc = subprocess.Popen(cmd, env=repo_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if (run / "progress.jsonl").is_file() and any("loss" in r for r in read_jsonl(run / "progress.jsonl")):
                break
            time.sleep(0.2)
        (run / "STOP").touch()
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, output[-3000:]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "stopped" and result["step"] < 5000
    assert (run / "checkpoints" / f"checkpoint-{result['step']}").is_dir()


def test_loss_parts_do_not_depend_on_gradient_accumulation(dataset, tmp_path, tiny_model):
    parts = {}
    for accum in (1, 2):
        run = train(
            _config(
                dataset,
                tmp_path,
                tiny_model,
                data=str(dataset / "feedback"),
                output_dir=str(tmp_path / f"accum{accum}"),
                loss="cot_raft",
                max_steps=2,
                batch_size=4 // accum,
                grad_accum=accum,
                eval_rows=1,
                eval_steps=100,
                eval_max_new_tokens=2,
            )
        )
        parts[accum] = [(r["ce_loss"], r["score_loss"]) for r in read_jsonl(run / "progress.jsonl") if "loss" in r]
    assert len(parts[1]) == 2
    for one, two in zip(parts[1], parts[2]):
        assert two == pytest.approx(one, rel=1e-4)


@pytest.mark.parametrize(
    "device, world, gpus, refused",
    [("cuda", 1, 2, True), ("cuda", 1, 8, True), ("cuda", 2, 2, False), ("cuda", 1, 1, False), ("cpu", 1, 0, False)],
)
def test_several_gpus_without_a_launcher_are_refused_naming_torchrun(device, world, gpus, refused):
    from raft.train.trainer import check_launch

    if refused:
        with pytest.raises(ValueError, match="torchrun --nproc_per_node"):
            check_launch(device, world, gpus)
    else:
        check_launch(device, world, gpus)


def test_fsdp_on_two_cpu_processes_gives_the_losses_of_one_process(dataset, tmp_path, tiny_model):
    import subprocess

    common = [
        "--data", str(dataset / "score"), "--base_model", str(tiny_model), "--max_steps", "3",
        "--eval_steps", "100", "--eval_rows", "2", "--lora", "false", "--device", "cpu", "--learning_rate", "1e-3",
        "--lr_scheduler", "constant", "--warmup_ratio", "0",
    ]  # fmt: skip
    single = train(
        TrainConfig.from_text("{}").override([*common, "--output_dir", str(tmp_path / "one"), "--batch_size", "4"])
    )
    cmd = torchrun(
        "-m", "raft", "train", *common, "--output_dir", str(tmp_path / "fsdp"), "--batch_size", "2",
        "--fsdp", "full_shard auto_wrap", "--fsdp_config", "{transformer_layer_cls_to_wrap: [LlamaDecoderLayer]}",
    )  # fmt: skip
    done = subprocess.run(cmd, env=repo_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, sharded = (
        [r["loss"] for r in read_jsonl(run / "progress.jsonl") if "loss" in r] for run in (single, tmp_path / "fsdp")
    )
    print(f"losses, one process: {one}; FSDP over 2 processes: {sharded}")
    assert sharded == pytest.approx(one, rel=1e-4)
    assert (
        Judge.load(tmp_path / "fsdp", device="cpu")
        .score([read_jsonl(dataset / "score" / "train.jsonl")[0]["item"]])[0]
        .error
        is None
    )


def test_deepspeed_and_fsdp_reach_the_trainer_arguments(tmp_path):
    from raft.train.config import ConfigError
    from raft.train.trainer import scale_out

    assert scale_out(TrainConfig()) == {}
    assert scale_out(TrainConfig(fsdp="full_shard auto_wrap")) == {"fsdp": "full_shard auto_wrap", "fsdp_config": {}}
    (tmp_path / "ds.json").write_text('{"zero_optimization": {"stage": 2}}')
    assert scale_out(TrainConfig(deepspeed=str(tmp_path / "ds.json"))) == {"deepspeed": str(tmp_path / "ds.json")}
    with pytest.raises(FileNotFoundError, match="deepspeed config"):
        scale_out(TrainConfig(deepspeed=str(tmp_path / "missing.json")))
    with pytest.raises(ConfigError, match="fsdp"):
        TrainConfig(fsdp="full_shard rm -rf")


@pytest.mark.parametrize("kind", ["cot_raft", "ce"])
def test_head_at_labels_gives_the_same_loss_and_gradient_as_full_logits(tiny_judge, dataset, kind):
    """CE and CoT-RAFT with the head applied only where a label is predicted: the same loss and the
    same gradient as over the full B x T x V logits, from fewer logit columns."""
    import torch

    rows = read_jsonl(dataset / "feedback" / "train.jsonl")[:4]
    tok, st = tiny_judge.tokenizer, tiny_judge.score_tokens
    examples = [tokenize(r, tok, st, score_only=False) for r in rows]
    examples[1] = {**examples[1], "input_ids": examples[1]["input_ids"][:-3], "labels": examples[1]["labels"][:-3]}
    loss = make_loss(kind, st.ids, st.values)
    weight = tiny_judge.model.get_input_embeddings().weight
    values, grads, widths = [], [], []
    for compact in (True, False):
        batch = Collator(tok.pad_token_id, False, head_at_labels=compact)(examples)
        labels = batch.pop("labels")
        out = tiny_judge.model(**batch)
        widths.append(out.logits.shape[1])
        value = loss(out, labels)
        (grad,) = torch.autograd.grad(value, weight)
        values.append(value.item())
        grads.append(grad)
    assert widths[0] < widths[1] == batch["input_ids"].shape[1]
    assert values[0] == pytest.approx(values[1], rel=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_wrapping_in_lora_leaves_no_deprecation_warning_for_the_job_log(tiny_model):
    """peft asks transformers for `is_gradient_checkpointing`, deprecated there: the FutureWarning
    reached every training log's tail, which the studio shows (newcomer walk); nobody can act on it."""
    import warnings

    from transformers import AutoModelForCausalLM

    from raft.train.trainer import _trainable

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrapped = _trainable(model, TrainConfig(data="d", output_dir="o"), None)
    assert hasattr(wrapped, "peft_config")
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
