"""RAFT fine-tuning with transformers' Trainer: the loss is passed in as `compute_loss_func`.

The whole run reads top to bottom in `_train` (`train` wraps it with the run folder's result): load
the base model, tokenize the dataset so each row's score position is known (raft.train.examples),
wrap LoRA, train with progress/eval/stop callbacks (raft.train.callbacks), save the adapter (or
model) with a judge manifest (raft.train.saving) so that `Judge.load(run_dir)` works.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, Trainer, TrainingArguments

from raft.data import read_dataset_manifest, read_jsonl
from raft.engines.transformers import TransformersEngine
from raft.errors import RaftError
from raft.insample import trained_hashes, write_trained_rows
from raft.judge import Judge
from raft.loss import IGNORE, loss_kind, make_loss
from raft.models import default_ready, fetch_default, needs_default, peft_quiet, resolve_device, resolve_model
from raft.prompts import JudgePrompt
from raft.runs import CONFIG_FILE, RESULT_FILE, STOP_FILE, last_checkpoint_step, trim_progress
from raft.scores import ScoreTokens, find_pair_tokens, find_score_tokens
from raft.train.callbacks import (
    Evaluate,
    Progress,
    StopOnRequest,
    StoppedBeforeTraining,
    TerminalProgress,
)
from raft.train.config import TrainConfig
from raft.train.examples import Collator, tokenize, training_examples
from raft.train.memory import ModelShape, describe, estimate_peak, free_memory, keep_heap_small, memory_warning
from raft.train.phase import write_phase
from raft.train.saving import save_judge, write_manifest

__all__ = [
    "Collator",
    "Evaluate",
    "Progress",
    "RaftTrainer",
    "RunFolderError",
    "StopOnRequest",
    "StoppedBeforeTraining",
    "TerminalProgress",
    "check_launch",
    "claim_run_dir",
    "count_items",
    "load_dataset_for",
    "save_judge",
    "scale_out",
    "tokenize",
    "train",
    "warn_memory",
    "write_manifest",
]


class RunFolderError(RaftError, ValueError):
    """A run folder that cannot be used for this run (it holds another run, or nothing to resume)."""


def count_items(batches: list[dict[str, Any]], score_token_ids: list[int]) -> torch.Tensor:
    """(CE tokens, score items) over micro-batches, counted as the losses divide by them."""
    ids = torch.as_tensor(score_token_ids)
    ce_tokens, score_items = 0, 0
    for batch in batches:
        labels = batch["labels"][..., 1:].cpu()
        has_score = torch.isin(labels, ids).any(dim=-1)
        score_items += int(has_score.sum())
        ce_tokens += int(labels.ne(IGNORE).sum()) - int(has_score.sum())
    return torch.tensor([ce_tokens, score_items], dtype=torch.float32)


class RaftTrainer(Trainer):
    """Trainer whose `num_items_in_batch` is the pair (CE tokens, score items) of the global batch,
    so each loss term is divided by its own global count, and whose loss gets each row's float gold."""

    score_token_ids: list[int] = []

    def get_batch_samples(self, epoch_iterator, num_batches, device):  # noqa: D102
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        if not batches or "labels" not in batches[0]:
            return batches, None
        counts = count_items(batches, self.score_token_ids).to(device)
        if self.args.world_size > 1:
            counts = self.accelerator.gather(counts.unsqueeze(0)).reshape(-1, 2).sum(0)
        return batches, counts

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: D102
        gold = inputs.pop("gold", None)  # each row's float gold, handed to the loss beside the labels
        target = inputs.pop("target", None)  # each row's raters' distribution over the scale (EMD)
        loss_func = self.compute_loss_func
        if gold is not None and loss_func is not None:
            self.compute_loss_func = functools.partial(loss_func, gold=gold, target=target)
        try:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            self.compute_loss_func = loss_func


def _precision(config: TrainConfig, device: torch.device) -> tuple[torch.dtype, dict[str, bool]]:
    choice = config.precision
    if choice == "auto":
        choice = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return {"bf16": torch.bfloat16, "fp16": torch.float32, "fp32": torch.float32}[choice], {
        "bf16": choice == "bf16",
        "fp16": choice == "fp16",
    }


def scale_out(config: TrainConfig) -> dict[str, Any]:
    """The Trainer's DeepSpeed and FSDP arguments from the config (none when unset)."""
    out: dict[str, Any] = {}
    if config.deepspeed:
        if not Path(config.deepspeed).is_file():
            raise FileNotFoundError(f"deepspeed config {config.deepspeed} not found")
        out["deepspeed"] = config.deepspeed
    if config.fsdp:
        out["fsdp"] = config.fsdp
        out["fsdp_config"] = config.fsdp_config or {}
    return out


