"""Pairwise judging (issue 25): the order-combined P(A) against a hand computation from the logits,
exact symmetry under swapping A and B, the pairwise RAFT loss and its gradient, pairs from an
absolute file, pair columns, and a tiny-model prepare -> train -> score -> report run on pairs."""

import json
import random

import numpy as np
import pytest
import torch

from raft.cli import main
from raft.columns import guess_pair_mapping, is_pairs
from raft.data import read_dataset_manifest, read_jsonl
from raft.files import write_rows
from raft.loss import IGNORE, ce_loss, make_loss, pair_cot_raft_loss, pair_raft_loss
from raft.pair_report import pair_metrics, reliability_bins
from raft.pairs import build_pair_dataset, iter_pairs, pairs_from_scores, parse_preference
from raft.pairwise import combine, position_bias, swapped, win_probability
from raft.prompts import JudgePrompt, apply_chat, builtin_templates, load_template
from raft.scores import find_pair_tokens


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny random Llama whose tokenizer writes ' A' and ' B' as one token each (as SmolLM2's does)."""
    from raft.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_pairs") / "model", pairwise=True)


@pytest.fixture(scope="module")
def tiny_judge(tiny_model):
    from raft.judge import Judge

    return Judge.load(str(tiny_model), device="cpu")


PAIR = {
    "orig_instruction": "What is 2 + 2?",
    "orig_response_A": "2 + 2 is 4.",
    "orig_response_B": "It is 5, roughly, I believe.",
    "orig_criteria": "Is the answer correct?",
}


# --- the probability that A wins --------------------------------------------------------------


def test_win_probability_is_renormalised_over_a_and_b_with_the_raw_mass():
    p, mass = win_probability([np.log(0.2), np.log(0.6)])
    assert p == pytest.approx(0.25) and mass == pytest.approx(0.8)


def test_combined_probability_and_gap_by_hand():
    assert combine(0.8, 0.3) == pytest.approx((0.8 + 1 - 0.3) / 2)
    assert combine(0.5, 0.5) == 0.5
    bias = position_bias([_judged(0.8, 0.3), _judged(0.6, 0.6)])
    assert bias["position_bias"] == pytest.approx(((0.8 + 0.3 - 1) + (0.6 + 0.6 - 1)) / 2)
    assert bias["position_consistency"] == 0.5  # the second pair's orders disagree


def _judged(p_ab, p_ba):
    from raft.pairwise import PairJudgment

    return PairJudgment(p_a=combine(p_ab, p_ba), p_ab=p_ab, p_ba=p_ba)


def test_combine_is_exactly_antisymmetric():
    rng = random.Random(0)
    for _ in range(20000):
        a, b = rng.random(), rng.random()
        if rng.random() < 0.1:
            a = b + rng.choice([1e-17, -1e-17, 1e-12, 0.0])
            a = min(max(a, 0.0), 1.0)
        assert combine(b, a) == 1.0 - combine(a, b)


def test_order_combined_probability_equals_a_hand_computation_from_the_logits(tiny_judge):
    judge = tiny_judge
    [result] = judge.compare([PAIR])
    tokens = find_pair_tokens(judge.tokenizer)
    template = JudgePrompt.resolve(None, "score_only", pairwise=True).for_item(PAIR)
    reads = []
    for item in (PAIR, swapped(PAIR)):
        text = apply_chat(judge.tokenizer, template.fill(item)) + tokens.cue
        ids = torch.tensor([judge.tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            logits = judge.model(input_ids=ids).logits[0, -1].double()
        probs = torch.softmax(logits, -1)
        p_a, p_b = probs[tokens.ids[0]].item(), probs[tokens.ids[1]].item()
        reads.append((p_a / (p_a + p_b), p_a + p_b))
    (p_ab, mass_ab), (p_ba, mass_ba) = reads
    assert result.p_ab == pytest.approx(p_ab, abs=1e-5) and result.p_ba == pytest.approx(p_ba, abs=1e-5)
    assert result.mass_ab == pytest.approx(mass_ab, rel=1e-4) and result.mass_ba == pytest.approx(mass_ba, rel=1e-4)
    assert result.p_a == pytest.approx((p_ab + 1 - p_ba) / 2, abs=1e-5)
    assert result.gap == pytest.approx(p_ab + p_ba - 1, abs=1e-5)


def test_swapping_a_and_b_gives_exactly_one_minus_p(tiny_judge):
    other = {**PAIR, "orig_response_B": "Four.", "orig_reference_answer": "4"}
    first = tiny_judge.compare([PAIR, other])
    second = tiny_judge.compare([swapped(other), swapped(PAIR)])
    assert second[1].p_a == 1.0 - first[0].p_a
    assert second[0].p_a == 1.0 - first[1].p_a
    assert (second[1].p_ab, second[1].p_ba) == (first[0].p_ba, first[0].p_ab)


def test_one_order_and_invalid_pairs(tiny_judge):
    bad = {**PAIR, "orig_response_B": " "}
    one, broken = tiny_judge.compare([PAIR, bad], both_orders=False)
    assert one.p_ba is None and one.p_a == one.p_ab
    assert broken.p_a is None and "orig_response_B" in broken.error


def test_feedback_mode_reads_the_verdict_after_the_generated_feedback(tiny_judge):
    [result] = tiny_judge.compare([PAIR], mode="feedback", max_new_tokens=4)
    assert 0.0 <= result.p_a <= 1.0 and result.feedback_ab is not None and result.feedback_ba is not None


# --- templates and verdict tokens ------------------------------------------------------------


def test_relative_templates_are_pairwise_and_kept_apart_from_the_absolute_ones():
    pairwise = builtin_templates(pairwise=True)
    assert pairwise == ["relative_feedback", "relative_feedback_noref", "relative_score", "relative_score_noref"]
    assert not set(pairwise) & set(builtin_templates())
    score = load_template(None, "score_only", reference=False, pairwise=True)
    text = score.fill(PAIR)
    assert "###Response A:\n2 + 2 is 4." in text and "###Response B:\nIt is 5" in text
    assert "[RESULT] (A or B)" in text and "Is the answer correct?" in text


def test_verdict_tokens_are_single_tokens_found_like_the_digits(tiny_judge):
    tokens = find_pair_tokens(tiny_judge.tokenizer)
    assert tokens.values == (1, 0) and len(set(tokens.ids)) == 2
    for label, token_id in zip("AB", tokens.ids):
        ids = tiny_judge.encode(tokens.cue + (" " if tokens.variant == "space-prefixed" else "") + label)
        assert ids[-1] == token_id and ids[:-1] == tiny_judge.encode(tokens.cue)


# --- the pairwise losses ----------------------------------------------------------------------

PAIR_IDS = [3, 4]  # 'A', 'B' in a vocabulary of 7


def _batch(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 5, 7, generator=g, dtype=dtype)
    labels = torch.full((3, 5), IGNORE)
    labels[0, 3], labels[1, 4], labels[2, 2] = 3, 4, 3
    return logits, labels


def test_pair_raft_loss_by_hand_with_soft_and_hard_targets():
    logits, labels = _batch()
    positions = [(0, 2), (1, 3), (2, 1)]  # the logits one before each label
    p = [torch.sigmoid(logits[r, t, 3] - logits[r, t, 4]).item() for r, t in positions]
    hard = [1.0, 0.0, 1.0]  # from the labels: A, B, A
    assert pair_raft_loss(logits, labels, PAIR_IDS).item() == pytest.approx(
        np.mean([(y - q) ** 2 for y, q in zip(hard, p)])
    )
    gold = torch.tensor([0.75, 0.5, 1.0])
    soft = sum((y - q) ** 2 for y, q in zip(gold.tolist(), p))
    assert pair_raft_loss(logits, labels, PAIR_IDS, gold=gold).item() == pytest.approx(soft / 3)
    assert pair_raft_loss(logits, labels, PAIR_IDS, num_items_in_batch=(0, 6), gold=gold).item() == pytest.approx(
        soft / 6
    )


def test_pair_raft_gradient_by_hand_and_by_finite_differences():
    logits, labels = _batch(1)
    gold = torch.tensor([0.9, 0.2, 0.5], dtype=torch.float64)
    logits.requires_grad_(True)
    pair_raft_loss(logits, labels, PAIR_IDS, gold=gold).backward()
    expected = torch.zeros_like(logits)
    for row, (r, t) in enumerate([(0, 2), (1, 3), (2, 1)]):
        p = torch.sigmoid(logits[r, t, 3] - logits[r, t, 4]).detach()
        d = 2 * (p - gold[row]) * p * (1 - p) / 3  # d/dz_A of (p - y)^2 / N; d/dz_B is its negative
        expected[r, t, 3], expected[r, t, 4] = d, -d
    assert torch.allclose(logits.grad, expected, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda x: pair_raft_loss(x, labels, PAIR_IDS, gold=gold), (logits.detach().requires_grad_(True),)
    )


def test_pair_cot_raft_is_feedback_ce_plus_lambda_times_the_pair_term():
    logits, labels = _batch(2)
    labels[0, 1], labels[0, 2] = 5, 6  # feedback tokens before row 0's verdict
    gold = torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)
    ce_labels = labels.clone()
    ce_labels[0, 3], ce_labels[1, 4], ce_labels[2, 2] = IGNORE, IGNORE, IGNORE
    want = ce_loss(logits, ce_labels) + 0.5 * pair_raft_loss(logits, labels, PAIR_IDS, gold=gold)
    assert pair_cot_raft_loss(logits, labels, PAIR_IDS, 0.5, gold=gold).item() == pytest.approx(want.item())


def test_make_loss_selects_the_pairwise_terms():
    logits, labels = _batch(3)
    gold = torch.tensor([0.6, 0.4, 0.5], dtype=torch.float64)
    out = {"logits": logits}
    pair = make_loss("raft", PAIR_IDS, (1, 0), pairwise=True)(out, labels, gold=gold)
    assert pair.item() == pytest.approx(pair_raft_loss(logits, labels, PAIR_IDS, gold=gold).item())
    absolute = make_loss("raft", PAIR_IDS, (1, 0))(out, labels, gold=gold)  # raw mass, not renormalised
    assert absolute.item() != pytest.approx(pair.item())


# --- pair data -------------------------------------------------------------------------------

RUBRIC = {"orig_criteria": "Correct?", **{f"orig_score{k}_description": f"level {k}" for k in range(1, 6)}}


def _absolute_rows():
    rows = []
    for idx, scores in (("q1", [1, 2, 3, 3]), ("q2", [5, 1, 4]), ("q3", [2])):
        for k, s in enumerate(scores):
            rows.append(
                {
                    "idx": idx,
                    "orig_instruction": f"question {idx}",
                    "orig_response": f"answer {idx}-{k}",
                    "orig_score": s,
                }
                | RUBRIC
            )
    return rows


def test_pairs_from_scores_counts_and_targets(tmp_path):
    path = write_rows(tmp_path / "abs.jsonl", _absolute_rows())
    pairs, counts = pairs_from_scores(path)
    assert counts == {"rows_read": 8, "rows_rejected": 0, "questions": 3, "pairs": 8, "ties": 1, "ties_kept": 0}
    got = {(p["orig_response_A"], p["orig_response_B"]): p["orig_preference"] for p in pairs}
    assert got == {
        ("answer q1-0", "answer q1-1"): 0.0,
        ("answer q1-0", "answer q1-2"): 0.0,
        ("answer q1-0", "answer q1-3"): 0.0,
        ("answer q1-1", "answer q1-2"): 0.0,
        ("answer q1-1", "answer q1-3"): 0.0,
        ("answer q2-0", "answer q2-1"): 1.0,
        ("answer q2-0", "answer q2-2"): 1.0,
        ("answer q2-1", "answer q2-2"): 0.0,
    }
    kept, counts = pairs_from_scores(path, ties="half")
    assert counts["pairs"] == 9 and counts["ties_kept"] == 1
    assert [p["orig_preference"] for p in kept if p["score_A"] == p["score_B"]] == [0.5]


def test_mt_bench_gives_six_pairs_per_question():
    pairs, counts = pairs_from_scores("/work/shared/benchmarks/mt_bench_eval.json", ties="half")
    assert counts["questions"] == 80 and counts["pairs"] == 480
    dropped, counts = pairs_from_scores("/work/shared/benchmarks/mt_bench_eval.json")
    assert counts["pairs"] == 480 - counts["ties"] and all(p["orig_preference"] in (0.0, 1.0) for p in dropped)


def test_the_dataset_holds_both_orders_with_targets_p_and_one_minus_p(tmp_path):
    pairs, _ = pairs_from_scores(write_rows(tmp_path / "abs.jsonl", _absolute_rows()), ties="half")
    built = build_pair_dataset(pairs, validation_ratio=0.5, seed=1)
    examples = built.train + built.validation
    assert len(examples) == 2 * len(pairs)
    by_pair: dict = {}
    for ex in examples:
        key = frozenset((ex["item"]["orig_response_A"], ex["item"]["orig_response_B"]))
        by_pair.setdefault(key, {})[ex["order"]] = ex
    for both in by_pair.values():
        ab, ba = both["AB"], both["BA"]
        assert ba["gold"] == 1.0 - ab["gold"]
        assert ab["item"]["orig_response_A"] == ba["item"]["orig_response_B"]
        assert ab["target"].endswith("A" if ab["gold"] >= 0.5 else "B")
        assert ba["target"].endswith("B" if ab["gold"] >= 0.5 else "A")  # a tie: A first, B swapped
    train_q = {ex["item"]["orig_instruction"] for ex in built.train}
    assert not train_q & {ex["item"]["orig_instruction"] for ex in built.validation}


@pytest.mark.parametrize(
    "row, preference",
    [
        ({"prompt": "q", "chosen": "good", "rejected": "bad"}, 1.0),
        ({"question": "q", "response_a": "x", "response_b": "y", "winner": "model_b"}, 0.0),
        ({"question": "q", "response_a": "x", "response_b": "y", "winner": "tie"}, 0.5),
        (
            {
                "prompt": "q",
                "response_a": "x",
                "response_b": "y",
                "winner_model_a": 1,
                "winner_model_b": 0,
                "winner_tie": 0,
            },
            1.0,
        ),  # fmt: skip
        ({"instruction": "q", "answer_a": "x", "answer_b": "y", "preference": 0.25}, 0.25),
    ],
)
def test_common_pair_columns_are_recognised(tmp_path, row, preference):
    assert is_pairs(row)
    path = write_rows(tmp_path / "pairs.jsonl", [row])
    [(rec, item)] = list(iter_pairs(path, need_preference=True))
    assert rec.error is None and item["orig_preference"] == preference
    assert item["orig_instruction"] == "q" and item["orig_criteria"]


def test_absolute_columns_are_not_pairs_and_bad_preferences_are_named():
    assert not is_pairs(["question", "answer", "score"])
    assert guess_pair_mapping(["chosen", "rejected", "prompt"])["orig_response_A"] == "chosen"
    for bad in ("C", 1.5, None):
        with pytest.raises(ValueError):
            parse_preference(bad)


# --- the report card ------------------------------------------------------------------------


def test_pair_metrics_by_hand():
    pref = [1.0, 0.0, 1.0, 0.5, 0.0]
    p = [0.9, 0.3, 0.4, 0.5, 0.95]
    ab, ba = [0.8, 0.2, 0.6, 0.7, 0.9], [0.1, 0.7, 0.7, 0.3, 0.0]
    m = pair_metrics(pref, p, p_ab=ab, p_ba=ba, n_boot=200)
    assert m["n"] == 5 and m["decided"] == 4
    assert m["accuracy"]["value"] == pytest.approx(2 / 4)  # the tie is not counted
    assert m["auc"]["value"] == pytest.approx(2 / 4)  # 0.9 and 0.4 (A preferred) against 0.3 and 0.95
    assert m["brier"]["value"] == pytest.approx(np.mean([0.01, 0.09, 0.36, 0.0, 0.9025]))
    assert m["position_consistency"]["value"] == pytest.approx(4 / 5)  # the third pair's orders disagree
    assert m["position_bias"] == pytest.approx(np.mean([a + b - 1 for a, b in zip(ab, ba)]))
    for metric in ("accuracy", "brier", "position_consistency"):
        assert m[metric]["lo"] <= m[metric]["value"] <= m[metric]["hi"]
    bins = reliability_bins(pref, p)
    assert [b["count"] for b in bins] == [0, 0, 0, 1, 1, 1, 0, 0, 0, 2]
    assert bins[9]["mean_p_a"] == pytest.approx(0.925) and bins[9]["mean_preference"] == pytest.approx(0.5)


# --- end to end on the tiny model ------------------------------------------------------------


def test_tiny_model_prepare_train_score_report_on_pairs(tmp_path, tiny_model, capsys):
    absolute = write_rows(tmp_path / "abs.jsonl", _absolute_rows())
    data = tmp_path / "ds"
    assert main(["prepare", "--source", str(absolute), "--pairs-from-scores", "--out", str(data)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["task"] == "pairwise" and stats["train"] == 16
    assert read_dataset_manifest(data)["prompt"].pairwise
    run = tmp_path / "run"
    args = ["--data", str(data), "--output_dir", str(run), "--base_model", str(tiny_model), "--max_steps", "3"]
    assert main(["train", *args, "--batch_size", "4", "--lora", "false", "--device", "cpu"]) == 0
    manifest = json.loads((run / "judge.json").read_text())
    assert manifest["task"] == "pairwise" and manifest["score_token_ids"] == list(
        find_pair_tokens(__import__("transformers").AutoTokenizer.from_pretrained(tiny_model)).ids
    )
    pairs_file = write_rows(
        tmp_path / "pairs.jsonl",
        [
            {"question": "q", "chosen": "good answer", "rejected": "bad"},
            {"question": "q2", "chosen": "yes", "rejected": ""},
        ],
    )
    out = tmp_path / "scored.jsonl"
    capsys.readouterr()
    assert main(["score", "--input", str(pairs_file), "--out", str(out), "--model", str(run), "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["scored"] == 2 and summary["errors"] == 1 and summary["pairs_both_orders"] == 1
    good, bad = read_jsonl(out)
    assert good["p_a"] == combine(good["p_ab"], good["p_ba"]) and good["mass_ab"] > 0 and good["orig_preference"] == 1.0
    assert "orig_response_B" in bad["error"]
    assert main(["report", str(out), "--n-boot", "100", "--out", str(tmp_path / "r.json")]) == 0
    assert "Pairwise report card (1 pairs" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["left_out"] == 1 and len(report["reliability"]) == 10
    assert main(["eval", "--input", str(out), "--n-boot", "100"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["n"] == 1 and evaluated["brier"]["value"] == pytest.approx((good["p_a"] - 1.0) ** 2)


# --- the pairwise reward --------------------------------------------------------------------


def test_pairwise_reward_is_the_probability_that_the_completion_beats_the_reference(tiny_judge):
    from raft.rewards import PairwiseReward

    reward = PairwiseReward(tiny_judge, criterion="Is the answer correct?", batch_size=2)
    prompts = [[{"role": "user", "content": "What is 2 + 2?"}], "Name a colour."]
    completions = [[{"role": "assistant", "content": "4"}], "Blue."]
    references = ["5, roughly", "Blue is a colour."]
    got = reward(prompts=prompts, completions=completions, reference_completion=references, trainer_state=None)
    pairs = [
        {"orig_instruction": "What is 2 + 2?", "orig_response_A": "4", "orig_response_B": "5, roughly"},
        {"orig_instruction": "Name a colour.", "orig_response_A": "Blue.", "orig_response_B": "Blue is a colour."},
    ]
    want = [j.p_a for j in tiny_judge.compare([{**p, "orig_criteria": "Is the answer correct?"} for p in pairs])]
    assert got == want
    centered = PairwiseReward(tiny_judge, criterion="Is the answer correct?", scaling="centered")
    assert centered(prompts, completions, reference_completion=references) == pytest.approx([2 * p - 1 for p in want])
    with pytest.warns(UserWarning, match="not compared"):
        assert reward(prompts[:1], [""], reference_completion=references[:1]) == [0.0]


@pytest.mark.parametrize("loss, mode", [("ce", "score_only"), ("cot_raft", "feedback")])
def test_ce_and_cot_raft_train_on_pairs(tmp_path, tiny_model, loss, mode):
    from raft.pairs import prepare_pairs
    from raft.train import TrainConfig, train

    rows = [
        {"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "feedback": "Response A is right."}
        for i in range(6)
    ]
    data = tmp_path / "ds"
    stats = prepare_pairs(write_rows(tmp_path / "prefs.jsonl", rows), data, mode=mode, validation_ratio=0.34)
    assert stats["train"] == 8 and stats["validation"] == 4
    swapped_targets = [r["target"] for r in read_jsonl(data / "train.jsonl") if r["order"] == "BA"]
    assert all(t.endswith("[RESULT] B") for t in swapped_targets)
    if mode == "feedback":
        assert all(t.startswith("Feedback: Response B is right.") for t in swapped_targets)
    config = TrainConfig(
        data=str(data), output_dir=str(tmp_path / "run"), base_model=str(tiny_model), loss=loss, max_steps=2,
        batch_size=4, lora=False, device="cpu", eval_steps=2, eval_rows=2, eval_max_new_tokens=4,
    )  # fmt: skip
    run = train(config)
    assert json.loads((run / "result.json").read_text())["status"] == "completed"
    evals = [json.loads(line).get("eval") for line in (run / "progress.jsonl").read_text().splitlines()]
    assert any(e and e["n"] == 2 and e["brier"] is not None for e in evals)


def test_a_loss_without_a_pairwise_form_is_refused_on_pairs(tmp_path, tiny_model):
    from raft.loss import LOSSES, pair_losses
    from raft.pairs import prepare_pairs
    from raft.train import TrainConfig, train

    assert pair_losses() == ["raft", "cot_raft", "ce"]
    unpaired = [name for name in LOSSES if name not in pair_losses()]
    rows = [{"prompt": f"q{i}", "chosen": "good", "rejected": "bad"} for i in range(2)]
    prepare_pairs(write_rows(tmp_path / "prefs.jsonl", rows), tmp_path / "ds")
    for name in unpaired:
        config = TrainConfig(data=str(tmp_path / "ds"), output_dir=str(tmp_path / name), base_model=str(tiny_model),
                             loss=name, max_steps=1, lora=False, device="cpu")  # fmt: skip
        with pytest.raises(ValueError, match="does not train on pairs"):
            train(config)
        with pytest.raises(ValueError, match="does not apply to pairs"):
            make_loss(name, PAIR_IDS, (1, 0), pairwise=True)
