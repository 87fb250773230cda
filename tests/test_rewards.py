"""The judge as a TRL reward: the callable's signature, columns, scalings, fallback, and two
GRPOTrainer steps on a tiny policy with the tiny judge as its reward."""

import warnings

import numpy as np
import pytest

from raft.calibration import Calibration
from raft.rewards import JudgeReward, message_text
from raft.rubrics import Rubric
from raft.synthetic import generate_rows

RUBRIC = {k: v for k, v in generate_rows(1, seed=0)[0].items() if k == "orig_criteria" or k.startswith("orig_score")}
FIXED = Rubric(RUBRIC["orig_criteria"], tuple(RUBRIC[f"orig_score{k}_description"] for k in range(1, 6)))


@pytest.mark.parametrize(
    "value, role, text",
    [
        ("plain text", "user", "plain text"),
        ([{"role": "system", "content": "be brief"}, {"role": "user", "content": "Q?"}], "user", "Q?"),
        ([{"role": "assistant", "content": "A."}], "assistant", "A."),
        ([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "user", "ab"),
        ([], "user", ""),
    ],
)
def test_message_text_reads_strings_and_conversations(value, role, text):
    assert message_text(value, role) == text


def test_the_reward_is_the_judges_expected_score_of_each_completion(tiny_judge, rows):
    reward = JudgeReward(tiny_judge, batch_size=3)
    prompts = [r["orig_instruction"] for r in rows[:4]]
    completions = [[{"role": "assistant", "content": r["orig_response"]}] for r in rows[:4]]
    columns = {k: [r[k] for r in rows[:4]] for k in rows[0] if k != "orig_instruction" and k != "orig_response"}
    got = reward(prompts=prompts, completions=completions, completion_ids=None, trainer_state=None, **columns)
    want = [j.expected_score for j in tiny_judge.score(rows[:4])]
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert all(isinstance(x, float) for x in got)


def test_scalings_lower_bound_and_a_fixed_rubric(tiny_judge, rows):
    prompts, completions = [rows[0]["orig_instruction"]], [rows[0]["orig_response"]]
    item = {"orig_instruction": prompts[0], "orig_response": completions[0], **RUBRIC}
    [j] = tiny_judge.score([item])
    assert JudgeReward(tiny_judge, FIXED)(prompts, completions) == pytest.approx([j.expected_score])
    assert JudgeReward(tiny_judge, FIXED, scaling="unit")(prompts, completions) == pytest.approx(
        [(j.expected_score - 1) / 4]
    )
    assert JudgeReward(tiny_judge, FIXED, scaling="centered")(prompts, completions) == pytest.approx(
        [(j.expected_score - 3) / 2]
    )
    with pytest.raises(ValueError, match="calibrated judge"):
        JudgeReward(tiny_judge, lower_bound=True)
    calibrated = tiny_judge.with_calibration(Calibration(1.0, 0.5, 0.9, [1, 5]))
    [c] = calibrated.score([item])
    assert JudgeReward(calibrated, FIXED, lower_bound=True)(prompts, completions) == pytest.approx([c.interval[0]])


def test_an_unscorable_row_gets_the_fallback_and_a_warning_never_an_exception(tiny_judge, rows):
    prompts = [rows[0]["orig_instruction"], rows[1]["orig_instruction"], "Q"]
    completions = [rows[0]["orig_response"], "", rows[2]["orig_response"]]  # an empty completion; no rubric at all
    metrics = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = JudgeReward(tiny_judge, scaling="unit", fallback=-1.0)(
            prompts,
            completions,
            orig_criteria=[RUBRIC["orig_criteria"]] * 2 + [None],
            **{k: [v] * 3 for k, v in RUBRIC.items() if k != "orig_criteria"},
            log_metric=lambda name, value: metrics.update({name: value}),
        )
    assert got[1] == got[2] == -1.0 and 0.0 <= got[0] <= 1.0
    messages = [str(w.message) for w in caught]
    assert any("row 1 not scored" in m and "orig_response" in m for m in messages)
    assert any("row 2 not scored" in m for m in messages)
    assert metrics == {"judge_reward/unscored": pytest.approx(2 / 3)}
    assert JudgeReward(tiny_judge).fallback == 1.0 and JudgeReward(tiny_judge, scaling="centered").fallback == -1.0


@pytest.mark.slow
def test_grpo_trains_two_steps_with_the_judge_as_reward(tiny_judge, tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from raft.models import build_tiny_model

    policy = build_tiny_model(tmp_path / "policy", seed=3)
    rows = generate_rows(4, seed=9)
    dataset = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": r["orig_instruction"]}], **RUBRIC} for r in rows]
    )
    reward = JudgeReward(tiny_judge, scaling="unit")
    seen = []

    def judge_reward(prompts, completions, **columns):
        out = reward(prompts, completions, **columns)
        seen.append((completions, out))
        return out

    config = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        max_steps=2,
        learning_rate=1e-4,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        seed=0,
    )
    trainer = GRPOTrainer(model=str(policy), reward_funcs=[judge_reward], args=config, train_dataset=dataset)
    trainer.train()
    assert trainer.state.global_step == 2
    assert len(seen) == 2 and all(len(out) == 4 and all(0.0 <= x <= 1.0 for x in out) for _, out in seen)
    logged = [h["rewards/judge_reward/mean"] for h in trainer.state.log_history if "rewards/judge_reward/mean" in h]
    assert logged == pytest.approx([float(np.mean(out)) for _, out in seen], abs=1e-5)
