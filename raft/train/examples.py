"""The training examples of a run: each dataset row tokenized with its score position and float gold,
the rows that fit max_length kept, and batches right-padded with logits asked only where a loss reads them."""

from __future__ import annotations

from typing import Any

import torch

from raft.gold import ce_examples, describe_ce_targets
from raft.loss import IGNORE, target_distribution
from raft.prompts import apply_chat
from raft.scores import ScoreTokens


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


def training_examples(
    rows: list[dict[str, Any]],
    tokenizer: Any,
    score_tokens: ScoreTokens,
    score_only: bool,
    per_rater: bool,
    max_length: int,
) -> list[dict[str, Any]]:
    """The tokenized examples that fit `max_length`. With `per_rater` (a token target on scores) a row
    gives one example per rater score, else its rounded gold; a pair's letter is set already (a tie's
    is A, then B in the swapped order). Says what it expanded and what it left out."""
    if per_rater:
        given = len(rows)
        rows, counts = ce_examples(rows)
        if any(counts.values()):
            print(describe_ce_targets(counts, given), flush=True)
    tokenized = [tokenize(ex, tokenizer, score_tokens, score_only) for ex in rows]
    kept = [t for t in tokenized if len(t["input_ids"]) <= max_length]
    if len(kept) < len(tokenized):
        print(
            f"left out {len(tokenized) - len(kept)} of {len(tokenized)} examples longer than max_length {max_length}",
            flush=True,
        )
    if not kept:
        raise ValueError(f"no training example fits max_length {max_length}")
    return kept
