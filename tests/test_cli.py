import json
import subprocess
import sys

import pytest

from raft.cli import main
from raft.data import read_jsonl
from raft.files import write_rows


def run(*args):
    return subprocess.run([sys.executable, "-m", "raft", *map(str, args)], capture_output=True, text=True)


def test_every_command_has_help():
    for args in (["--help"], ["prepare", "--help"], ["score", "--help"], ["eval", "--help"], ["models", "--help"]):
        assert run(*args).returncode == 0


def test_prepare_score_eval_end_to_end_on_the_tiny_model(tmp_path, rows_file, tiny_model, capsys):
    assert (
        main(
            [
                "prepare",
                "--source",
                str(rows_file),
                "--mode",
                "feedback",
                "--out",
                str(tmp_path / "ds"),
                "--tokenizer",
                str(tiny_model),
                "--validation-ratio",
                "0.25",
                "--num-samples",
                "12",
            ]
        )
        == 0
    )
    stats = json.loads(capsys.readouterr().out)
    assert stats["train"] == 9 and stats["validation"] == 3 and "token_lengths" in stats

    out = tmp_path / "scored.jsonl"
    assert (
        main(
            [
                "score",
                "--input",
                str(rows_file),
                "--out",
                str(out),
                "--model",
                str(tiny_model),
                "--batch-size",
                "4",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "loading the judge" in capsys.readouterr().err  # the slow phase names itself before the bar
    scored = read_jsonl(out)
    assert len(scored) == 20 and [r["row"] for r in scored] == list(range(1, 21))
    for r in scored:
        assert {"orig_response", "expected_score", "mode_score", "probs", "score_mass", "feedback", "error"} <= set(r)
        assert r["error"] is None and len(r["probs"]) == 5
    capsys.readouterr()
    assert main(["eval", "--input", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 20 and {"pearson", "spearman", "kendall", "rmse", "mae", "exact"} <= set(metrics)


def test_rerun_resumes_without_rescoring(tmp_path, rows_file, tiny_model, capsys):
    out = tmp_path / "scored.jsonl"
    args = ["score", "--input", str(rows_file), "--out", str(out), "--model", str(tiny_model), "--device", "cpu"]
    assert main(args) == 0
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:7]) + "\n" + lines[7][:25])  # a crash mid-write left a torn line
    capsys.readouterr()
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"scored": 13, "skipped": 7, "errors": 0}
    again = read_jsonl(out)
    assert sorted(r["row"] for r in again) == list(range(1, 21))
    before = [json.loads(x)["expected_score"] for x in lines]
    assert [r["expected_score"] for r in sorted(again, key=lambda r: r["row"])] == pytest.approx(before, abs=1e-5)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["scored"] == 0


def test_bad_rows_are_reported_on_their_row(tmp_path, rows, tiny_model):
    rows[2]["orig_response"] = ""
    path = write_rows(tmp_path / "in.jsonl", rows[:5])
    with path.open("a") as f:
        f.write("{broken\n")
    out = tmp_path / "o.jsonl"
    assert main(["score", "--input", str(path), "--out", str(out), "--model", str(tiny_model), "--device", "cpu"]) == 0
    errors = {r["row"]: r["error"] for r in read_jsonl(out)}
    assert errors[3] == f"{path}: row 3: field 'orig_response': empty"
    assert errors[6].startswith(f"{path}: row 6: malformed JSON line")
    assert sum(e is None for e in errors.values()) == 4


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "missing.jsonl: file not found"),
        (lambda d: (d / "missing.jsonl").write_text(""), "missing.jsonl: the file holds no rows"),
    ],
)
def test_unusable_input_is_one_line_and_nonzero(tmp_path, tiny_model, setup, message):
    setup(tmp_path)
    done = run("score", "--input", tmp_path / "missing.jsonl", "--out", tmp_path / "o.jsonl", "--model", tiny_model)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


def test_unknown_column_is_refused(tmp_path, rows_file, tiny_model):
    done = run(
        "score",
        "--input",
        rows_file,
        "--out",
        tmp_path / "o.jsonl",
        "--model",
        tiny_model,
        "--columns",
        "orig_response=answer",
    )
    assert done.returncode == 2
    assert "field 'orig_response': column 'answer' not found" in done.stderr


def test_prepare_with_no_usable_rows_fails(tmp_path, rows):
    for r in rows:
        r["orig_score"] = "9"
    path = write_rows(tmp_path / "bad.csv", rows)
    done = run("prepare", "--source", path, "--out", tmp_path / "ds")
    assert done.returncode == 2 and "no usable rows" in done.stderr and "row 1: field 'orig_score'" in done.stderr


def test_synth_writes_rows(tmp_path):
    done = run("synth", "--out", tmp_path / "s.csv", "--n", 7, "--noise", "0.5")
    assert done.returncode == 0 and len(read_jsonl_csv(tmp_path / "s.csv")) == 7


def read_jsonl_csv(path):
    from raft.files import read_records

    return [r.data for r in read_records(path)]


def test_models_tiny_writes_a_loadable_model(tmp_path):
    done = run("models", "tiny", tmp_path / "t")
    assert done.returncode == 0 and (tmp_path / "t" / "config.json").is_file()