def check_launch(device_type: str, world_size: int, gpus: int) -> None:
    """Refuse several GPUs without a launcher: the Trainer would wrap the model in DataParallel,
    which multiplies the loss by the GPU count while the global item counts stay per process."""
    if device_type == "cuda" and world_size == 1 and gpus > 1:
        raise ValueError(
            f"{gpus} GPUs are visible but no launcher started this run: use `torchrun --nproc_per_node {gpus} "
            "-m raft train ...` (one process per GPU), or CUDA_VISIBLE_DEVICES=0 for one GPU"
        )


def load_dataset_for(config: TrainConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Train and validation examples and the dataset's manifest, checked against the config.

    The template text, scale and mode come from the dataset; a config that names a different
    template or scale is refused, naming what differs.
    """
    data = Path(config.data)
    if not (data / "train.jsonl").is_file():
        raise FileNotFoundError(f"{data}: no train.jsonl (build one with `python -m raft prepare`)")
    manifest = read_dataset_manifest(data)
    if config.template:
        pairwise = manifest.get("task") == "pairwise"
        diff = JudgePrompt.resolve(config.template, manifest["mode"], pairwise).differs_from(manifest["prompt"])
        if diff:
            raise ValueError(f"config template '{config.template}' differs from the dataset {data}: {diff}")
    if config.scale is not None and list(config.scale) != manifest["scale"]:
        raise ValueError(
            f"config scale {list(config.scale)} differs from the dataset {data}, made on {manifest['scale']}"
        )
    kind = loss_kind(config.loss)
    if manifest.get("task") == "pairwise" and kind.pairwise is None:
        raise ValueError(f"loss {config.loss} does not train on pairs; {data} is a pairwise dataset")
    needs = kind.needs_mode
    if needs and manifest["mode"] != needs:
        raise ValueError(f"loss {config.loss} needs a {needs} dataset; {data} is {manifest['mode']}")
    train = read_jsonl(data / "train.jsonl")
    validation = read_jsonl(data / "validation.jsonl") if (data / "validation.jsonl").is_file() else []
    return train, validation, manifest


def process_start_time() -> float:
    """When this process started (seconds since the epoch), from /proc; now where unavailable."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return time.time()


def claim_run_dir(config: TrainConfig, resume: bool) -> Path:
    """The run folder: a new run takes an empty (or new) folder and writes its config there first
    (atomically, so two runs cannot share it); a resumed one must hold a run."""
    run_dir = Path(config.output_dir)
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise RunFolderError(f"{run_dir}: nothing to resume (no {CONFIG_FILE})")
        flag = run_dir / STOP_FILE
        if flag.is_file() and flag.stat().st_mtime < process_start_time():
            flag.unlink(missing_ok=True)  # the request that stopped it before; a newer one stands
        (run_dir / RESULT_FILE).unlink(missing_ok=True)
        config.to_yaml(run_dir / CONFIG_FILE)
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    held = sorted(p.name for p in run_dir.iterdir() if p.name != STOP_FILE)  # a stop asked before the start
    if held:
        raise RunFolderError(
            f"{run_dir} already holds a run ({', '.join(held[:5])}); choose a new output_dir, "
            f"or continue it with `python -m raft train --resume {run_dir}`"
        )
    try:
        with (run_dir / CONFIG_FILE).open("x") as f:
            f.write(config.to_yaml())
    except FileExistsError:
        raise RunFolderError(f"{run_dir}: another run started in this folder at the same time") from None
    return run_dir


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run one training job in config.output_dir and return that folder.

    A new run refuses a folder that holds anything; `resume` continues from the newest checkpoint
    and first trims `progress.jsonl` to that checkpoint's step.
    """
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    run_dir = claim_run_dir(config, resume) if rank == 0 else Path(config.output_dir)
    try:
        return _train(config, run_dir, resume, world, rank)
    except StoppedBeforeTraining:
        if rank == 0:
            step = last_checkpoint_step(run_dir)
            note = "stopped before training began" if step == 0 else f"stopped before training resumed from step {step}"
            (run_dir / RESULT_FILE).write_text(json.dumps({"status": "stopped", "step": step, "note": note}))
            write_phase(run_dir, "ended", detail=note)
            print(note, flush=True)
        return run_dir
    except Exception as exc:  # leave the reason where the job registry looks for it, then fail
        if rank == 0:
            result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            (run_dir / RESULT_FILE).write_text(json.dumps(result))
        raise


class Launch:
    """This process's part in a run: its folder, the process count, whether it leads (rank 0) and
    the stop it watches. It names each phase (rank 0) and, in a one-process run, ends at a stop."""

    def __init__(self, run_dir: Path, world: int, rank: int):
        self.run_dir, self.world, self.lead = run_dir, world, rank == 0
        self.stop = StopOnRequest(run_dir)

    def phase(self, name: str, done: int | None = None, total: int | None = None, **extra: Any) -> None:
        """Name the phase (rank 0) and, in a one-process run, end here if a stop was requested."""
        if self.lead:
            write_phase(self.run_dir, name, done, total, **extra)
        if self.world == 1:
            self.stop.check_alone()


def _train(config: TrainConfig, run_dir: Path, resume: bool, world: int, rank: int) -> Path:
    launch = Launch(run_dir, world, rank)
    launch.phase("loading", detail="reading the dataset")
    train_rows, val_rows, dataset = load_dataset_for(config)
    if resume and launch.lead:
        trim_progress(run_dir, last_checkpoint_step(run_dir))
    base, adapter = _base_model(config, launch, train_rows)

    launch.phase("loading", detail=f"loading the model {Path(base).name}")
    device = resolve_device(config.device)
    check_launch(device.type, world, torch.cuda.device_count() if device.type == "cuda" else 0)
    dtype, amp = _precision(config, device)
    tokenizer, model = _load_model(config, base, device, dtype)

    launch.phase("loading", detail=f"tokenizing {len(train_rows)} training examples")
    score_tokens = _score_tokens(tokenizer, dataset)
    kind = loss_kind(config.loss)
    per_rater = kind.per_rater and dataset.get("task") != "pairwise"
    kept = training_examples(train_rows, tokenizer, score_tokens, kind.score_only, per_rater, config.max_length)
    if launch.lead:
        labelled = [sum(label != IGNORE for label in t["labels"]) for t in kept]
        warn_memory(config, model.config, [len(t["input_ids"]) for t in kept], device, dtype, labelled)

    model = _trainable(model, config, adapter)
    args = _arguments(config, run_dir, device, world, len(kept), amp)
    trainer = _trainer(config, model, tokenizer, args, kept, score_tokens, dataset, val_rows, launch)
    continued_base = base if adapter else None
    if rank == 0:  # servable from its first checkpoint: the manifest is there before any weights
        write_manifest(run_dir, config, score_tokens, dataset, continued_base)
    checkpoints = list((run_dir / "checkpoints").glob("checkpoint-*"))
    launch.phase("loading", detail="starting the trainer")
    trainer.train(resume_from_checkpoint=bool(resume and checkpoints) or None)

    if trainer.is_world_process_zero():
        _finish(trainer, launch.stop, tokenizer, run_dir, config, score_tokens, dataset, continued_base)
    return run_dir


def _base_model(config: TrainConfig, launch: Launch, train_rows: list[dict[str, Any]]) -> tuple[str, Path | None]:
    """The weights to load and the adapter to continue (a run folder as base), the default model
    prepared on first use; rank 0 records which rows this run trains on (hashes), for evaluations
    that must not count them as unseen."""
    if not default_ready() and needs_default(config.base_model):
        launch.phase(
            "preparing", detail="preparing the default model (first use: a 517 MB download, then a conversion)"
        )
        fetch_default(progress=lambda k, n, what: launch.phase("preparing", k, n, detail=what))
    base, adapter, _ = resolve_model(config.base_model)  # a run folder: continue from its adapter
    if adapter and not config.lora:
        raise ValueError(f"{config.base_model} holds a LoRA adapter: continue it with lora: true")
    if launch.lead:
        earlier = trained_hashes(config.base_model) if config.base_model and Path(config.base_model).is_dir() else None
        write_trained_rows(
            launch.run_dir, (r["item"] for r in train_rows if isinstance(r.get("item"), dict)), earlier or ()
        )
    return base, adapter


def _load_model(config: TrainConfig, base: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """The tokenizer (padding with EOS where it has no pad token) and the base model in `dtype`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device.type == "cpu":
        keep_heap_small()  # freed activations go back to the system (see raft.train.memory)
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=config.trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, trust_remote_code=config.trust_remote_code)
    return tokenizer, model


