"""Losses for judge fine-tuning, in transformers' `compute_loss_func` shape.

Conventions (each one a bug of the original research code, not to reappear):
- labels are unshifted: the logits that predict labels[:, t] sit at logits[:, t - 1];
- each row's score position is the last label that is a score token, found per row from the
  labels, never from the end of a padded row;
- the expected score and the gold score are both shape (N,), so no (N, N) broadcast;
- sums are divided once, by `num_items_in_batch` when given (the count over the whole global
  batch, so gradient accumulation and several devices give the gradient of one big batch).

`num_items_in_batch` is None (means over this batch), a number (the divisor of every term), or a
pair (CE tokens, score items) as `raft.train` counts them, one divisor per term.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

IGNORE = -100


def score_positions(labels: torch.Tensor, score_token_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, positions) of each row's last score-token label; rows without one are left out."""
    ids = torch.as_tensor(list(score_token_ids), device=labels.device)
    positions = torch.arange(labels.shape[1], device=labels.device).expand_as(labels)
    last = torch.where(torch.isin(labels, ids), positions, -1).max(dim=1).values
    rows = torch.nonzero(last > 0).squeeze(-1)
    return rows, last[rows]


def expected_score(
    row_logits: torch.Tensor, score_token_ids: Sequence[int], score_values: Sequence[float]
) -> torch.Tensor:
    """sum_k v_k * p_k, p_k the full-vocabulary softmax probability of score token k: shape (N,)."""
    dtype = torch.promote_types(row_logits.dtype, torch.float32)  # bf16 logits are upcast, fp64 kept
    ids = torch.as_tensor(list(score_token_ids), device=row_logits.device)
    values = torch.as_tensor(list(score_values), dtype=dtype, device=row_logits.device)
    probs = torch.softmax(row_logits.to(dtype), dim=-1)[:, ids]
    return probs @ values


def _divisor(num_items_in_batch: Any, term: int, fallback: torch.Tensor | int) -> torch.Tensor | int:
    if num_items_in_batch is None:
        return fallback
    if torch.is_tensor(num_items_in_batch) and num_items_in_batch.numel() == 2:
        return num_items_in_batch.reshape(-1)[term]
    if isinstance(num_items_in_batch, (tuple, list)):
        return num_items_in_batch[term]
    return num_items_in_batch


def _squared_errors(
    logits, labels, score_token_ids, score_values, gold=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each scored row's (gold - expected score)^2; the gold is the row's float `gold` (B,) when
    given (a mean of raters, 4.333), else the value of its labelled score token."""
    rows, pos = score_positions(labels, score_token_ids)
    predicted = expected_score(logits[rows, pos - 1], score_token_ids, score_values)
    if gold is not None:
        target = torch.as_tensor(gold, device=labels.device).to(predicted.dtype)[rows]
    else:
        ids = torch.as_tensor(list(score_token_ids), device=labels.device)
        values = torch.as_tensor(list(score_values), dtype=predicted.dtype, device=labels.device)
        target = values[(labels[rows, pos].unsqueeze(-1) == ids).int().argmax(-1)]
    return (target - predicted) ** 2, rows, pos


def raft_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    score_token_ids: Sequence[int],
    score_values: Sequence[float],
    num_items_in_batch: Any = None,
    gold: torch.Tensor | None = None,
) -> torch.Tensor:
    """RAFT: squared error between the gold score (float `gold` per row when given) and the
    expected score at each row's score position."""
    se, _, _ = _squared_errors(logits, labels, score_token_ids, score_values, gold)
    if se.numel() == 0:
        return logits.sum() * 0.0
    return se.sum() / _divisor(num_items_in_batch, 1, se.numel())


def _token_ce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy and its token count, without copying the logits. The logits
    are the whole row's (T, labels T) or only those that predict labels[:, 1:] (T - 1, as the
    collator's `head_at_labels` gives them)."""
    if logits.shape[1] == labels.shape[1] - 1:
        targets = labels[:, 1:]
    else:
        targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE)
    flat = logits.reshape(-1, logits.shape[-1])
    total = F.cross_entropy(flat, targets.reshape(-1).to(flat.device), ignore_index=IGNORE, reduction="sum")
    return total, targets.ne(IGNORE).sum()


