"""The engine interface: a backend written in one small class (here: per-step log-probs from a
plain `model.generate`, scored by `scored_from_steps` as the vLLM backend is) gives the judge the
same judgments; generated tokens stream through `on_tokens`."""

import numpy as np
import pytest
import torch

from raft.engines import ENGINES, Engine, available_engines, load_engine
from raft.engines.base import scored_from_steps
from raft.engines.transformers import TransformersEngine
from raft.judge import Judge


class StepEngine(TransformersEngine):
    """A backend that only has generation with per-step log-probs (as vLLM or a server gives)."""

    def generate_scored(self, seqs, token_ids, cut, max_new_tokens=256, n_samples=1, temperature=1.0, seed=0, on=None):
        ids = torch.tensor(list(token_ids))
        outputs = []
        for seq in seqs:
            out = self.model.generate(
                input_ids=torch.tensor([seq]),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                return_dict_in_generate=True,
                output_logits=True,
                pad_token_id=self.tokenizer.pad_token_id,
            )
            steps = [torch.log_softmax(step[0].float(), -1)[ids].double().numpy() for step in out.logits]
            outputs.append([(out.sequences[0, len(seq) :].tolist(), steps)])
        return scored_from_steps(self, seqs, outputs, token_ids, cut)


def test_the_transformers_engine_meets_the_interface_and_is_registered(tiny_judge):
    assert isinstance(tiny_judge.engine, Engine)
    assert set(ENGINES) == {"hf", "vllm"} and "hf" in available_engines()
    with pytest.raises(ValueError, match="unknown engine 'sglang'"):
        load_engine("sglang")


def test_a_backend_with_per_step_logprobs_gives_the_same_judgments(tiny_judge, rows):
    engine = tiny_judge.engine
    other = Judge(StepEngine(engine.model, engine.tokenizer), scale=tiny_judge.scale)
    a = tiny_judge.score(rows[:4], mode="feedback", max_new_tokens=12, batch_size=2)
    b = other.score(rows[:4], mode="feedback", max_new_tokens=12, batch_size=2)
    for x, y in zip(a, b):
        assert x.feedback == y.feedback
        np.testing.assert_allclose(y.probs, x.probs, atol=1e-5)
    c = other.score(rows[:4], batch_size=3)
    d = tiny_judge.score(rows[:4], batch_size=3)
    np.testing.assert_allclose([r.expected_score for r in c], [r.expected_score for r in d], atol=1e-9)


@pytest.mark.parametrize("mode", ["decode", "feedback"])
def test_generated_tokens_stream_per_item(tiny_judge, rows, mode):
    streamed: dict[int, list[int]] = {}
    results = tiny_judge.score(
        rows[:3],
        mode=mode,
        max_new_tokens=10,
        batch_size=2,
        on_tokens=lambda row, ids: streamed.setdefault(row, []).extend(ids),
    )
    assert sorted(streamed) == [0, 1, 2]
    for i, r in enumerate(results):
        text = tiny_judge.tokenizer.decode(streamed[i], skip_special_tokens=True)
        assert text.startswith(r.feedback.strip()) or r.feedback.strip() in text
