"""A judge as a reward: a callable with TRL's reward-function signature, for GRPOTrainer and kin
(`PairwiseReward`: the probability that a completion beats a reference completion).

    reward = JudgeReward.load("runs/my-judge", rubric="Helpfulness")
    trainer = GRPOTrainer(model=policy, reward_funcs=[reward], train_dataset=prompts, args=config)

Each completion becomes an item: the prompt's (last user) text is the instruction, the completion
the response; the rubric and reference answer come from the dataset's columns (Feedback-Collection
names) or a fixed rubric. The reward is the expected score (or the calibrated interval's lower
bound), optionally mapped to [0, 1] or [-1, 1]. A row the judge cannot score gets `fallback` and
a warning, never an exception mid-training.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from raft.calibration import Calibration
from raft.files import DataError
from raft.judge import Judge, Judgment
from raft.pairwise import PairJudgment
from raft.rubrics import Rubric, load_rubric, with_rubric

SCALINGS = ("raw", "unit", "centered")
"""raw: the score on the judge's scale; unit: mapped to [0, 1]; centered: mapped to [-1, 1]."""
REFERENCE_COLUMNS = ("orig_reference_answer", "reference_answer", "reference")


def message_text(value: Any, role: str | None = None) -> str:
    """The text of a prompt or completion: a string, or the content of its last message of `role`
    (any role when None) in a conversational list of {"role", "content"} messages."""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        chosen = [m for m in value if isinstance(m, dict) and (role is None or m.get("role") == role)]
        if chosen:
            content = chosen[-1].get("content", "")
            if isinstance(content, list):  # multimodal content parts
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""


class JudgeReward:
    """reward(prompts, completions, **columns) -> one float per completion, scored in batches."""

    __name__ = "judge_reward"
    """The name TRL logs the reward under (rewards/judge_reward/mean)."""

    def __init__(
        self,
        judge: Judge,
        rubric: Rubric | str | Path | None = None,
        scaling: str = "raw",
        lower_bound: bool = False,
        fallback: float | None = None,
        batch_size: int = 8,
        mode: str | None = None,
        max_new_tokens: int = 256,
        reference_column: str | None = None,
    ):
        """`rubric`: a preset name, a rubric file or a Rubric for rows without an `orig_criteria`
        column. `lower_bound`: the calibrated interval's lower end instead of the expected score
        (needs a judge with a calibration). `fallback`: the reward of a row that cannot be scored
        (default: the lowest reward the scaling gives). `reference_column`: the dataset column with
        reference answers (default: the first of REFERENCE_COLUMNS present)."""
        if scaling not in SCALINGS:
            raise ValueError(f"unknown scaling '{scaling}'; choose one of {', '.join(SCALINGS)}")
        if lower_bound and judge.calibration is None:
            raise ValueError("lower_bound needs a calibrated judge (calibration=CAL.json from `calibrate`)")
        self.judge, self.scaling, self.lower_bound = judge, scaling, lower_bound
        self.rubric = load_rubric(rubric, judge.scale)
        self.fallback = self.scaled(judge.scale[0]) if fallback is None else float(fallback)
        self.batch_size, self.mode, self.max_new_tokens = batch_size, mode, max_new_tokens
        self.reference_column = reference_column

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        engine: str = "hf",
        device: str | None = None,
        calibration: str | Path | Calibration | None = None,
        engine_args: dict[str, Any] | None = None,
        **options: Any,
    ) -> JudgeReward:
        """A reward from a run folder, exported judge, hub id or folder (None: the default model)."""
        judge = Judge.load(model, device=device, calibration=calibration, engine=engine, engine_args=engine_args)
        return cls(judge, **options)

    def scaled(self, score: float) -> float:
        """A score on the judge's scale as a reward under this scaling."""
        lo, hi = self.judge.scale
        if self.scaling == "unit":
            return (score - lo) / (hi - lo)
        if self.scaling == "centered":
            return 2 * (score - lo) / (hi - lo) - 1
        return float(score)

    def _item(self, prompt: Any, completion: Any, columns: dict[str, list[Any]], i: int) -> dict[str, Any]:
        item = {
            "orig_instruction": message_text(prompt, "user"),
            "orig_response": message_text(completion, "assistant"),
        }
        ref_col = self.reference_column or next((c for c in REFERENCE_COLUMNS if c in columns), None)
        if ref_col is not None:
            item["orig_reference_answer"] = columns[ref_col][i] or ""
        rubric = {k: v[i] for k, v in columns.items() if k == "orig_criteria" or k.startswith("orig_score")}
        return with_rubric({**item, **rubric}, self.rubric, self.judge.scale[0])

    def _reward(self, judgment: Judgment) -> float | None:
        if judgment.error or judgment.expected_score is None:
            return None
        if self.lower_bound and judgment.interval:
            return self.scaled(judgment.interval[0])
        return self.scaled(judgment.expected_score)

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        log_metric: Callable[[str, float], None] | None = columns.pop("log_metric", None)
        data = {k: v for k, v in columns.items() if isinstance(v, list) and len(v) == len(completions)}
        items = [self._item(p, c, data, i) for i, (p, c) in enumerate(zip(prompts, completions))]
        try:
            judgments = self.judge.score(
                items, mode=self.mode, batch_size=self.batch_size, max_new_tokens=self.max_new_tokens
            )
        except Exception as exc:  # a crash mid-training loses the run; every row falls back instead
            warnings.warn(f"judge reward: the batch could not be scored: {exc}", stacklevel=2)
            judgments = [Judgment(error=str(exc)) for _ in items]
        rewards = [self._reward(j) for j in judgments]
        for i, (judgment, reward) in enumerate(zip(judgments, rewards)):
            if reward is None:
                warnings.warn(
                    f"judge reward: row {i} not scored ({judgment.error}); reward {self.fallback}", stacklevel=2
                )
        if log_metric is not None:
            log_metric("judge_reward/unscored", sum(r is None for r in rewards) / max(1, len(rewards)))
        return [self.fallback if r is None else r for r in rewards]