def ce_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
    """Plain next-token cross-entropy over all labelled tokens (the baseline the papers beat)."""
    total, count = _token_ce(logits, labels)
    if isinstance(num_items_in_batch, (tuple, list)) or (
        torch.is_tensor(num_items_in_batch) and num_items_in_batch.numel() == 2
    ):
        num_items_in_batch = sum(num_items_in_batch)  # CE tokens + score tokens: every label
    return total / (count.clamp(min=1) if num_items_in_batch is None else num_items_in_batch)


def _feedback_ce_plus(
    logits: torch.Tensor,
    labels: torch.Tensor,
    se: torch.Tensor,
    rows: torch.Tensor,
    pos: torch.Tensor,
    lam: float,
    num_items_in_batch: Any,
    parts: dict[str, float] | None,
) -> torch.Tensor:
    """CE over the labelled tokens other than each row's score (or verdict) token + lam * the mean
    of the rows' squared errors `se`, each term over its own global count (CoT-RAFT's two terms)."""
    ce_labels = labels.clone()
    ce_labels[rows, pos] = IGNORE
    ce_total, ce_count = _token_ce(logits, ce_labels)
    ce = ce_total / _divisor(num_items_in_batch, 0, ce_count.clamp(min=1))
    score = se.sum() / _divisor(num_items_in_batch, 1, max(se.numel(), 1))
    add_parts(parts, ce_loss=ce, score_loss=score)
    return ce + lam * score


def cot_raft_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    score_token_ids: Sequence[int],
    score_values: Sequence[float],
    lam: float = 1.0,
    num_items_in_batch: Any = None,
    parts: dict[str, float] | None = None,
    gold: torch.Tensor | None = None,
) -> torch.Tensor:
    """TRACT: CE over the feedback tokens (score token excluded) + lam * the RAFT term (on the
    float `gold` per row when given)."""
    se, rows, pos = _squared_errors(logits, labels, score_token_ids, score_values, gold)
    return _feedback_ce_plus(logits, labels, se, rows, pos, lam, num_items_in_batch, parts)


def pair_probability(row_logits: torch.Tensor, pair_token_ids: Sequence[int]) -> torch.Tensor:
    """P(A) renormalised over {A, B} from each row's logits: sigmoid(z_A - z_B), shape (N,)."""
    dtype = torch.promote_types(row_logits.dtype, torch.float32)
    ids = torch.as_tensor(list(pair_token_ids), device=row_logits.device)
    z = row_logits[:, ids].to(dtype)
    return torch.sigmoid(z[:, 0] - z[:, 1])


def _pair_squared_errors(logits, labels, pair_token_ids, gold=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each verdict row's (target - P(A))^2; the target is the row's float `gold` (a share of graders
    preferring A) when given, else 1 for a labelled 'A' and 0 for 'B'."""
    rows, pos = score_positions(labels, pair_token_ids)
    predicted = pair_probability(logits[rows, pos - 1], pair_token_ids)
    if gold is not None:
        target = torch.as_tensor(gold, device=labels.device).to(predicted.dtype)[rows]
    else:
        target = (labels[rows, pos] == pair_token_ids[0]).to(predicted.dtype)
    return (target - predicted) ** 2, rows, pos


def pair_raft_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    pair_token_ids: Sequence[int],
    num_items_in_batch: Any = None,
    gold: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pairwise RAFT: squared error between the target preference and P(A) renormalised over {A, B}
    at each row's verdict position (`pair_token_ids` = (id of 'A', id of 'B'))."""
    se, _, _ = _pair_squared_errors(logits, labels, pair_token_ids, gold)
    if se.numel() == 0:
        return logits.sum() * 0.0
    return se.sum() / _divisor(num_items_in_batch, 1, se.numel())


def pair_cot_raft_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    pair_token_ids: Sequence[int],
    lam: float = 1.0,
    num_items_in_batch: Any = None,
    parts: dict[str, float] | None = None,
    gold: torch.Tensor | None = None,
) -> torch.Tensor:
    """CoT-RAFT for pairs: CE over the feedback tokens (verdict letter excluded) + lam * the pairwise RAFT term."""
    se, rows, pos = _pair_squared_errors(logits, labels, pair_token_ids, gold)
    return _feedback_ce_plus(logits, labels, se, rows, pos, lam, num_items_in_batch, parts)


