"""Benchmark rows cut to a token budget, so a CPU run trains and scores every row at one length.

The longest of instruction, response and reference is cut in the middle (repeatedly) until the
judge's score-only prompt, with room for its target, fits `max_length` tokens. The same rows go to
every judge in a run, so the comparison stays fair; the README's tables say the length used.
"""

from __future__ import annotations

from typing import Any

from raft.context import cut_middle
from raft.data import apply_mapping, normalize_item
from raft.judge import Judge

TEXT_FIELDS = ("orig_instruction", "orig_response", "orig_reference_answer")


def fit_item(row: dict[str, Any], judge: Judge, max_length: int, reference: bool = True) -> dict[str, Any]:
    """The judge item of one benchmark row (rendered or mapped), cut to fit `max_length` tokens.
    Without `reference` the reference answer is left out (the no-reference template)."""
    item = normalize_item(apply_mapping(row, {}))
    if not reference:
        item["orig_reference_answer"] = ""
    for _ in range(6):
        excess = len(judge.encode(judge.prompt(item, "score_only"))) + 8 - max_length
        if excess <= 0:
            break
        spans = {
            field: judge.tokenizer(item[field], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            for field in TEXT_FIELDS
            if item[field]
        }
        field = max(spans, key=lambda f: len(spans[f]))
        item[field] = cut_middle(item[field], spans[field], max(len(spans[field]) - excess - 8, 32))
    return item


def top_layers(n: int, layers: int = 30) -> str:
    """LoRA on the attention and MLP projections of the last n of the model's layers (30 in
    SmolLM2-135M; a regular expression for peft): backward stops below them, so a step costs little
    more than a forward pass. 0: every linear layer."""
    if n <= 0:
        return "all-linear"
    names = "|".join(str(i) for i in range(layers - n, layers))
    return rf".*\.layers\.({names})\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
