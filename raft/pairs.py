"""Pair data: rows that compare two responses to one instruction, and the pairwise fine-tuning set.

A pair item has `orig_instruction`, `orig_response_A`, `orig_response_B`, an optional
`orig_reference_answer`, a criterion `orig_criteria`, and `orig_preference`: 1 when A is better,
0 when B is, a share of graders preferring A in between (0.5: a tie). Common layouts are
recognised by their column names (`raft.columns.guess_pair_mapping`): chosen/rejected (A is the
chosen one, preference 1), response_a/response_b with a winner column (model_a, model_b, A, B,
tie), and the one-hot winner_model_a/winner_model_b/winner_tie columns of arena data.

Training presents every pair in both orders (targets p and 1 - p), so a judge cannot learn to
prefer a position; the validation split keeps all pairs of one instruction on one side.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from raft.columns import guess_pair_mapping
from raft.data import (
    BuiltDataset,
    _text,
    check_mapping,
    dataset_manifest,
    iter_items,
    parse_columns,
    source_name,
    write_dataset,
)
from raft.files import DataError, Record, read_records
from raft.pairwise import PREFERENCE, swapped
from raft.prompts import PAIR_LABELS, JudgePrompt, TemplateError, check_mode, target_prefix, target_text
from raft.rubrics import Rubric

PAIR_TEXT_FIELDS = ("orig_instruction", "orig_response_A", "orig_response_B", "orig_reference_answer", "orig_criteria")
DEFAULT_CRITERION = "Which response better fulfils the instruction: is it helpful, correct, complete and clear?"
"""The criterion of pairs that bring none (most preference data): overall quality."""
GROUP_CANDIDATES = ("idx", "question_id", "prompt_id")
"""Columns that name the question a row answers, tried in order by `pairs_from_scores`; without
one, rows answering the same instruction text are grouped."""
TIES = ("drop", "half")
"""What `pairs_from_scores` makes of two answers with the same gold: leave the pair out, or keep it at 0.5."""
_WINNER = {
    "a": 1.0,
    "model_a": 1.0,
    "response_a": 1.0,
    "1": 1.0,
    "b": 0.0,
    "model_b": 0.0,
    "response_b": 0.0,
    "2": 0.0,
    "tie": 0.5,
    "tie (bothbad)": 0.5,
    "both": 0.5,
    "equal": 0.5,
}
_ARENA = ("winner_model_a", "winner_model_b", "winner_tie")


def parse_preference(value: Any) -> float:
    """A preference for A in [0, 1] from a letter (A/B), a winner name (model_a, model_b, tie) or a share."""
    if isinstance(value, bool) or value is None:
        raise ValueError("preference is missing")
    text = str(value).strip().lower()
    if not text:
        raise ValueError("preference is missing")
    if text in _WINNER and not text.replace(".", "").isdigit():
        return _WINNER[text]
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"preference {value!r} is not A, B, tie, model_a, model_b or a share in [0, 1]") from None
    if not np.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ValueError(f"preference {value!r} is outside [0, 1] (the share of graders preferring A)")
    return number


def _content(value: Any) -> Any:
    """A conversational cell (a list of {role, content} messages): the last assistant message's text."""
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        said = [m for m in value if m.get("role") == "assistant"] or value
        return said[-1].get("content", "")
    return value


def _prompt_of(value: Any) -> Any:
    """The last user message of a conversational cell (chosen/rejected conversations carry the prompt)."""
    if isinstance(value, list):
        asked = [m for m in value if isinstance(m, dict) and m.get("role") == "user"]
        return asked[-1].get("content", "") if asked else None
    return None