def add_parts(parts: dict[str, float] | None, **terms: torch.Tensor) -> None:
    """Add each term to `parts` (summed over a step's micro-batches, as the terms' divisors are global)."""
    if parts is not None:
        for name, value in terms.items():
            parts[name] = parts.get(name, 0.0) + float(value.detach())


def emd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    score_token_ids: Sequence[int],
    score_values: Sequence[float],
    target: torch.Tensor,
    num_items_in_batch: Any = None,
) -> torch.Tensor:
    """Ordinal distribution loss: the squared earth mover's distance sum_k (P(<= k) - Q(<= k))^2
    between the judge's score-token distribution P (full-vocabulary probabilities, so the last
    term, (score mass - 1)^2, also pulls mass onto the scale) and the raters' distribution Q
    (`target`, (B, K) over the scale in order: rater score shares, or the gold as a one-hot)."""
    rows, pos = score_positions(labels, score_token_ids)
    if rows.numel() == 0:
        return logits.sum() * 0.0
    dtype = torch.promote_types(logits.dtype, torch.float32)
    ids = torch.as_tensor(list(score_token_ids), device=logits.device)
    probs = torch.softmax(logits[rows, pos - 1].to(dtype), dim=-1)[:, ids]
    wanted = torch.as_tensor(target, device=logits.device).to(dtype)[rows]
    distance = ((probs.cumsum(-1) - wanted.cumsum(-1)) ** 2).sum(-1)
    return distance.sum() / _divisor(num_items_in_batch, 1, distance.numel())


def target_distribution(gold: float, values: Sequence[int], rater_scores: Sequence[int] | None = None) -> list[float]:
    """The raters' distribution over the scale: each value's share of the rater scores where given,
    else the gold split between its two neighbouring values so that its mean is the gold (a one-hot
    for a whole-number gold)."""
    values = [int(v) for v in values]
    if rater_scores:
        return [sum(int(r) == v for r in rater_scores) / len(rater_scores) for v in values]
    gold = min(max(float(gold), values[0]), values[-1])
    out = [0.0] * len(values)
    for i in range(len(values) - 1):
        if values[i] <= gold <= values[i + 1]:
            upper = (gold - values[i]) / (values[i + 1] - values[i])
            out[i], out[i + 1] = 1.0 - upper, upper
            return out
    out[values.index(round(gold))] = 1.0
    return out


@dataclass(frozen=True)
class Terms:
    """What a loss may read beside the logits and labels, for one micro-batch."""

    score_token_ids: Sequence[int]
    score_values: Sequence[float]
    lam: float = 1.0
    parts: dict[str, float] | None = None
    num_items_in_batch: Any = None
    gold: torch.Tensor | None = None
    target: torch.Tensor | None = None


def _raft_row(logits: torch.Tensor, labels: torch.Tensor, t: Terms) -> torch.Tensor:
    value = raft_loss(logits, labels, t.score_token_ids, t.score_values, t.num_items_in_batch, t.gold)
    add_parts(t.parts, score_loss=value)
    return value


def _cot_raft_row(logits: torch.Tensor, labels: torch.Tensor, t: Terms) -> torch.Tensor:
    return cot_raft_loss(
        logits, labels, t.score_token_ids, t.score_values, t.lam, t.num_items_in_batch, t.parts, t.gold
    )


def _pair_raft_row(logits: torch.Tensor, labels: torch.Tensor, t: Terms) -> torch.Tensor:
    value = pair_raft_loss(logits, labels, t.score_token_ids, t.num_items_in_batch, t.gold)
    add_parts(t.parts, score_loss=value)
    return value


def _pair_cot_raft_row(logits: torch.Tensor, labels: torch.Tensor, t: Terms) -> torch.Tensor:
    return pair_cot_raft_loss(logits, labels, t.score_token_ids, t.lam, t.num_items_in_batch, t.parts, t.gold)