PAIR_REFERENCE_COLUMNS = ("reference_completion", "baseline_completion", "baseline", "chosen")
"""Dataset columns tried, in order, for the completion each new one is compared with."""


class PairwiseReward:
    """reward(prompts, completions, **columns) -> the probability that each completion beats the
    reference completion for its prompt, from a pairwise judge (both orders, so position-free).

    The completion is response A and the reference response B; the criterion comes from an
    `orig_criteria` column, else the given criterion or rubric (a preset name, file, Rubric or
    text), else the pair default. `scaling` "unit" gives P in [0, 1], "centered" 2P - 1 in [-1, 1].
    A row the judge cannot compare gets `fallback` (default: the lowest reward) and a warning."""

    __name__ = "pairwise_reward"

    def __init__(
        self,
        judge: Judge,
        reference_column: str | None = None,
        criterion: Rubric | str | Path | None = None,
        scaling: str = "unit",
        fallback: float | None = None,
        batch_size: int = 8,
        mode: str | None = None,
        max_new_tokens: int = 256,
        both_orders: bool = True,
    ):
        if scaling not in ("unit", "centered"):
            raise ValueError(f"unknown scaling '{scaling}'; choose unit or centered")
        self.judge, self.scaling, self.reference_column = judge, scaling, reference_column
        self.criterion = _criterion_text(criterion, judge.scale)
        self.fallback = self.scaled(0.0) if fallback is None else float(fallback)
        self.batch_size, self.mode, self.max_new_tokens = batch_size, mode, max_new_tokens
        self.both_orders = both_orders

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        engine: str = "hf",
        device: str | None = None,
        engine_args: dict[str, Any] | None = None,
        **options: Any,
    ) -> PairwiseReward:
        """A pairwise reward from a run folder trained on pairs, a hub id or folder (None: the default model)."""
        return cls(Judge.load(model, device=device, engine=engine, engine_args=engine_args), **options)

    def scaled(self, p: float) -> float:
        return 2 * p - 1 if self.scaling == "centered" else float(p)

    def _pair(self, prompt: Any, completion: Any, columns: dict[str, list[Any]], i: int) -> dict[str, Any]:
        column = self.reference_column or next((c for c in PAIR_REFERENCE_COLUMNS if c in columns), None)
        if column is None or column not in columns:
            raise ValueError(f"no reference completion column; name one (tried {', '.join(PAIR_REFERENCE_COLUMNS)})")
        criteria = columns.get("orig_criteria", [None] * (i + 1))[i] or self.criterion
        return {
            "orig_instruction": message_text(prompt, "user"),
            "orig_response_A": message_text(completion, "assistant"),
            "orig_response_B": message_text(columns[column][i], "assistant"),
            **({"orig_criteria": criteria} if criteria else {}),
        }

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        log_metric: Callable[[str, float], None] | None = columns.pop("log_metric", None)
        data = {k: v for k, v in columns.items() if isinstance(v, list) and len(v) == len(completions)}
        pairs = [self._pair(p, c, data, i) for i, (p, c) in enumerate(zip(prompts, completions))]
        try:
            judged = self.judge.compare(
                pairs, self.mode, self.both_orders, self.batch_size, max_new_tokens=self.max_new_tokens
            )
        except Exception as exc:  # a crash mid-training loses the run; every row falls back instead
            warnings.warn(f"pairwise reward: the batch could not be compared: {exc}", stacklevel=2)
            judged = [PairJudgment(error=str(exc)) for _ in pairs]
        rewards = []
        for i, j in enumerate(judged):
            if j.p_a is None:
                note = f"pairwise reward: row {i} not compared ({j.error}); reward {self.fallback}"
                warnings.warn(note, stacklevel=2)
                rewards.append(self.fallback)
            else:
                rewards.append(self.scaled(j.p_a))
        if log_metric is not None:
            log_metric("pairwise_reward/unscored", sum(j.p_a is None for j in judged) / max(1, len(judged)))
        return rewards


def _criterion_text(criterion: Rubric | str | Path | None, scale: tuple[int, int]) -> str | None:
    """A criterion from a Rubric, a preset name or rubric file, or the text itself."""
    if criterion is None or isinstance(criterion, Rubric):
        return criterion.criteria if criterion else None
    try:
        return load_rubric(criterion, scale).criteria
    except (DataError, ValueError):
        return str(criterion)
