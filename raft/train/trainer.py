"""RAFT fine-tuning with transformers' Trainer: the loss is passed in as `compute_loss_func`.

The whole run reads top to bottom in `_train` (`train` wraps it with the run folder's result): load
the base model, tokenize the dataset so each row's score position is known, wrap LoRA, train with
progress/eval/stop callbacks, save the adapter (or model) with a judge manifest so that
`Judge.load(run_dir)` works.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from raft.data import read_dataset_manifest, read_jsonl
from raft.engines.transformers import TransformersEngine
from raft.errors import RaftError
from raft.gold import ce_examples, describe_ce_targets
from raft.insample import trained_hashes, write_trained_rows
from raft.judge import Judge
from raft.loss import IGNORE, loss_kind, make_loss, target_distribution
from raft.metrics import agreement
from raft.models import JUDGE_MANIFEST, default_ready, fetch_default, needs_default, resolve_device, resolve_model
from raft.pair_report import pair_metrics
from raft.prompts import JudgePrompt, apply_chat
from raft.runs import CONFIG_FILE, PROGRESS_FILE, RESULT_FILE, STOP_FILE, last_checkpoint_step, trim_progress
from raft.scores import ScoreTokens, find_pair_tokens, find_score_tokens
from raft.train.config import TrainConfig
from raft.train.memory import ModelShape, describe, estimate_peak, free_memory, keep_heap_small, memory_warning
from raft.train.phase import write_phase


class RunFolderError(RaftError, ValueError):
    """A run folder that cannot be used for this run (it holds another run, or nothing to resume)."""


class StoppedBeforeTraining(Exception):
    """A stop requested before the first training step of this launch (while loading or validating)."""


class ValidationStopped(Exception):
    """A stop requested in the middle of a validation pass: the pass is abandoned."""


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


def tokenize(example: dict[str, Any], tokenizer: Any, score_tokens: ScoreTokens, score_only: bool) -> dict[str, Any]:
    """input_ids, unshifted labels (score-only labels mark just the score token) and the float gold.

    The prompt part is exactly what `Judge.prompt` renders for the example's item with the same
    templates (the chat-formatted filled template), so the judge is served as it was trained.
    """
    prompt = tokenizer(apply_chat(tokenizer, example["prompt"]), add_special_tokens=False)["input_ids"]
    prefix = tokenizer(example["target_prefix"] + score_tokens.cue, add_special_tokens=False)["input_ids"]
    score = score_tokens.id_for(example["score"])
    ids = [*prompt, *prefix, score, tokenizer.eos_token_id]
    if score_only:
        labels = [IGNORE] * (len(prompt) + len(prefix)) + [score, IGNORE]
    else:
        labels = [IGNORE] * len(prompt) + [*prefix, score, tokenizer.eos_token_id]
    gold = float(example.get("gold", example["score"]))
    target = target_distribution(gold, score_tokens.values, example.get("item", {}).get("rater_scores"))
    return {"input_ids": ids, "labels": labels, "score_pos": len(prompt) + len(prefix), "gold": gold, "target": target}


class Collator:
    """Right-pads a batch. With `head_at_score`, asks the model for logits at each row's score
    position only (`logits_to_keep` of shape (B, 1)) and gives matching compact labels (B, 2).
    With `head_at_labels` (CE, CoT-RAFT), asks for logits only at the positions that predict a
    label in some row (`logits_to_keep` of shape (K,)) and gives labels (B, K + 1) in which
    column j + 1 is the label that logits column j predicts: the loss is the same, and a feedback
    target of a few hundred tokens after a 2,000-token prompt no longer costs B x 2,000 x V logits."""

    def __init__(self, pad_id: int, head_at_score: bool, head_at_labels: bool = False):
        self.pad_id, self.head_at_score, self.head_at_labels = pad_id, head_at_score, head_at_labels

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n], mask[i, :n], labels[i, :n] = torch.tensor(r["input_ids"]), 1, torch.tensor(r["labels"])
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if all("gold" in r for r in rows):
            batch["gold"] = torch.tensor([float(r["gold"]) for r in rows], dtype=torch.float32)
        if all("target" in r for r in rows):
            batch["target"] = torch.tensor([r["target"] for r in rows], dtype=torch.float32)
        if self.head_at_score:
            pos = torch.tensor([r["score_pos"] for r in rows])
            batch["logits_to_keep"] = (pos - 1).unsqueeze(1)
            batch["labels"] = torch.stack([torch.full_like(pos, IGNORE), labels[torch.arange(len(rows)), pos]], dim=1)
        elif self.head_at_labels:
            keep = torch.nonzero(labels[:, 1:].ne(IGNORE).any(dim=0)).squeeze(-1)  # logits t predict labels t + 1
            batch["logits_to_keep"] = keep
            batch["labels"] = torch.cat([torch.full((len(rows), 1), IGNORE, dtype=torch.long), labels[:, keep + 1]], 1)
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
        """Move one optimizer step's loss parts (summed over its micro-batches) into the running sums."""
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


