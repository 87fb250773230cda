"""Training memory (issue 26): checkpointing cuts what a step holds, the estimate warns before a
run runs out, and a CPU run gives freed activations back to the system."""

import subprocess
import sys
import textwrap

import pytest
import torch

from raft.data import prepare_dataset
from raft.files import write_rows
from raft.models import build_tiny_model
from raft.synthetic import generate_rows
from raft.train import TrainConfig, train
from raft.train import trainer as trainer_module
from raft.train.memory import (
    Estimate,
    ModelShape,
    estimate_peak,
    memory_warning,
    saved_activation_bytes,
)
from tests.helpers import repo_env

GB = 2**30


def _step_bytes(model_dir, checkpointing: bool) -> int:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    ids = torch.randint(3, 200, (2, 96))
    mask = torch.ones_like(ids)
    mask[1, 80:] = 0  # a padded row, as a real batch has

    def step() -> torch.Tensor:
        return model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits.float().pow(2).mean()

    return saved_activation_bytes(step)


def test_checkpointing_lowers_the_activation_memory_of_a_step(tmp_path):
    model = build_tiny_model(tmp_path / "tiny", hidden=128)
    plain, checkpointed = _step_bytes(model, False), _step_bytes(model, True)
    print(f"saved for backward: {plain / 2**20:.2f} MiB plain, {checkpointed / 2**20:.2f} MiB checkpointed")
    assert plain > 0 and checkpointed > 0
    assert checkpointed < plain / 3  # the layers' inner tensors are recomputed, not kept


SMOL = ModelShape(params=134_479_872, layers=30, hidden=576, intermediate=1536, vocab=49_152)


def test_the_estimate_is_of_the_longest_batch_that_fits_and_checkpointing_cuts_it():
    lengths = [2100, 2029, 1993, 1992, 1985, 300, 200]
    plain = estimate_peak(SMOL, lengths, 4, 2048, checkpointing=False)
    ckpt = estimate_peak(SMOL, lengths, 4, 2048, checkpointing=True)
    assert (plain.batch, plain.tokens) == (4, 2029)  # 2,100 tokens do not fit max length: left out
    # the figures measured on MT Bench's longest batch (README): 14,233 MiB plain, under 3 GB with checkpointing
    assert 12 * GB < plain.total < 16 * GB
    assert ckpt.total < 3 * GB
    assert plain.parts["weights"] == ckpt.parts["weights"] == SMOL.params * 4
    full_logits = estimate_peak(SMOL, lengths, 4, 2048, checkpointing=True, loss="ce")
    assert full_logits.parts["logits and loss"] == 3 * 4 * 2029 * SMOL.vocab * 4
    # with the head at the labelled positions only: the union of the 4 rows' targets, not the prompt
    labelled = [60, 50, 40, 30, 20, 10, 5]
    at_labels = estimate_peak(SMOL, lengths, 4, 2048, checkpointing=True, loss="ce", labelled=labelled)
    assert at_labels.parts["logits and loss"] == 3 * 4 * (50 + 40 + 30 + 20) * SMOL.vocab * 4
    shorter = estimate_peak(SMOL, lengths, 4, 512, checkpointing=False)
    assert (shorter.tokens, shorter.batch) == (300, 2) and shorter.total < plain.total / 5


def test_the_warning_fires_only_when_the_estimate_exceeds_free_memory():
    estimate = Estimate({"weights": 2 * GB, "activations": 6 * GB}, batch=4, tokens=2029)
    assert memory_warning(estimate, 9 * GB, checkpointing=False) is None
    assert memory_warning(estimate, None, checkpointing=False) is None  # unknown: say nothing
    warning = memory_warning(estimate, 7 * GB, checkpointing=False, where="the GPU")
    assert warning.startswith("Estimated peak memory 8.0 GB exceeds the 7.0 GB free on the GPU")
    assert "gradient checkpointing" in warning and "max_length" in warning and "batch_size" in warning
    already = memory_warning(estimate, 7 * GB, checkpointing=True)
    assert "checkpointing" not in already and "max_length" in already
    small = memory_warning(Estimate({"weights": 8 * GB}, batch=1, tokens=100), GB, checkpointing=True)
    assert "smaller model" in small


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rows = write_rows(root / "rows.jsonl", generate_rows(40, seed=5))
    prepare_dataset(rows, root / "score", seed=0)
    return root / "score"


def test_raft_train_prints_the_estimate_warns_and_keeps_the_heap_small(dataset, tmp_path, monkeypatch, capsys):
    """Fails on the main before issue 26: no estimate, no warning, glibc's adaptive heap."""
    calls = []
    monkeypatch.setattr(trainer_module, "keep_heap_small", lambda: calls.append(1) or True)
    monkeypatch.setattr(trainer_module, "free_memory", lambda device: 1024)  # 1 KiB free: must warn
    model = build_tiny_model(tmp_path / "tiny")
    config = TrainConfig(
        data=str(dataset), output_dir=str(tmp_path / "run"), base_model=str(model), max_steps=1, device="cpu"
    )
    train(config)
    out = capsys.readouterr().out
    assert calls == [1]
    assert "estimated peak memory" in out and "on the longest batch (4 x " in out
    assert "WARNING: Estimated peak memory" in out and "turn on gradient checkpointing" in out


def test_freed_temporaries_leave_the_process_with_the_heap_kept_small():
    """Layer-like traffic (a few MB of temporaries freed, 1 MB kept per layer): with glibc's
    adaptive threshold the freed blocks stay resident; kept small, the growth is what is live."""
    script = textwrap.dedent(
        """
        import sys, torch
        from pathlib import Path
        from raft.train.memory import keep_heap_small
        def rss():
            line = [x for x in Path('/proc/self/status').read_text().splitlines() if x.startswith('VmRSS')][0]
            return int(line.split()[1]) // 1024
        if sys.argv[1] == 'small':
            assert keep_heap_small()
        kept, base = [], rss()
        for layer in range(30):
            temps = [torch.ones(256 * 1024 * k + 4096 * layer) for k in (3, 4, 5, 2, 6)]
            kept.append(torch.ones(256 * 1024))
            del temps
        print(rss() - base)
        """
    )
    growth = {}
    for heap in ("small", "default"):
        done = subprocess.run(
            [sys.executable, "-c", script, heap], capture_output=True, text=True, env=repo_env(), check=True
        )
        growth[heap] = int(done.stdout.split()[-1])
    print("RSS growth MiB for 30 MiB kept:", growth)
    assert growth["small"] <= 30 + 8
    assert growth["default"] > growth["small"] + 15
