"""The command line speaks and starts fast: `--help` imports no torch, `train --help` lists the
config keys, `train` shows step k/n with the loss and the time left, and the default model is
reachable by the short name the README uses (issue 21 item 9)."""

import json
import subprocess
import sys

import pytest

from raft.cli import main
from raft.files import write_rows
from raft.synthetic import generate_rows
from tests.helpers import repo_env


def test_help_imports_neither_torch_nor_scipy_nor_transformers():
    code = (
        "import sys\nfrom raft.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'scipy', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=repo_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "train" in done.stdout and "score" in done.stdout


def test_train_help_lists_every_config_key_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for key in ("data (default", "output_dir", "lora_r (default 16)", "max_steps", "eval_steps", "learning_rate"):
        assert key in text
    assert "Hub id or folder; None means the default model" in text  # what each key means, from the class


def test_train_shows_step_k_of_n_the_loss_and_the_time_left(tmp_path, tiny_model, capsys):
    from raft.data import prepare_dataset

    prepare_dataset(write_rows(tmp_path / "rows.jsonl", generate_rows(16, seed=2)), tmp_path / "ds")
    argv = ["train", "--data", str(tmp_path / "ds"), "--output_dir", str(tmp_path / "run"), "--base_model"]
    argv += [
        str(tiny_model),
        "--max_steps",
        "3",
        "--eval_steps",
        "100",
        "--eval_rows",
        "2",
        "--batch_size",
        "4",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    steps = [line for line in err.splitlines() if line.startswith("step ")]
    assert [s.split(" · ")[0] for s in steps] == ["step 1/3", "step 2/3", "step 3/3"]
    assert all(" · loss " in s and "s/step" in s and "time left" in s for s in steps)
    assert "{'loss'" not in err  # transformers' dict lines gave way to the bar


def test_the_default_model_answers_to_its_short_name(default_model, tmp_path):
    from raft.models import default_model_dir, resolve_model

    assert resolve_model("SmolLM2-135M-Instruct")[0] == str(default_model_dir())
    rows = write_rows(tmp_path / "rows.jsonl", generate_rows(8, seed=1))
    assert (
        main(["prepare", "--source", str(rows), "--out", str(tmp_path / "ds"), "--tokenizer", "SmolLM2-135M-Instruct"])
        == 0
    )
    stats = json.loads((tmp_path / "ds" / "stats.json").read_text())
    assert "token" in json.dumps(stats)
