"""Fractional gold (a mean of raters, 4.333) is kept by prepare and trained on as a float by RAFT;
CE gets one example per rater score, else the rounded gold; a prepare that rejects >5% warns."""

import json
import subprocess
import sys

import pytest
import torch

from raft.data import prepare_dataset, read_jsonl, rejection_warning
from raft.files import write_rows
from raft.gold import ce_examples, nearest_score
from raft.judge import Judge
from raft.loss import expected_score, make_loss
from raft.train import TrainConfig, train
from raft.train.trainer import Collator, tokenize
from tests.helpers import REPO, repo_env

PROMPT = (
    "###Task Description:\nGrade it.\n\n###The instruction to evaluate:\n{instruction}\n\n"
    "###Response to evaluate:\n{response}\n\n###Reference Answer (Score 5):\nHello!\n\n"
    "###Score Rubrics:\n[Is it friendly?]\nScore 1: Rude.\nScore 2: Cold.\nScore 3: Fine.\n"
    "Score 4: Warm.\nScore 5: Delightful.\n\n###Feedback: "
)


def rendered_rows(n: int, raters: list[int]) -> list[dict]:
    """Rows as MT Bench ships them: the whole rendered prompt, and three GPT-4 scores."""
    return [
        {"idx": i, "instruction": PROMPT.format(instruction=f"Say hi #{i}.", response=f"Hi {i}!"), "gpt4_score": raters}
        for i in range(n)
    ]


@pytest.fixture
def fractional(tmp_path):
    path = write_rows(tmp_path / "bench.jsonl", rendered_rows(8, [4, 4, 5]))
    stats = prepare_dataset(path, tmp_path / "ds")
    return tmp_path / "ds", stats


def test_a_rendered_row_with_mean_gold_4_333_is_kept_with_its_float_gold(fractional):
    folder, stats = fractional
    assert stats["rows_read"] == 8 and stats["rows_kept"] == 8 and stats["rows_rejected"] == 0
    assert stats["fractional_gold"] == 8 and stats["score_histogram"] == {"4": 8}
    example = read_jsonl(folder / "train.jsonl")[0]
    assert example["gold"] == pytest.approx(13 / 3) and example["score"] == 4
    assert example["item"]["rater_scores"] == [4, 4, 5]
    assert example["target"].endswith("[RESULT] 4")


def test_raft_loss_on_a_batch_uses_the_float_gold(fractional, tiny_judge):
    folder, _ = fractional
    rows = read_jsonl(folder / "train.jsonl")[:3]
    tok, st = tiny_judge.tokenizer, tiny_judge.score_tokens
    batch = Collator(tok.pad_token_id, True)([tokenize(r, tok, st, score_only=True) for r in rows])
    gold, labels = batch.pop("gold"), batch.pop("labels")
    assert gold.tolist() == pytest.approx([13 / 3] * 3)
    with torch.no_grad():
        out = tiny_judge.model(**batch)
    by_hand = ((expected_score(out.logits[:, 0], st.ids, st.values) - 13 / 3) ** 2).mean()
    loss = make_loss("raft", st.ids, st.values)
    assert loss(out, labels, gold=gold).item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert loss(out, labels).item() != pytest.approx(by_hand.item(), rel=1e-3)  # the token (4) is not the target


def _config(folder, tmp_path, model, **kw) -> TrainConfig:
    base = dict(
        data=str(folder),
        output_dir=str(tmp_path / "run"),
        base_model=str(model),
        max_steps=60,
        batch_size=4,
        learning_rate=1e-2,
        lora=False,
        lr_scheduler="constant",
        warmup_ratio=0.0,
        save_steps=1000,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


def test_the_trainer_step_loss_is_the_error_against_the_float_gold(fractional, tiny_model, tiny_judge, tmp_path):
    folder, _ = fractional
    run = train(_config(folder, tmp_path, tiny_model, max_steps=1, batch_size=8))
    first = read_jsonl(run / "progress.jsonl")[0]  # the loss of step 1 is taken before the update
    tok, st = tiny_judge.tokenizer, tiny_judge.score_tokens
    rows = read_jsonl(folder / "train.jsonl")
    batch = Collator(tok.pad_token_id, True)([tokenize(r, tok, st, score_only=True) for r in rows])
    with torch.no_grad():
        logits = tiny_judge.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=batch["logits_to_keep"]
        ).logits
    by_hand = ((expected_score(logits[:, 0], st.ids, st.values) - 13 / 3) ** 2).mean().item()
    assert first["score_loss"] == pytest.approx(by_hand, rel=1e-4)