def map_pair(raw: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """Rename mapped columns to pair fields; chosen/rejected data (no preference column) prefers A,
    arena's one-hot winner columns become the preference."""
    out = dict(raw)
    for field, column in columns.items():
        if column in raw:
            out[field] = raw[column]
    if out.get(PREFERENCE) in (None, "") and all(c in raw for c in _ARENA):
        hot = [float(raw[c] or 0) for c in _ARENA]
        out[PREFERENCE] = 1.0 if hot[0] else 0.0 if hot[1] else 0.5
    if out.get(PREFERENCE) in (None, "") and columns.get("orig_response_A") == "chosen":
        out[PREFERENCE] = 1.0
    if out.get("orig_instruction") in (None, ""):
        out["orig_instruction"] = _prompt_of(out.get("orig_response_A"))
    for field in ("orig_response_A", "orig_response_B"):
        out[field] = _content(out.get(field))
    return out


def normalize_pair(raw: dict[str, Any], rubric: Rubric | None = None, need_preference: bool = False) -> dict[str, Any]:
    """Validate one mapped row and return its pair fields; DataError names the first bad field."""
    item: dict[str, Any] = {}
    for field in ("orig_instruction", "orig_response_A", "orig_response_B"):
        value = _text(raw.get(field))
        if not value:
            raise DataError("missing" if raw.get(field) is None else "empty", field=field)
        item[field] = value
    item["orig_reference_answer"] = _text(raw.get("orig_reference_answer"))
    criteria = _text(raw.get("orig_criteria")) or (rubric.criteria if rubric else "") or DEFAULT_CRITERION
    item["orig_criteria"] = criteria
    feedback = _text(raw.get("orig_feedback"))
    if feedback:
        item["orig_feedback"] = feedback
    value = raw.get(PREFERENCE)
    if need_preference or value not in (None, ""):
        try:
            item[PREFERENCE] = parse_preference(value)
        except ValueError as exc:
            raise DataError(str(exc), field=PREFERENCE) from None
    return item


def iter_pairs(
    source: str | Path,
    columns: dict[str, str] | None = None,
    split: str = "train",
    rubric: Rubric | None = None,
    need_preference: bool = False,
) -> Iterator[tuple[Record, dict[str, Any] | None]]:
    """Stream (record, pair item) from a pairs file; item is None and record.error says why on a bad row.

    Columns named like a pair field, or by a common name for one, are recognised; `columns` adds
    or overrides {field: column}."""
    records = read_records(source, split=split)
    first = next(records, None)
    if first is None:
        return
    mapping = dict(columns or {})
    if first.error is None:
        check_mapping(mapping, first.data.keys(), str(source))
        guessed = guess_pair_mapping(first.data.keys())
        mapping = {**{f: c for f, c in guessed.items() if c not in mapping.values()}, **mapping}
    for rec in itertools.chain([first], records):
        if rec.error is not None:
            yield rec, None
            continue
        try:
            yield rec, normalize_pair(map_pair(rec.data, mapping), rubric, need_preference)
        except DataError as exc:
            rec.error = DataError(exc.reason, str(source), rec.row, exc.field)
            yield rec, None


def verdict_letter(preference: float, first: bool) -> str:
    """The letter CE trains on: the better response's; a tie gives the first order A and the swapped
    order B, so that over both orders neither position is taught."""
    if preference > 0.5:
        return PAIR_LABELS[0]
    if preference < 0.5:
        return PAIR_LABELS[1]
    return PAIR_LABELS[0] if first else PAIR_LABELS[1]


_LETTER = re.compile(r"\b(Response|response|RESPONSE) ([AB])\b")


def swap_letters(text: str) -> str:
    """A feedback written about A and B, for the swapped order: 'Response A' and 'Response B' exchanged."""
    return _LETTER.sub(lambda m: f"{m.group(1)} {'B' if m.group(2) == 'A' else 'A'}", text)


def pair_examples(item: dict[str, Any], mode: str, prompt: JudgePrompt) -> list[dict[str, Any]]:
    """The two training examples of one pair: as given (target p) and swapped (target 1 - p).

    Each ends in the score cue and the verdict letter; `score` is the letter's value (A 1, B 0) and
    `gold` the float target P(A) that the pairwise RAFT loss regresses on."""
    out = []
    for first, it in ((True, item), (False, swapped(item))):
        if not first and it.get("orig_feedback"):
            it = {**it, "orig_feedback": swap_letters(it["orig_feedback"])}
        template = prompt.for_item(it)
        letter = verdict_letter(it[PREFERENCE], first)
        feedback = it.get("orig_feedback")
        out.append(
            {
                "prompt": template.fill(it),
                "template": template.name,
                "target": target_text(mode, letter, feedback),
                "target_prefix": target_prefix(mode, feedback),
                "score": 1 if letter == PAIR_LABELS[0] else 0,
                "gold": float(it[PREFERENCE]),
                "mode": mode,
                "order": "AB" if first else "BA",
                "item": it,
            }
        )
    return out


def build_pair_dataset(
    pairs: list[dict[str, Any]] | str | Path,
    mode: str = "score_only",
    template: str | Path | JudgePrompt | None = None,
    num_samples: int | None = None,
    validation_ratio: float = 0.0,
    seed: int = 0,
    columns: dict[str, str] | str | None = None,
    split: str = "train",
    rubric: Rubric | None = None,
    source: str | None = None,
) -> BuiltDataset:
    """Pair items (or a pairs file) -> a pairwise fine-tuning set, both orders of each pair, writing nothing.

    Pairs are shuffled by seed; the validation share is taken by instruction, so no instruction
    (and no response) is on both sides."""
    if not 0.0 <= validation_ratio < 1.0:
        raise DataError(f"validation ratio {validation_ratio} must be in [0, 1)")
    mode, prompt = _pairwise_prompt(mode, template)
    mapping = parse_columns(columns, pair=True)
    if isinstance(pairs, (str, Path)):
        source = source or source_name(pairs)
        items, rejected = _read_pairs(pairs, mapping, split, rubric)
    else:
        items, rejected = [dict(p) for p in pairs], []
    read = len(items) + len(rejected)
    kept = _usable(items, mode, prompt, rejected)
    random.Random(seed).shuffle(kept)
    if num_samples is not None:
        kept = kept[:num_samples]
    train, validation = _split_by_instruction(kept, mode, prompt, validation_ratio)
    if not train:
        first = rejected[0]["error"] if rejected else "none"
        raise DataError(f"no usable pairs ({len(rejected)} rejected; first: {first})", source)
    info = {
        "source": source or "pairs",
        "task": "pairwise",
        "mode": mode,
        "templates": sorted({e["template"] for e in train + validation}),
        "seed": seed,
        "rows_read": read,
        "rows_kept": len(kept),
        "rows_rejected": len(rejected),
        "pairs": len(kept),
        "rejected_reasons": dict(Counter(f"{r['field']}: {r['reason']}" for r in rejected).most_common()),
    }
    manifest = {**dataset_manifest(mode, prompt, (1, 5), mapping, source or "pairs", rubric), "task": "pairwise"}
    return BuiltDataset(train, validation, rejected, info, manifest)


def _pairwise_prompt(mode: str, template: str | Path | JudgePrompt | None) -> tuple[str, JudgePrompt]:
    """The checked mode and its pairwise templates; a template that is not pairwise is refused."""
    try:
        mode = check_mode(mode)
        prompt = template if isinstance(template, JudgePrompt) else JudgePrompt.resolve(template, mode, pairwise=True)
    except TemplateError as exc:
        raise DataError(str(exc)) from None
    if not prompt.pairwise:
        raise DataError("a pairwise dataset needs pairwise templates (response_a, response_b)")
    return mode, prompt


def _split_by_instruction(
    kept: list[dict[str, Any]], mode: str, prompt: JudgePrompt, validation_ratio: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, validation) examples, both orders of each pair, the validation share taken by
    instruction so that no instruction (and no response) is on both sides."""
    groups = list(dict.fromkeys(_group(p) for p in kept))
    n_val = int(round(len(groups) * validation_ratio))
    if validation_ratio > 0 and len(groups) > 1:
        n_val = min(max(n_val, 1), len(groups) - 1)
    held = set(groups[:n_val])
    train: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    for item in kept:
        row = item.pop("row", None)
        for ex in pair_examples(item, mode, prompt):
            ex["row"] = row
            (validation if _group(item) in held else train).append(ex)
    return train, validation


def _read_pairs(
    source: str | Path, mapping: dict[str, str], split: str, rubric: Rubric | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The valid pairs of a file (each with its row number) and the rejected rows (row, field, reason)."""
    items, rejected = [], []
    for rec, item in iter_pairs(source, mapping, split, rubric, need_preference=True):
        if item is None:
            err = rec.error
            rejected.append({"row": rec.row, "field": err.field, "reason": err.reason, "error": str(err)})
        else:
            items.append({**item, "row": rec.row})
    return items, rejected


def _usable(
    items: list[dict[str, Any]], mode: str, prompt: JudgePrompt, rejected: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The pairs that have what the mode and template need (feedback, reference, preference); the
    others are added to `rejected`, naming the field."""
    kept = []
    for item in items:
        need_feedback = mode == "feedback" and not item.get("orig_feedback")
        needs_reference = prompt.for_item(item).uses_reference and not item.get("orig_reference_answer")
        if need_feedback or needs_reference or item.get(PREFERENCE) is None:
            field = "orig_feedback" if need_feedback else "orig_reference_answer" if needs_reference else PREFERENCE
            rejected.append({"row": item.get("row"), "field": field, "reason": "missing", "error": f"{field}: missing"})
            continue
        kept.append(item)
    return kept


def _group(pair: dict[str, Any]) -> str:
    """The question a pair answers: its `group` (pairs made from scores), else its instruction text."""
    return str(pair.get("group") or pair["orig_instruction"])


def group_key(columns: list[str], group_by: str | None = None) -> str | None:
    """The column naming the question a row answers: the one given, else the first of GROUP_CANDIDATES."""
    if group_by:
        if group_by not in columns:
            raise DataError(f"column '{group_by}' not found; columns are {', '.join(columns)}", field=group_by)
        return group_by
    return next((c for c in GROUP_CANDIDATES if c in columns), None)


def pairs_from_scores(
    source: str | Path,
    columns: dict[str, str] | str | None = None,
    ties: str = "drop",
    group_by: str | None = None,
    split: str = "train",
    rubric: Rubric | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Pairs from an absolute file: every two rows that answer the same question, A the earlier row,
    preference 1 when A's gold is higher, 0 when lower; equal golds are left out (`ties="drop"`) or
    kept at 0.5 (`"half"`). Questions are named by `group_by` (default: idx, question_id, prompt_id,
    else the instruction text). Returns the pairs and counts (rows, questions, pairs, ties)."""
    if ties not in TIES:
        raise DataError(f"unknown ties policy '{ties}'; choose one of {', '.join(TIES)}")
    from raft.scores import check_scale

    scale = check_scale((1, 5))
    mapping = parse_columns(columns, scale)
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    key: str | None = None
    rows = bad = 0
    for rec, item in iter_items(source, mapping, scale, split, rubric, need_score=True):
        rows += 1
        if item is None:
            bad += 1
            continue
        if rows - bad == 1:
            key = group_key(list(rec.data), group_by)
        value = str(rec.data.get(key) if key else item["orig_instruction"])
        groups[value].append({**item, "row": rec.row, "group": value})
    pairs, tied = [], 0
    for answers in groups.values():
        for a, b in itertools.combinations(answers, 2):
            if a["orig_score"] == b["orig_score"]:
                tied += 1
                if ties == "drop":
                    continue
            preference = 1.0 if a["orig_score"] > b["orig_score"] else 0.0 if a["orig_score"] < b["orig_score"] else 0.5
            pairs.append(
                {
                    "orig_instruction": a["orig_instruction"],
                    "orig_response_A": a["orig_response"],
                    "orig_response_B": b["orig_response"],
                    "orig_reference_answer": a.get("orig_reference_answer", ""),
                    "orig_criteria": a["orig_criteria"],
                    PREFERENCE: preference,
                    "score_A": a["orig_score"],
                    "score_B": b["orig_score"],
                    "rows": [a["row"], b["row"]],
                    "group": a["group"],
                }
            )
    counts = {"rows_read": rows, "rows_rejected": bad, "questions": len(groups), "pairs": len(pairs), "ties": tied}
    counts["ties_kept"] = tied if ties == "half" else 0
    return pairs, counts


def prepare_pairs(
    source: str | Path,
    out_dir: str | Path,
    mode: str = "score_only",
    template: str | Path | JudgePrompt | None = None,
    tokenizer: Any = None,
    num_samples: int | None = None,
    validation_ratio: float = 0.0,
    seed: int = 0,
    columns: dict[str, str] | str | None = None,
    split: str = "train",
    name: str | None = None,
    rubric: Rubric | None = None,
    from_scores: bool = False,
    ties: str = "drop",
    group_by: str | None = None,
) -> dict[str, Any]:
    """Build a pairwise fine-tuning set in out_dir from a pairs file, or (`from_scores`) from an
    absolute file's answers to the same questions; returns its stats (also in stats.json)."""
    if from_scores:
        pairs, counts = pairs_from_scores(source, columns, ties, group_by, split, rubric)
        built = build_pair_dataset(
            pairs, mode, template, num_samples, validation_ratio, seed, rubric=rubric, source=source_name(source)
        )
        built.info.update({"from_scores": counts, "rows_read": counts["rows_read"]})
    else:
        built = build_pair_dataset(
            source, mode, template, num_samples, validation_ratio, seed, columns, split, rubric, source_name(source)
        )
    stats = write_dataset(out_dir, built, tokenizer, name)
    return stats
