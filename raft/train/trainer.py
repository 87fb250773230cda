"""RAFT fine-tuning with transformers' Trainer: the loss is passed in as `compute_loss_func`.

The whole run reads top to bottom in `train`: load the base model, tokenize the dataset so each
row's score position is known, wrap LoRA, train with progress/eval/stop callbacks, save the
adapter (or model) with a judge manifest so that `Judge.load(run_dir)` works.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from raft.data import read_jsonl
from raft.judge import Judge
from raft.loss import IGNORE, make_loss
from raft.metrics import agreement
from raft.models import MANIFEST, fetch_default, resolve_device
from raft.prompts import SCORE_CUE, apply_chat
from raft.scores import ScoreTokens, find_score_tokens
from raft.train.config import TrainConfig

STOP_FILE = "STOP"
RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.jsonl"


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
    so each loss term is divided by its own global count. Nothing else is changed."""

    score_token_ids: list[int] = []

    def get_batch_samples(self, epoch_iterator, num_batches, device):  # noqa: D102
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        if not batches or "labels" not in batches[0]:
            return batches, None
        counts = count_items(batches, self.score_token_ids).to(device)
        if self.args.world_size > 1:
            counts = self.accelerator.gather(counts.unsqueeze(0)).reshape(-1, 2).sum(0)
        return batches, counts


def tokenize(example: dict[str, Any], tokenizer: Any, score_tokens: ScoreTokens, score_only: bool) -> dict[str, Any]:
    """input_ids and unshifted labels; score-only labels mark just the score token."""
    prompt = tokenizer(apply_chat(tokenizer, example["prompt"]), add_special_tokens=False)["input_ids"]
    prefix = tokenizer(example["target_prefix"] + score_tokens.cue, add_special_tokens=False)["input_ids"]
    score = score_tokens.id_for(example["score"])
    ids = [*prompt, *prefix, score, tokenizer.eos_token_id]
    if score_only:
        labels = [IGNORE] * (len(prompt) + len(prefix)) + [score, IGNORE]
    else:
        labels = [IGNORE] * len(prompt) + [*prefix, score, tokenizer.eos_token_id]
    return {"input_ids": ids, "labels": labels, "score_pos": len(prompt) + len(prefix)}


class Collator:
    """Right-pads a batch. With `head_at_score`, asks the model for logits at each row's score
    position only (`logits_to_keep` of shape (B, 1)) and gives matching compact labels (B, 2)."""

    def __init__(self, pad_id: int, head_at_score: bool):
        self.pad_id, self.head_at_score = pad_id, head_at_score

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n], mask[i, :n], labels[i, :n] = torch.tensor(r["input_ids"]), 1, torch.tensor(r["labels"])
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if self.head_at_score:
            pos = torch.tensor([r["score_pos"] for r in rows])
            batch["logits_to_keep"] = (pos - 1).unsqueeze(1)
            batch["labels"] = torch.stack([torch.full_like(pos, IGNORE), labels[torch.arange(len(rows)), pos]], dim=1)
        return batch


class Progress(TrainerCallback):
    """Writes progress.jsonl (rank 0): step, totals, losses and their parts, lr, eval, timings."""

    def __init__(self, run_dir: Path, parts: dict[str, float]):
        self.path, self.parts = run_dir / PROGRESS_FILE, parts
        self.sums: dict[str, float] = {}
        self.pending_eval: dict[str, Any] | None = None
        self.start, self.offset, self.last_step, self.first_step = time.time(), 0.0, 0, None
        if self.path.is_file():
            lines = self.path.read_text().splitlines()
            self.offset = json.loads(lines[-1]).get("elapsed_s", 0.0) if lines else 0.0

    def add_parts(self) -> None:
        for k, v in self.parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.parts.clear()

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def on_train_begin(self, args, state, control, **kwargs):
        self.first_step = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if not state.is_world_process_zero or "loss" not in logs:
            return
        steps = max(state.global_step - self.last_step, 1)
        run_time = time.time() - self.start
        done = state.global_step - (self.first_step or 0)
        remaining = run_time / done * (state.max_steps - state.global_step) if done else None
        record = {
            "step": state.global_step,
            "total_steps": state.max_steps,
            "epoch": state.epoch,
            "loss": logs["loss"],
            **{k: v / steps * args.world_size for k, v in self.sums.items()},  # rank 0's estimate
            "lr": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "elapsed_s": round(self.offset + run_time, 2),
            "remaining_s": None if remaining is None else round(remaining, 2),
        }
        if self.pending_eval is not None:
            record["eval"], self.pending_eval = self.pending_eval, None
        self.write(record)
        self.sums, self.last_step = {}, state.global_step

    def on_train_end(self, args, state, control, **kwargs):
        if self.pending_eval is not None and state.is_world_process_zero:
            self.write(
                {
                    "step": state.global_step,
                    "total_steps": state.max_steps,
                    "epoch": state.epoch,
                    "eval": self.pending_eval,
                    "elapsed_s": round(self.offset + time.time() - self.start, 2),
                }
            )


