"""Batch scoring at scale: single-pass CoT-RAIL equals two-pass, bucketing changes nothing,
resume after kill -9, two processes equal one, streaming of a large input, context overflow."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from raft.batch import score_file
from raft.data import prepare_dataset, read_jsonl
from raft.files import write_rows
from raft.judge import Judge, Judgment
from raft.models import build_tiny_model
from raft.synthetic import generate_rows
from raft.train import TrainConfig, train
from tests.helpers import repo_env, torchrun


@pytest.fixture(scope="module")
def feedback_judge(tmp_path_factory):
    """The tiny model trained briefly on feedback targets, so that it writes '[RESULT] k' itself."""
    root = tmp_path_factory.mktemp("fb")
    rows = write_rows(root / "rows.jsonl", generate_rows(120, seed=6))
    prepare_dataset(rows, root / "ds", mode="feedback")
    base = build_tiny_model(root / "tiny128", hidden=128)
    run = train(
        TrainConfig(
            data=str(root / "ds"),
            output_dir=str(root / "run"),
            base_model=str(base),
            loss="cot_raft",
            lora=False,
            max_steps=60,
            batch_size=8,
            learning_rate=1e-3,
            eval_steps=1000,
            save_steps=1000,
            device="cpu",
        )
    )
    return Judge.load(run, device="cpu")


@pytest.mark.parametrize("max_new_tokens", [48, 6])
def test_single_pass_equals_two_pass(feedback_judge, tiny_judge, rows, max_new_tokens):
    for judge in (feedback_judge, tiny_judge):
        one = judge.score(rows[:6], mode="feedback", max_new_tokens=max_new_tokens, batch_size=3)
        two = judge.score(rows[:6], mode="feedback", max_new_tokens=max_new_tokens, batch_size=3, single_pass=False)
        np.testing.assert_allclose([r.expected_score for r in one], [r.expected_score for r in two], atol=1e-4)
        np.testing.assert_allclose([r.probs for r in one], [r.probs for r in two], atol=1e-4)
    seqs = [feedback_judge.encode(feedback_judge.prompt(r, "feedback")) for r in rows[:4]]
    written = [s.cue_written for group in feedback_judge.feedback_samples(seqs, 48, 1, 1.0, 0) for s in group]
    assert any(written), "the trained judge should write the cue itself (the logits-of-generation path)"
    assert not any(s.cue_written for group in tiny_judge.feedback_samples(seqs, 48, 1, 1.0, 0) for s in group)


def test_bucketing_and_order_do_not_change_scores(tiny_judge):
    rows = generate_rows(24, seed=12, filler=(0, 12))
    alone = [tiny_judge.score([r])[0].expected_score for r in rows]
    bucketed = tiny_judge.score(rows, batch_size=5)
    reordered = tiny_judge.score(rows[::-1], batch_size=7)[::-1]
    np.testing.assert_allclose([r.expected_score for r in bucketed], alone, atol=1e-5)
    np.testing.assert_allclose([r.expected_score for r in reordered], alone, atol=1e-5)
    lengths = [len(tiny_judge.encode(tiny_judge.render(r))) for r in rows]
    tiny_judge.score(rows, batch_size=4)
    assert tiny_judge.padding["real_tokens"] == sum(lengths)
    assert tiny_judge.padding["padded_tokens"] < 0.1 * sum(lengths)


def _score_cmd(inp, out, model, *extra):
    return [
        sys.executable,
        "-m",
        "raft",
        "score",
        "--input",
        str(inp),
        "--out",
        str(out),
        "--model",
        str(model),
        "--device",
        "cpu",
        *map(str, extra),
    ]


def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path, tiny_model):
    inp = write_rows(tmp_path / "in.jsonl", generate_rows(60, seed=1))
    out = tmp_path / "out.jsonl"
    env = repo_env()
    proc = subprocess.Popen(
        _score_cmd(inp, out, tiny_model, "--chunk-rows", 2, "--batch-size", 2),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 6):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(read_jsonl(out))
    assert 6 <= partial < 60
    done = subprocess.run(_score_cmd(inp, out, tiny_model), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["skipped"] + summary["scored"] == 60
    rows = [r["row"] for r in read_jsonl(out)]
    assert rows == list(range(1, 61))  # none lost, none twice, in input order
    assert all(r["error"] is None for r in read_jsonl(out))


def test_two_processes_equal_one(tmp_path, tiny_model):
    inp = write_rows(tmp_path / "in.jsonl", generate_rows(21, seed=2))
    env = repo_env()
    single = subprocess.run(
        _score_cmd(inp, tmp_path / "one.jsonl", tiny_model), env=env, capture_output=True, text=True
    )
    assert single.returncode == 0, single.stderr
    cmd = torchrun("-m", "raft", *_score_cmd(inp, tmp_path / "two.jsonl", tiny_model)[3:])
    double = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]
    assert json.loads(double.stdout.strip().splitlines()[-1])["scored"] == 21
    one, two = read_jsonl(tmp_path / "one.jsonl"), read_jsonl(tmp_path / "two.jsonl")
    assert [r["row"] for r in two] == list(range(1, 22))
    assert not list(tmp_path.glob("two.jsonl.shard-*"))
    for a, b in zip(one, two):
        assert a["expected_score"] == pytest.approx(b["expected_score"], abs=1e-5)
        assert {k: v for k, v in a.items() if k not in ("expected_score", "probs", "score_mass")} == {
            k: v for k, v in b.items() if k not in ("expected_score", "probs", "score_mass")
        }


class CountingJudge:
    """Stands in for a model: scores instantly, so that only the streaming is measured."""

    scale = (1, 5)

    def score(self, items, **kwargs):
        return [Judgment(expected_score=float(len(i["orig_response"]) % 5 + 1)) for i in items]


def _peak_rss_mib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024


def test_a_large_input_streams_without_being_held_in_memory(tmp_path):
    inp = tmp_path / "big.jsonl"
    base = generate_rows(1, seed=0)[0]
    with inp.open("w") as f:
        for i in range(100_000):
            f.write(json.dumps({**base, "orig_response": f"answer number {i} " + "words " * (i % 7)}) + "\n")
    size_mib = inp.stat().st_size / 2**20
    Path("/proc/self/clear_refs").write_text("5")
    before = _peak_rss_mib()
    summary = score_file(CountingJudge(), inp, tmp_path / "out.jsonl", chunk_rows=512)
    grown = _peak_rss_mib() - before
    print(f"100,000 rows ({size_mib:.0f} MiB of jsonl): peak RSS grew by {grown:.1f} MiB while scoring")
    assert summary["scored"] == 100_000
    assert grown < max(60.0, size_mib)  # the whole file as Python dicts would take several times its size


def test_context_overflow_is_cut_and_flagged_or_refused(tmp_path, rows):
    judge = Judge.load(build_tiny_model(tmp_path / "short", max_positions=400), device="cpu")
    long_row = {**rows[0], "orig_response": " ".join(["many words here"] * 200)}
    cut, fine = judge.score([long_row, rows[1]])
    assert cut.error is None and "cut in the middle" in cut.flag and fine.flag is None
    refused, fine = judge.score([long_row, rows[1]], overflow="refuse")
    assert "exceeds the context of 400" in refused.error and "orig_response" in refused.error
    assert fine.error is None and refused.expected_score is None


def test_an_over_long_multibyte_response_is_cut_into_valid_text(tmp_path, rows):
    judge = Judge.load(build_tiny_model(tmp_path / "short", max_positions=400), device="cpu")
    long_row = {**rows[0], "orig_response": "Début " + "naïve café 😀 日本語 " * 120 + " Fin."}
    [j] = judge.score([long_row])
    assert j.error is None and "cut in the middle" in j.flag
    ids, flag = judge._fit(long_row, "score_only", reserve=8, overflow="truncate")
    text = judge.tokenizer.decode(ids)
    assert "cut in the middle" in flag and len(ids) + 8 <= 400
    assert "\ufffd" not in text and "Début naïve" in text and "[...]" in text and text.count(" Fin.") == 1
