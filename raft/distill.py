"""TRACT stage 2: rewrite a dataset's targets with a stage-1 judge's own feedback.

The stage-1 run writes one feedback per item (greedy); each new example keeps the gold score, so
that training again from the base model on it teaches the score that follows self-written
feedback, as the judge will see at inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raft.data import BuiltDataset, read_dataset_manifest, read_jsonl, write_dataset
from raft.files import DataError
from raft.judge import Judge
from raft.prompts import target_prefix, target_text
from raft.scores import split_feedback


def self_distill(
    run: str | Path,
    data: str | Path,
    out: str | Path,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    device: str | None = None,
) -> dict[str, Any]:
    """Write a feedback dataset of the run's own feedback with the gold scores of `data`."""
    judge = Judge.load(run, device=device)
    data = Path(data)
    manifest = read_dataset_manifest(data)
    if judge.prompt_spec is not None and (diff := judge.prompt_spec.differs_from(manifest["prompt"])):
        raise DataError(f"the run {run} was not trained on this dataset's prompts: {diff}", str(data))
    splits = {"train": read_jsonl(data / "train.jsonl")}
    if (data / "validation.jsonl").is_file():
        splits["validation"] = read_jsonl(data / "validation.jsonl")
    new: dict[str, list[dict[str, Any]]] = {}
    rejected = []
    for split, examples in splits.items():
        judged = judge.generate(
            [judge.encode(judge.prompt(ex["item"], "feedback")) for ex in examples],
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
        new[split] = []
        for ex, (text,) in zip(examples, judged):
            feedback = split_feedback(text, judge.score_tokens.cue)
            if not feedback:
                rejected.append(
                    {
                        "row": ex.get("row"),
                        "field": "orig_feedback",
                        "reason": "the judge wrote no feedback",
                        "error": f"{split} row {ex.get('row')}: the judge wrote no feedback",
                    }
                )
                continue
            item = {**ex["item"], "orig_feedback": feedback}
            new[split].append(
                {
                    **ex,
                    "item": item,
                    "mode": "feedback",
                    "target_prefix": target_prefix("feedback", feedback),
                    "target": target_text("feedback", ex["score"], feedback),
                }
            )
    if not new["train"]:
        raise DataError(f"the judge wrote no feedback for any of {len(splits['train'])} training rows", str(run))
    stats = {
        "source": str(data),
        "distilled_from": str(run),
        "mode": "feedback",
        "rows_kept": sum(len(v) for v in new.values()),
        "rows_rejected": len(rejected),
    }
    described = {**manifest, "mode": "feedback", "prompt": manifest["prompt"].to_dict(), "distilled_from": str(run)}
    built = BuiltDataset(new["train"], new.get("validation", []), rejected, stats, described)
    return write_dataset(out, built, judge.tokenizer)