class Evaluate(TrainerCallback):
    """RAIL on validation rows every `eval_steps`, at the start and at the end (rank 0)."""

    def __init__(self, judge: Judge, items: list[dict[str, Any]], mode: str, config: TrainConfig, progress: Progress):
        self.judge, self.items, self.mode, self.config, self.progress = judge, items, mode, config, progress

    def run(self) -> dict[str, Any]:
        was_training = self.judge.model.training
        self.judge.model.eval()
        results = self.judge.score(
            self.items,
            mode=self.mode,
            batch_size=self.config.batch_size,
            max_new_tokens=self.config.eval_max_new_tokens,
        )
        self.judge.model.train(was_training)
        metrics = agreement([i["orig_score"] for i in self.items], [r.expected_score for r in results])
        return {k: metrics[k] for k in ("n", "pearson", "spearman", "kendall", "rmse", "mae", "exact")}

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.items and state.global_step == 0:
            self.progress.write(
                {
                    "step": 0,
                    "total_steps": state.max_steps,
                    "epoch": 0.0,
                    "eval": self.run(),
                    "elapsed_s": round(self.progress.offset, 2),
                }
            )

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.add_parts()
        due = state.global_step % self.config.eval_steps == 0 or state.global_step >= state.max_steps
        if state.is_world_process_zero and self.items and due:
            self.progress.pending_eval = self.run()
            control.should_log = True


class StopOnRequest(TrainerCallback):
    """A cooperative stop: when run_dir/STOP appears, save a checkpoint and end after this step."""

    def __init__(self, run_dir: Path):
        self.flag = run_dir / STOP_FILE
        self.stopped = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.flag.exists():
            self.stopped = control.should_save = control.should_training_stop = True


def _precision(config: TrainConfig, device: torch.device) -> tuple[torch.dtype, dict[str, bool]]:
    choice = config.precision
    if choice == "auto":
        choice = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return {"bf16": torch.bfloat16, "fp16": torch.float32, "fp32": torch.float32}[choice], {
        "bf16": choice == "bf16",
        "fp16": choice == "fp16",
    }


def _load_examples(config: TrainConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    data = Path(config.data)
    if not (data / "train.jsonl").is_file():
        raise FileNotFoundError(f"{data}: no train.jsonl (build one with `python -m raft prepare`)")
    train = read_jsonl(data / "train.jsonl")
    validation = read_jsonl(data / "validation.jsonl") if (data / "validation.jsonl").is_file() else []
    mode = train[0]["mode"]
    if config.loss == "cot_raft" and mode != "feedback_score":
        raise ValueError(f"loss cot_raft needs a feedback_score dataset; {data} is {mode}")
    return train, validation, mode


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run one training job in config.output_dir and return that folder."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STOP_FILE).unlink(missing_ok=True)
    (run_dir / RESULT_FILE).unlink(missing_ok=True)
    config.to_yaml(run_dir / "config.yaml")
    train_rows, val_rows, mode = _load_examples(config)

    base = config.base_model or str(fetch_default())
    device = resolve_device(config.device)
    dtype, amp = _precision(config, device)
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=config.trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, trust_remote_code=config.trust_remote_code)
    score_tokens = find_score_tokens(tokenizer, tuple(config.scale), SCORE_CUE)
    print(score_tokens.describe(), flush=True)

    score_only = config.loss == "raft"  # only the score term is trained: label just the score token
    tokenized = [tokenize(ex, tokenizer, score_tokens, score_only) for ex in train_rows]
    kept = [t for t in tokenized if len(t["input_ids"]) <= config.max_length]
    if len(kept) < len(tokenized):
        print(
            f"left out {len(tokenized) - len(kept)} of {len(tokenized)} examples longer than "
            f"max_length {config.max_length}",
            flush=True,
        )
    if not kept:
        raise ValueError(f"no training example fits max_length {config.max_length}")

    if config.lora:
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

    world = int(os.environ.get("WORLD_SIZE", 1))
    steps_per_epoch = math.ceil(len(kept) / (config.batch_size * config.grad_accum * world))
    total = config.max_steps if config.max_steps > 0 else math.ceil(steps_per_epoch * config.epochs)
    args = TrainingArguments(
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
        **amp,
    )
    parts: dict[str, float] = {}
    loss = make_loss(config.loss, score_tokens.ids, score_tokens.values, config.lam, parts)
    progress = Progress(run_dir, parts)
    judge = Judge(model, tokenizer, config.template, tuple(config.scale))
    val_items = [r["item"] for r in val_rows[: config.eval_rows or None]]
    stop = StopOnRequest(run_dir)
    head = config.head_at_score and score_only
    trainer = RaftTrainer(
        model=model,
        args=args,
        train_dataset=kept,
        data_collator=Collator(tokenizer.pad_token_id, head),
        compute_loss_func=loss,
        callbacks=[
            progress,
            Evaluate(judge, val_items, "score_only" if mode == "score_only" else "feedback", config, progress),
            stop,
        ],
    )
    trainer.score_token_ids = list(score_tokens.ids)
    checkpoints = list((run_dir / "checkpoints").glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=bool(resume and checkpoints) or None)

    if trainer.is_world_process_zero():
        status = "stopped" if stop.stopped else "completed"
        if not stop.stopped:
            save_judge(trainer.model, tokenizer, run_dir, config, score_tokens, mode)
        (run_dir / RESULT_FILE).write_text(json.dumps({"status": status, "step": trainer.state.global_step}))
    return run_dir


def save_judge(
    model: Any, tokenizer: Any, run_dir: Path, config: TrainConfig, score_tokens: ScoreTokens, mode: str
) -> None:
    """The final adapter (or full model) and the judge manifest that `Judge.load(run_dir)` reads."""
    folder = "adapter" if config.lora else "model"
    model.save_pretrained(run_dir / folder)
    tokenizer.save_pretrained(run_dir / folder)
    manifest = {
        "base_model": config.base_model,
        "adapter": folder if config.lora else None,
        "weights": folder,
        "template": config.template,
        "scale": list(config.scale),
        "score_token_ids": list(score_tokens.ids),
        "mode": "score_only" if mode == "score_only" else "feedback",
        "loss": config.loss,
    }
    (run_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
