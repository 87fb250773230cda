"""The vLLM engine: the model run by a `vllm.LLM` (one GPU, several with tensor or data
parallelism, or the CPU).

vLLM returns the full-vocabulary log-probabilities of chosen token ids (`logprob_token_ids`),
which is all a judge needs: for scoring, one generated token after the prompt; for feedback,
those log-probabilities at every generated step, read where the model wrote the cue, else in a
second request over prompt + feedback + cue, which prefix caching makes cheap. A LoRA run folder
is served as its base model plus the adapter (vLLM's LoRA support, no merge).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raft.engines.base import Cut, OnTokens, Progress, Sample, scored_from_steps
from raft.models import ModelError, load_tokenizer, resolve_model

CPU_KV_CACHE_BYTES = 2 << 30
"""KV cache reserved on the CPU backend when engine_args name none (vLLM otherwise asks for a share
of the machine's memory that a small machine may not have free)."""


def cpu_threads_env(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """vLLM's CPU thread settings where the user set none: its OpenMP threads bound to every CPU
    this process may use, none reserved. Its own 'auto' binding keeps one CPU per physical core and
    reserves one for the scheduler, which leaves a 2-CPU machine one thread (half of transformers')."""
    out = {}
    if "VLLM_CPU_OMP_THREADS_BIND" not in environ:
        out["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    if "VLLM_CPU_NUM_OF_RESERVED_CPU" not in environ:
        out["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    return out


def parse_cpus(spec: str) -> list[int]:
    """CPU ids of a binding such as '0-3,6' (vLLM's 'auto' and 'nobind' name none)."""
    cpus: list[int] = []
    for part in spec.split("|")[0].split(","):
        lo, _, hi = part.strip().partition("-")
        if lo.isdigit():
            cpus += range(int(lo), int(hi or lo) + 1)
    return cpus


class VllmEngine:
    """A `vllm.LLM`, its tokenizer and, for a LoRA run, its LoRARequest."""

    whole_calls = True
    """vLLM schedules its own batches: the judge hands it every row of a chunk in one call."""

    def __init__(self, llm: Any, tokenizer: Any, lora_request: Any = None):
        self.llm, self.tokenizer, self.lora_request = llm, tokenizer, lora_request
        self.padding: dict[str, int] = {}
        self.threads: int | None = None
        """OpenMP threads of the CPU engine (None on a GPU)."""

    @classmethod
    def load(
        cls,
        model: str | Path | None,
        adapter: str | Path | None = None,
        device: str | None = None,
        trust_remote_code: bool = False,
        engine_args: dict[str, Any] | None = None,
    ) -> tuple[VllmEngine, dict[str, Any]]:
        """(engine, manifest) for a hub id, folder or run folder; engine_args go to `vllm.LLM`."""
        try:
            from vllm import LLM
            from vllm.lora.request import LoRARequest
        except ImportError as exc:
            raise ModelError(
                "the vllm engine needs vLLM: pip install -r requirements-vllm.txt (GPU) or "
                "requirements-vllm-cpu.txt (CPU, in its own virtual environment)"
            ) from exc
        name, adapter_dir, manifest = resolve_model(model, adapter)
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
            os.environ.update(cpu_threads_env(os.environ))
        if adapter_dir is not None:
            rank = _adapter_rank(adapter_dir)
            args.update(enable_lora=True, max_lora_rank=max(8, 2 ** math.ceil(math.log2(rank))), max_loras=1)
        args.update(engine_args or {})
        try:
            llm = LLM(**args)
        except Exception as exc:  # vLLM raises many kinds; the user needs the one line
            raise ModelError(f"vLLM could not start on '{name}': {type(exc).__name__}: {exc}".splitlines()[0]) from exc
        lora = LoRARequest("judge", 1, str(adapter_dir)) if adapter_dir is not None else None
        engine = cls(llm, load_tokenizer(name, trust_remote_code), lora)
        engine.threads = len(parse_cpus(os.environ["VLLM_CPU_OMP_THREADS_BIND"])) if on_cpu else None
        return engine, manifest

    def context_limit(self) -> int | None:
        return self.llm.llm_engine.model_config.max_model_len

    def _run(self, seqs: list[list[int]], params: Any, on_tokens: OnTokens | None = None) -> list[Any]:
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=s) for s in seqs]
        results = self.llm.generate(prompts, params, lora_request=self.lora_request, use_tqdm=False)
        if on_tokens:  # the offline engine does not stream: each row once, finished
            stop = set(self.tokenizer.all_special_ids)
            for row, output in enumerate(o for r in results for o in r.outputs):
                on_tokens(row, [t for t in output.token_ids if t not in stop])
        return results

    @staticmethod
    def _logprobs(step: dict[int, Any], token_ids: Sequence[int]) -> np.ndarray:
        return np.array([step[i].logprob for i in token_ids], dtype=np.float64)

    def next_token_logprobs(
        self, seqs: list[list[int]], token_ids: Sequence[int], batch_size: int = 8, progress: Progress | None = None
    ) -> np.ndarray:
        """Full-vocabulary log-probabilities of `token_ids` after each sequence (one generated token)."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(token_ids))
        out = np.zeros((len(seqs), len(token_ids)), dtype=np.float64)
        self.padding = {"real_tokens": sum(len(s) for s in seqs), "padded_tokens": 0}
        step = max(batch_size, min(64, math.ceil(len(seqs) / 10)))  # groups pace the bar: 10 moves or more
        for start in range(0, len(seqs), step):
            for k, result in enumerate(self._run(seqs[start : start + step], params)):
                out[start + k] = self._logprobs(result.outputs[0].logprobs[0], token_ids)
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

    def generate(
        self,
        seqs: list[list[int]],
        max_new_tokens: int = 256,
        n_samples: int = 1,
        temperature: float = 1.0,
        batch_size: int = 8,
        seed: int = 0,
        on_tokens: OnTokens | None = None,
    ) -> list[list[str]]:
        """Continuations, n_samples per sequence (greedy when 1); vLLM schedules the batch itself."""
        results = self._run(seqs, self._sampling(max_new_tokens, n_samples, temperature, seed), on_tokens)
        return [[o.text for o in r.outputs] for r in results]

    def generate_scored(
        self,
        seqs: list[list[int]],
        token_ids: Sequence[int],
        cut: Cut,
        max_new_tokens: int = 256,
        n_samples: int = 1,
        temperature: float = 1.0,
        seed: int = 0,
        on_tokens: OnTokens | None = None,
    ) -> list[list[Sample]]:
        """Generation with log-probs at `token_ids` at every step, read where the cut falls."""
        params = self._sampling(max_new_tokens, n_samples, temperature, seed, logprob_token_ids=list(token_ids))
        outputs = [
            [(list(o.token_ids), [self._logprobs(step, token_ids) for step in o.logprobs or []]) for o in r.outputs]
            for r in self._run(seqs, params, on_tokens)
        ]
        return scored_from_steps(self, seqs, outputs, token_ids, cut)


def _adapter_rank(adapter: Path) -> int:
    config = Path(adapter) / "adapter_config.json"
    try:
        return int(json.loads(config.read_text()).get("r", 16))
    except (OSError, ValueError):
        return 16