class TerminalProgress(TrainerCallback):
    """What `python -m raft train` shows on stderr (rank 0), in place of transformers' dict lines:
    a bar with step k/n, the loss, the rate and the time left on a terminal; on a log file (a studio
    job) one plain line per logged step with the same figures."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stderr
        self.bar: Any = None
        self.start, self.first = time.time(), 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.start, self.first = time.time(), state.global_step
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, unit="step", desc="training",
                file=self.stream, dynamic_ncols=True,
            )  # fmt: skip

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if not state.is_world_process_zero or "loss" not in logs:
            return
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            self.bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=True)
            return
        done = state.global_step - self.first
        spent = time.time() - self.start
        rate = f"{spent / done:.2f} s/step" if done else "? s/step"
        left = spent / done * (state.max_steps - state.global_step) if done else None
        eta = "?" if left is None else f"{int(left // 60)}m {int(left % 60):02d}s"
        print(
            f"step {state.global_step}/{state.max_steps} · loss {logs['loss']:.4g} · {rate} · time left {eta}",
            file=self.stream,
            flush=True,
        )

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Evaluate(TrainerCallback):
    """RAIL on validation rows every `eval_steps`, at the start and at the end (rank 0).

    The pass names itself (validating k/n batches) and checks the stop flag before each batch (and
    every few generated tokens in feedback mode): a stop abandons it, and StopOnRequest (the next
    callback) then ends the run."""

    def __init__(
        self,
        judge: Judge,
        items: list[dict[str, Any]],
        mode: str,
        config: TrainConfig,
        progress: Progress,
        stop_flag: Path | None = None,
    ):
        self.judge, self.items, self.mode, self.config, self.progress = judge, items, mode, config, progress
        self.stop_flag = stop_flag

    def _batch_done(self, step: int) -> Any:
        def report(done: int, total: int) -> None:
            write_phase(self.progress.path.parent, "validating", done, total, step=step)
            if self.stop_flag is not None and self.stop_flag.exists() and done < total:
                raise ValidationStopped

        return report

    def _token_check(self, every: int = 16) -> Any:
        """on_tokens for generated validation (feedback): a stop ends the pass within `every` tokens."""
        seen = {"n": 0}

        def check(row: int, ids: list[int]) -> None:
            seen["n"] += 1
            if seen["n"] % every == 0 and self.stop_flag is not None and self.stop_flag.exists():
                raise ValidationStopped

        return check

    def run(self, step: int = 0) -> dict[str, Any] | None:
        """Validation metrics, or None when a stop was requested before or during the pass."""
        batches = math.ceil(len(self.items) / max(self.config.batch_size, 1))
        write_phase(self.progress.path.parent, "validating", 0, batches, step=step)
        if self.stop_flag is not None and self.stop_flag.exists():
            return None
        was_training = self.judge.model.training
        self.judge.model.eval()
        try:
            if self.judge.pairwise:
                return self._pairs(step)
            results = self.judge.score(
                self.items,
                mode=self.mode,
                batch_size=self.config.batch_size,
                max_new_tokens=self.config.eval_max_new_tokens,
                progress=self._batch_done(step),
                on_tokens=self._token_check() if self.mode != "score_only" and self.stop_flag else None,
            )
        except ValidationStopped:
            return None
        finally:
            self.judge.model.train(was_training)
        metrics = agreement([i["orig_score"] for i in self.items], [r.expected_score for r in results])
        return {k: metrics[k] for k in ("n", "pearson", "spearman", "kendall", "rmse", "mae", "exact")}

    def _pairs(self, step: int) -> dict[str, Any]:
        """Validation of a pairwise judge: both orders of each pair, accuracy, Brier and position consistency."""
        results = self.judge.compare(
            self.items,
            mode=self.mode,
            batch_size=self.config.batch_size,
            max_new_tokens=self.config.eval_max_new_tokens,
            progress=self._batch_done(step),
        )
        kept = [(i, r) for i, r in zip(self.items, results) if r.p_a is not None]
        m = pair_metrics(
            [i["orig_preference"] for i, _ in kept],
            [r.p_a for _, r in kept],
            [r.p_ab for _, r in kept],
            [r.p_ba for _, r in kept],
            n_boot=0,
        )
        out = {"n": m["n"], **{k: m[k]["value"] for k in ("accuracy", "auc", "brier", "position_consistency")}}
        return {**out, "position_bias": m["position_bias"]}

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.items and state.global_step == 0:
            metrics = self.run(0)
            if metrics is not None:
                self.progress.write(
                    {
                        "step": 0,
                        "total_steps": state.max_steps,
                        "epoch": 0.0,
                        "eval": metrics,
                        "elapsed_s": round(self.progress.offset, 2),
                    }
                )

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.add_parts()
        due = state.global_step % self.config.eval_steps == 0 or state.global_step >= state.max_steps
        if state.is_world_process_zero and self.items and due:
            self.progress.pending_eval = self.run(state.global_step)
            control.should_log = True


class StopOnRequest(TrainerCallback):
    """A cooperative stop: when run_dir/STOP appears, save a checkpoint and end after this step;
    before the first step (while loading or validating) end at once with no step taken.

    Rank 0 alone reads the flag and its decision is broadcast, so that every process stops at the
    same step (processes that decide alone can stop at different steps and wait for ever). It also
    names the training phase (step k/n, saving) in phase.json.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.flag = run_dir / STOP_FILE
        self.stopped = False

    def requested(self, is_rank_zero: bool, world_size: int, device: torch.device | str) -> bool:
        wanted = is_rank_zero and self.flag.exists()
        if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            decision = torch.tensor([int(wanted)], device=device)
            torch.distributed.broadcast(decision, src=0)
            wanted = bool(decision.item())
        return wanted

    def check_alone(self) -> None:
        """Before the processes meet (one process only): end now if a stop was requested."""
        if self.flag.exists():
            raise StoppedBeforeTraining

    def on_train_begin(self, args, state, control, **kwargs):
        if self.requested(state.is_world_process_zero, args.world_size, args.device):
            raise StoppedBeforeTraining

    def on_step_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            write_phase(self.run_dir, "training", state.global_step + 1, state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested(state.is_world_process_zero, args.world_size, args.device):
            self.stopped = control.should_save = control.should_training_stop = True
        if state.is_world_process_zero and control.should_save:
            what = "stopping" if self.stopped else "saving"
            why = "stopping: saving a checkpoint" if self.stopped else "saving a checkpoint"
            write_phase(self.run_dir, what, detail=f"{why} at step {state.global_step}")


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


def _train(config: TrainConfig, run_dir: Path, resume: bool, world: int, rank: int) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stop = StopOnRequest(run_dir)
    lead = rank == 0

    def phase(name: str, done: int | None = None, total: int | None = None, **extra: Any) -> None:
        """Name the phase (rank 0) and, in a one-process run, end here if a stop was requested."""
        if lead:
            write_phase(run_dir, name, done, total, **extra)
        if world == 1:
            stop.check_alone()

    phase("loading", detail="reading the dataset")
    train_rows, val_rows, dataset = load_dataset_for(config)
    mode, prompt = dataset["mode"], dataset["prompt"]
    if resume and lead:
        trim_progress(run_dir, last_checkpoint_step(run_dir))

    if not default_ready() and needs_default(config.base_model):
        phase("preparing", detail="preparing the default model (first use: a 517 MB download, then a conversion)")
        fetch_default(progress=lambda k, n, what: phase("preparing", k, n, detail=what))
    base, adapter, _ = resolve_model(config.base_model)  # a run folder: continue from its adapter
    if adapter and not config.lora:
        raise ValueError(f"{config.base_model} holds a LoRA adapter: continue it with lora: true")
    if lead:  # which rows it trains on (hashes), for evaluations that must not count them as unseen
        earlier = trained_hashes(config.base_model) if config.base_model and Path(config.base_model).is_dir() else None
        write_trained_rows(run_dir, (r["item"] for r in train_rows if isinstance(r.get("item"), dict)), earlier or ())
    phase("loading", detail=f"loading the model {Path(base).name}")
    device = resolve_device(config.device)
    check_launch(device.type, world, torch.cuda.device_count() if device.type == "cuda" else 0)
    dtype, amp = _precision(config, device)
    if device.type == "cpu":
        keep_heap_small()  # freed activations go back to the system (see raft.train.memory)
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=config.trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, trust_remote_code=config.trust_remote_code)
    phase("loading", detail=f"tokenizing {len(train_rows)} training examples")
    scale = tuple(dataset["scale"])
    pairwise = dataset.get("task") == "pairwise"  # the score tokens are the verdict letters A and B
    find = find_pair_tokens if pairwise else functools.partial(find_score_tokens, scale=scale)
    score_tokens = find(tokenizer, cue=dataset["score_cue"])
    print(score_tokens.describe(), flush=True)

    kind = loss_kind(config.loss)
    score_only = kind.score_only  # only the score term is trained: label just the score token
    if kind.per_rater and not pairwise:  # a token target: one example per rater score, else the rounded gold
        # (a pair's letter is set already: a tie's is A, then B in the swapped order)
        given = len(train_rows)
        train_rows, counts = ce_examples(train_rows)
        if any(counts.values()):
            print(describe_ce_targets(counts, given), flush=True)
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
    if lead:
        labelled = [sum(label != IGNORE for label in t["labels"]) for t in kept]
        warn_memory(config, model.config, [len(t["input_ids"]) for t in kept], device, dtype, labelled)

    if adapter:
        from peft import PeftModel

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
        **scale_out(config),
        **amp,
    )
    parts: dict[str, float] = {}
    loss = make_loss(config.loss, score_tokens.ids, score_tokens.values, config.lam, parts, pairwise)
    progress = Progress(run_dir, parts)
    judge = Judge(TransformersEngine(model, tokenizer), prompt, scale, mode=mode, cue=dataset["score_cue"])
    val_items = [r["item"] for r in val_rows if r.get("order", "AB") == "AB"][: config.eval_rows or None]
    head = config.head_at_score and score_only
    trainer = RaftTrainer(
        model=model,
        args=args,
        train_dataset=kept,
        data_collator=Collator(tokenizer.pad_token_id, head, head_at_labels=config.head_at_score and not score_only),
        processing_class=tokenizer,  # saved in each checkpoint: a full-weights checkpoint serves alone
        compute_loss_func=loss,
        callbacks=[
            progress,
            Evaluate(judge, val_items, mode, config, progress, stop.flag if lead else None),
            stop,
        ],
    )
    trainer.score_token_ids = list(score_tokens.ids)
    trainer.remove_callback(PrinterCallback)  # its dict lines give way to a bar with k/n and the time left
    trainer.add_callback(TerminalProgress())
    if rank == 0:  # servable from its first checkpoint: the manifest is there before any weights
        write_manifest(run_dir, config, score_tokens, dataset, base if adapter else None)
    checkpoints = list((run_dir / "checkpoints").glob("checkpoint-*"))
    phase("loading", detail="starting the trainer")
    trainer.train(resume_from_checkpoint=bool(resume and checkpoints) or None)

    if trainer.is_world_process_zero():
        status = "stopped" if stop.stopped else "completed"
        step = trainer.state.global_step
        if not stop.stopped:
            write_phase(run_dir, "saving", detail="saving the judge")
            save_judge(trainer.model, tokenizer, run_dir, config, score_tokens, dataset, base if adapter else None)
        note = f"stopped at step {step}; checkpoint-{step} kept" if stop.stopped else f"completed {step} steps"
        (run_dir / RESULT_FILE).write_text(json.dumps({"status": status, "step": step, "note": note}))
        write_phase(run_dir, "ended", detail=note)
    return run_dir


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