def _score_tokens(tokenizer: Any, dataset: dict[str, Any]) -> ScoreTokens:
    """The dataset's score tokens after its cue (a pairwise dataset's are the verdict letters A and B), printed."""
    pairwise = dataset.get("task") == "pairwise"
    find = find_pair_tokens if pairwise else functools.partial(find_score_tokens, scale=tuple(dataset["scale"]))
    score_tokens = find(tokenizer, cue=dataset["score_cue"])
    print(score_tokens.describe(), flush=True)
    return score_tokens


def _trainable(model: Any, config: TrainConfig, adapter: Path | None) -> Any:
    """The model as it trains: the continued adapter, a new LoRA or the full weights, with
    activation checkpointing when the config asks for it."""
    from peft import LoraConfig, PeftModel, get_peft_model

    with peft_quiet():
        if adapter:
            model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
        elif config.lora:
            lora = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=config.lora_targets,
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, lora)
    if config.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        if config.lora:
            model.enable_input_require_grads()
    return model


def _arguments(
    config: TrainConfig, run_dir: Path, device: torch.device, world: int, examples: int, amp: dict[str, bool]
) -> TrainingArguments:
    """The Trainer's arguments: the config's schedule, checkpoints under run_dir/checkpoints, warmup
    as a share of the total steps, one process per device (gloo between CPU processes)."""
    steps_per_epoch = math.ceil(examples / (config.batch_size * config.grad_accum * world))
    total = config.max_steps if config.max_steps > 0 else math.ceil(steps_per_epoch * config.epochs)
    return TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=int(config.warmup_ratio * total),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        report_to="none",
        remove_unused_columns=False,
        use_cpu=device.type == "cpu",
        disable_tqdm=True,
        ddp_backend="gloo" if device.type == "cpu" and world > 1 else None,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        **scale_out(config),
        **amp,
    )


