import numpy as np
import pytest
import torch

from raft.judge import Judge, rail


def _raw_expected(judge, item):
    """sum k*p_k straight from the model's logits on one unpadded sequence, no judge code."""
    text = judge.render(item)
    ids = torch.tensor([judge.tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logits = judge.model(input_ids=ids).logits[0, -1].double()
    p = torch.softmax(logits, -1)[judge.score_token_ids]
    mass = p.sum()
    return float((p / mass * torch.arange(1, 6, dtype=torch.double)).sum()), float(mass)


def test_expected_score_equals_sum_k_pk_from_raw_logits(tiny_judge, rows):
    results = tiny_judge.score(rows[:5], batch_size=5)
    for item, r in zip(rows, results):
        expected, mass = _raw_expected(tiny_judge, item)
        assert r.expected_score == pytest.approx(expected, abs=1e-5)
        assert r.score_mass == pytest.approx(mass, rel=1e-4)
        assert sum(r.probs) == pytest.approx(1.0)
        assert r.expected_score == pytest.approx(float(np.dot(r.probs, [1, 2, 3, 4, 5])))
        assert r.mode_score == int(np.argmax(r.probs)) + 1


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_padding_and_batch_size_do_not_change_scores(tiny_judge, rows, batch_size):
    rows[1]["orig_response"] += " Extra words make this row much longer than the others." * 5
    alone = [tiny_judge.score([r])[0].expected_score for r in rows[:8]]
    batched = [r.expected_score for r in tiny_judge.score(rows[:8], batch_size=batch_size)]
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_rail_from_probabilities():
    expected, mode, probs, mass = rail(np.array([0.1, 0.1, 0.2, 0.4, 0.0]), (1, 2, 3, 4, 5))
    assert mass == pytest.approx(0.8)
    assert probs == pytest.approx([0.125, 0.125, 0.25, 0.5, 0.0])
    assert expected == pytest.approx(0.125 + 0.25 + 0.75 + 2.0)
    assert mode == 4


def test_bad_items_get_an_error_and_the_rest_are_scored(tiny_judge, rows):
    rows[1]["orig_response"] = ""
    del rows[2]["orig_score3_description"]
    results = tiny_judge.score(rows[:4])
    assert [r.error is None for r in results] == [True, False, False, True]
    assert "orig_response" in results[1].error and "orig_score3_description" in results[2].error
    assert results[1].expected_score is None and results[3].expected_score is not None


def test_render_is_exactly_what_the_model_reads(tiny_judge, rows):
    text = tiny_judge.render(rows[0])
    assert text.startswith("<|im_start|>user\n###Task Description:") and text.endswith(
        "<|im_start|>assistant\n[RESULT] "
    )
    assert not tiny_judge.render(rows[0], mode="feedback").endswith("[RESULT] ")


def test_feedback_mode_reads_the_distribution_at_the_cue(tiny_judge, rows):
    results = tiny_judge.score(rows[:3], mode="feedback", max_new_tokens=8)
    for r in results:
        assert r.error is None and r.feedback is not None and len(r.samples) == 1
        assert 1 <= r.expected_score <= 5 and sum(r.probs) == pytest.approx(1.0)


def test_feedback_samples_are_averaged_and_seeded(tiny_judge, rows):
    first = tiny_judge.score(rows[:2], mode="feedback", n_samples=3, max_new_tokens=6, seed=7)
    again = tiny_judge.score(rows[:2], mode="feedback", n_samples=3, max_new_tokens=6, seed=7)
    for a, b in zip(first, again):
        assert len(a.samples) == 3 and a.expected_score == pytest.approx(np.mean(a.samples))
        assert a.samples == b.samples


def test_decode_reports_parse_failures(tiny_judge, rows):
    results = tiny_judge.score(rows[:2], mode="decode", max_new_tokens=4)
    for r in results:
        assert (r.error is None) == (r.expected_score is not None)
        if r.error:
            assert r.error == "no score found in the generated text"


def test_the_mistral_config_works_too(tmp_path, rows):
    from raft.models import build_tiny_model

    judge = Judge.load(str(build_tiny_model(tmp_path / "m", arch="mistral")), device="cpu")
    assert judge.model.config.model_type == "mistral"
    assert judge.score(rows[:2])[0].expected_score is not None


@pytest.mark.slow
def test_real_smollm2_scores_with_a_valid_distribution(default_model, rows):
    judge = Judge.load(device="cpu")
    assert judge.score_token_ids == [33, 34, 35, 36, 37]
    results = judge.score(rows[:4], batch_size=4)
    for r in results:
        assert r.error is None
        assert sum(r.probs) == pytest.approx(1.0) and all(p >= 0 for p in r.probs)
        assert 1.0 <= r.expected_score <= 5.0
        assert 0.0 < r.score_mass <= 1.0
    print("SmolLM2 score mass:", [round(r.score_mass, 3) for r in results])


def test_seeded_sampling_leaves_the_process_random_state_alone(tiny_judge, rows):
    torch.manual_seed(1234)
    expected_next = torch.rand(3)
    torch.manual_seed(1234)
    first = tiny_judge.score(rows[:2], mode="feedback", n_samples=3, max_new_tokens=6, seed=7)
    assert torch.equal(torch.rand(3), expected_next), "scoring consumed or reseeded the global random stream"
    torch.manual_seed(99)  # another user's seed changes nothing in a seeded judgment
    again = tiny_judge.score(rows[:2], mode="feedback", n_samples=3, max_new_tokens=6, seed=7)
    other = tiny_judge.score(rows[:2], mode="feedback", n_samples=3, max_new_tokens=6, seed=8)
    assert [a.samples for a in first] == [b.samples for b in again]
    assert [a.samples for a in first] != [c.samples for c in other]
    assert len({tuple(s for s in a.samples) for a in first}) == 2 and len(set(first[0].samples)) > 1
