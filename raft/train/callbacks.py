"""The Trainer's callbacks for a RAFT run: progress.jsonl, the terminal's bar, validation passes and
the cooperative stop, each naming its phase in phase.json so the studio can say what the run is doing."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from raft.judge import Judge
from raft.metrics import agreement
from raft.pair_report import pair_metrics
from raft.runs import PROGRESS_FILE, STOP_FILE
from raft.train.config import TrainConfig
from raft.train.phase import write_phase


class StoppedBeforeTraining(Exception):
    """A stop requested before the first training step of this launch (while loading or validating)."""


class ValidationStopped(Exception):
    """A stop requested in the middle of a validation pass: the pass is abandoned."""


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