def save_judge(
    model: Any,
    tokenizer: Any,
    run_dir: Path,
    config: TrainConfig,
    score_tokens: ScoreTokens,
    dataset: dict[str, Any],
    continued_base: str | None = None,
) -> None:
    """The final adapter (or full model) and the judge manifest that `Judge.load(run_dir)` reads:
    the template text, scale, score cue and mode it was trained with travel in the run folder.
    A run continued from another run's adapter names that run's base model as its own."""
    folder = "adapter" if config.lora else "model"
    saving = run_dir / f".{folder}.saving"  # written whole, then renamed: a reader never loads half a judge
    shutil.rmtree(saving, ignore_errors=True)
    model.save_pretrained(saving)
    tokenizer.save_pretrained(saving)
    shutil.rmtree(run_dir / folder, ignore_errors=True)
    os.rename(saving, run_dir / folder)
    write_manifest(run_dir, config, score_tokens, dataset, continued_base)


def write_manifest(
    run_dir: Path,
    config: TrainConfig,
    score_tokens: ScoreTokens,
    dataset: dict[str, Any],
    continued_base: str | None = None,
) -> None:
    """judge.json, written when training starts (a stopped run serves its newest checkpoint) and
    again with the final weights; a continued run names its base model as its own."""
    folder = "adapter" if config.lora else "model"
    prompt: JudgePrompt = dataset["prompt"]
    manifest = {
        "base_model": continued_base or config.base_model,
        "continued_from": config.base_model if continued_base else None,
        "adapter": folder if config.lora else None,
        "weights": folder,
        "template": prompt.with_reference.name,
        "prompt": prompt.to_dict(),
        "scale": list(dataset["scale"]),
        "score_cue": score_tokens.cue,
        "score_token_ids": list(score_tokens.ids),
        "mode": dataset["mode"],
        "task": dataset.get("task", "absolute"),
        "loss": config.loss,
        "columns": dataset.get("columns", {}),
    }
    tmp = run_dir / (JUDGE_MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(run_dir / JUDGE_MANIFEST)