def _ce_row(logits: torch.Tensor, labels: torch.Tensor, t: Terms) -> torch.Tensor:
    value = ce_loss(logits, labels, t.num_items_in_batch)
    add_parts(t.parts, ce_loss=value)
    return value


def _emd_row(logits: torch.Tensor, labels: torch.Tensor, t: Terms) -> torch.Tensor:
    if t.target is None:
        raise ValueError("loss emd needs each row's target distribution (the collator's 'target')")
    value = emd_loss(logits, labels, t.score_token_ids, t.score_values, t.target, t.num_items_in_batch)
    add_parts(t.parts, score_loss=value)
    return value


@dataclass(frozen=True)
class LossKind:
    """One row of the loss table, read by the trainer, the config check, the CLI and the studio."""

    name: str
    compute: Callable[[torch.Tensor, torch.Tensor, Terms], torch.Tensor]
    score_only: bool
    """True: only the score token is labelled (the model's head can run at that position alone);
    False: the target's feedback tokens are labelled too."""
    per_rater: bool
    """Rows with rater scores become one example per rater score (a token target needs a whole score)."""
    needs_mode: str | None
    """The dataset mode the loss needs ('feedback'), or None for any."""
    summary: str
    pairwise: Callable[[torch.Tensor, torch.Tensor, Terms], torch.Tensor] | None = None
    """What the loss computes on pairs (the score tokens are then the verdict letters A and B, `gold`
    the preference for A); None: the loss does not apply to pairs."""


LOSSES: dict[str, LossKind] = {
    row.name: row
    for row in (
        LossKind(
            "raft",
            _raft_row,
            score_only=True,
            per_rater=False,
            needs_mode=None,
            summary="regression-aware: squared error of the expected score over the score tokens",
            pairwise=_pair_raft_row,
        ),
        LossKind(
            "cot_raft",
            _cot_raft_row,
            score_only=False,
            per_rater=False,
            needs_mode="feedback",
            summary="TRACT: RAFT plus the cross-entropy of the written feedback (needs a feedback dataset)",
            pairwise=_pair_cot_raft_row,
        ),
        LossKind(
            "ce",
            _ce_row,
            score_only=False,
            per_rater=True,
            needs_mode=None,
            summary="next-token cross-entropy on the target, one example per rater score (the baseline)",
            pairwise=_ce_row,
        ),
        LossKind(
            "emd",
            _emd_row,
            score_only=True,
            per_rater=False,
            needs_mode=None,
            summary="ordinal: squared earth mover's distance to the raters' score distribution",
        ),
    )
}


def loss_kind(name: str) -> LossKind:
    """The table's row for `name`; a ValueError naming the choices otherwise."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss '{name}'; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def pair_losses() -> list[str]:
    """The losses that train a pairwise judge."""
    return [name for name, row in LOSSES.items() if row.pairwise is not None]


def make_loss(
    kind: str,
    score_token_ids: Sequence[int],
    score_values: Sequence[float],
    lam: float = 1.0,
    parts: dict[str, float] | None = None,
    pairwise: bool = False,
) -> Callable[..., torch.Tensor]:
    """A `compute_loss_func(outputs, labels, num_items_in_batch=None, gold=None, target=None)` for
    transformers' Trainer (`gold`: each row's float gold score, used by the RAFT terms; `target`:
    each row's raters' distribution over the scale, used by EMD; CE trains on the tokens).

    `parts`, when given, accumulates the score and CE terms for logging; the caller empties it each
    optimizer step, so it then holds that step's value of each term whatever the accumulation.
    With `pairwise` the table's pairwise column is computed (score tokens: the verdicts A and B).
    """
    row = loss_kind(kind)
    compute = row.pairwise if pairwise else row.compute
    if compute is None:
        raise ValueError(f"loss '{kind}' does not apply to pairs; choose one of {', '.join(pair_losses())}")

    def loss(
        outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None, gold: Any = None, target: Any = None
    ) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
        terms = Terms(score_token_ids, score_values, lam, parts, num_items_in_batch, gold, target)
        return compute(logits, labels, terms)

    return loss