@pytest.mark.slow
def test_raft_training_on_a_4_333_gold_learns_4_333_not_4(fractional, tiny_model, tmp_path):
    folder, _ = fractional
    judge = Judge.load(train(_config(folder, tmp_path, tiny_model)), device="cpu")
    item = read_jsonl(folder / "train.jsonl")[0]["item"]
    predicted = judge.score([item], mode="score_only")[0].expected_score
    assert predicted == pytest.approx(13 / 3, abs=0.08)


def test_ce_gets_one_example_per_rater_score_else_the_rounded_gold():
    base = {"mode": "score_only", "prompt": "p", "target_prefix": ""}
    examples = [
        {**base, "score": 4, "gold": 13 / 3, "item": {"rater_scores": [4, 4, 5]}},
        {**base, "score": 4, "gold": 3.5, "item": {}},
        {**base, "score": 2, "gold": 2, "item": {}},
    ]
    out, counts = ce_examples(examples)
    assert [e["score"] for e in out] == [4, 4, 5, 4, 2]
    assert out[2]["target"] == "[RESULT] 5" and out[2]["gold"] == 5
    assert counts == {"expanded": 1, "rounded": 1}


@pytest.mark.parametrize("gold, score", [(4.333, 4), (3.5, 4), (2.49, 2), (1, 1), (4.667, 5)])
def test_nearest_score(gold, score):
    assert nearest_score(gold) == score


def test_rater_scores_that_do_not_average_to_the_gold_are_dropped(tmp_path):
    rows = rendered_rows(2, [4, 4, 5])
    rows[0]["orig_score"] = 3  # an explicit gold wins; the raters' list no longer explains it
    stats = prepare_dataset(write_rows(tmp_path / "b.jsonl", rows), tmp_path / "ds")
    examples = {e["gold"]: e for e in read_jsonl(tmp_path / "ds" / "train.jsonl")}
    assert stats["rows_kept"] == 2 and "rater_scores" not in examples[3]["item"]


def test_a_prepare_rejecting_more_than_5_percent_ends_with_one_warning_line(tmp_path):
    rows = rendered_rows(20, [4, 4, 5])
    for row in rows[:3]:
        row["gpt4_score"] = [7, 7, 7]
    for row in rows[3:4]:
        row["instruction"] = row["instruction"].replace("###Response to evaluate:", "###Answer:")
    path = write_rows(tmp_path / "b.jsonl", rows)
    result = subprocess.run(
        [sys.executable, "-m", "raft", "prepare", "--source", str(path), "--out", str(tmp_path / "ds")],
        capture_output=True,
        text=True,
        env=repo_env(),
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows_rejected"] == 4
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("warning: 4 of 20 rows rejected (20%); main reason: field 'orig_score': score")
    assert "(3 rows with 'orig_score' wrong)" in last


def test_no_warning_at_5_percent_or_less():
    assert rejection_warning({"rows_read": 20, "rows_rejected": 1, "rejected_reasons": {"None: x": 1}}) is None
    line = rejection_warning({"rows_read": 10, "rows_rejected": 2, "rejected_reasons": {"None: malformed JSON": 2}})
    assert line == "warning: 2 of 10 rows rejected (20%); main reason: malformed JSON (2 rows); see rejected.jsonl"


def test_the_cli_says_a_rendered_file_is_parsed_not_that_instruction_is_the_question(tmp_path, capsys):
    from raft.cli import recognised_columns

    path = write_rows(tmp_path / "b.jsonl", rendered_rows(3, [4, 4, 5]))
    assert recognised_columns(str(path), None, (1, 5)) == {}
    said = capsys.readouterr().err
    assert "orig_instruction=instruction" not in said
    assert "rendered grading prompts in 'instruction'" in said