def _trainer(
    config: TrainConfig,
    model: Any,
    tokenizer: Any,
    args: TrainingArguments,
    examples: list[dict[str, Any]],
    score_tokens: ScoreTokens,
    dataset: dict[str, Any],
    val_rows: list[dict[str, Any]],
    launch: Launch,
) -> RaftTrainer:
    """The Trainer with the RAFT loss, the collator and the callbacks: progress, validation on the
    first `eval_rows` validation items (one order of each pair), the stop, and the terminal's bar."""
    pairwise = dataset.get("task") == "pairwise"
    score_only = loss_kind(config.loss).score_only  # only the score term is trained: label just the score token
    parts: dict[str, float] = {}
    loss = make_loss(config.loss, score_tokens.ids, score_tokens.values, config.lam, parts, pairwise)
    progress = Progress(launch.run_dir, parts)
    engine = TransformersEngine(model, tokenizer)
    judge = Judge(engine, dataset["prompt"], tuple(dataset["scale"]), mode=dataset["mode"], cue=dataset["score_cue"])
    val_items = [r["item"] for r in val_rows if r.get("order", "AB") == "AB"][: config.eval_rows or None]
    head = config.head_at_score and score_only
    trainer = RaftTrainer(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=Collator(tokenizer.pad_token_id, head, head_at_labels=config.head_at_score and not score_only),
        processing_class=tokenizer,  # saved in each checkpoint: a full-weights checkpoint serves alone
        compute_loss_func=loss,
        callbacks=[
            progress,
            Evaluate(judge, val_items, dataset["mode"], config, progress, launch.stop.flag if launch.lead else None),
            launch.stop,
        ],
    )
    trainer.score_token_ids = list(score_tokens.ids)
    trainer.remove_callback(PrinterCallback)  # its dict lines give way to a bar with k/n and the time left
    trainer.add_callback(TerminalProgress())
    return trainer


def _finish(
    trainer: RaftTrainer,
    stop: StopOnRequest,
    tokenizer: Any,
    run_dir: Path,
    config: TrainConfig,
    score_tokens: ScoreTokens,
    dataset: dict[str, Any],
    continued_base: str | None,
) -> None:
    """Rank 0 after training: save the judge unless the run was stopped, then write its result and last phase."""
    status = "stopped" if stop.stopped else "completed"
    step = trainer.state.global_step
    if not stop.stopped:
        write_phase(run_dir, "saving", detail="saving the judge")
        save_judge(trainer.model, tokenizer, run_dir, config, score_tokens, dataset, continued_base)
    note = f"stopped at step {step}; checkpoint-{step} kept" if stop.stopped else f"completed {step} steps"
    (run_dir / RESULT_FILE).write_text(json.dumps({"status": status, "step": step, "note": note}))
    write_phase(run_dir, "ended", detail=note)


def warn_memory(
    config: TrainConfig,
    model_config: Any,
    lengths: list[int],
    device: torch.device,
    dtype: torch.dtype,
    labelled: list[int] | None = None,
) -> str | None:
    """Print the estimated peak on the longest batch, and a warning when it exceeds the free memory."""
    estimate = estimate_peak(
        ModelShape.from_config(model_config),
        lengths,
        config.batch_size,
        config.max_length,
        config.gradient_checkpointing,
        config.lora,
        config.lora_r,
        config.loss,
        config.head_at_score,
        torch.tensor([], dtype=dtype).element_size(),
        labelled,
    )
    print(describe(estimate), flush=True)
    where = "the GPU" if device.type == "cuda" else "this machine"
    warning = memory_warning(estimate, free_memory(device), config.gradient_checkpointing, where)
    if warning:
        print("WARNING: " + warning, flush=True)
    return warning
