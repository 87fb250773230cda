"""Judge data: Feedback-Collection fields, column mapping, row validation and fine-tuning sets.

`prepare_dataset` turns rows from any source into our training jsonl (score-only or
feedback+score targets that end in the inference score cue), a LLaMA-Factory export, a
`stats.json`, and a `rejected.jsonl` that says for each rejected row which field was wrong.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from raft.atomic import creating
from raft.columns import PAIR_FIELDS, missing_fields, missing_message
from raft.files import DataError, Record, read_records
from raft.gold import is_fractional, nearest_score
from raft.output import open_output, write_text
from raft.passfail import word_level
from raft.prometheus import from_rendered, is_rendered
from raft.prompts import SCORE_CUE, JudgePrompt, TemplateError, apply_chat, check_mode, target_prefix, target_text
from raft.rubrics import Rubric, with_rubric
from raft.scores import check_scale, parse_result

DATASET_MANIFEST = "dataset.json"
"""A dataset folder's description: prompt template text, scale, mode, score cue and column mapping."""

TEXT_FIELDS = ("orig_instruction", "orig_response", "orig_reference_answer", "orig_criteria")
OTHER_FIELDS = ("orig_feedback", "orig_score", "output")
HEAD_ROWS = 50
"""The first rows whose columns, together, must supply every required field (else the file is refused)."""


def score_fields(scale: tuple[int, int] = (1, 5)) -> list[str]:
    return [f"orig_score{k}_description" for k in range(scale[0], scale[1] + 1)]


def known_fields(scale: tuple[int, int] = (1, 5)) -> list[str]:
    return [*TEXT_FIELDS, *score_fields(scale), *OTHER_FIELDS]


def parse_columns(
    spec: str | dict[str, str] | None, scale: tuple[int, int] = (1, 5), pair: bool = False
) -> dict[str, str]:
    """'field=column,field=column' (or a dict) -> {field: column}; unknown fields (of a pair, with
    `pair`) are refused."""
    if not spec:
        return {}
    if isinstance(spec, str):
        pairs = {}
        for part in spec.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise DataError(f"column mapping '{part}' is not field=column")
            field, column = (s.strip() for s in part.split("=", 1))
            pairs[field] = column
        spec = pairs
    fields = list(PAIR_FIELDS) if pair else known_fields(check_scale(scale))
    for field in spec:
        if field not in fields:
            raise DataError(f"unknown field in column mapping; fields are {', '.join(fields)}", field=field)
    return {f: c for f, c in spec.items() if c}


def check_mapping(columns: dict[str, str], available: Iterable[str], file: str | None = None) -> None:
    """Refuse a mapping that names a column the source does not have."""
    available = list(available)
    for field, column in columns.items():
        if column not in available:
            raise DataError(f"column '{column}' not found; columns are {', '.join(available)}", file, field=field)


def apply_mapping(raw: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """Rename mapped columns to field names; other columns pass through unchanged. A rendered
    Prometheus prompt (benchmark files) is parsed into the fields, whatever a recognised mapping
    says of its `instruction` column; DataError names a missing section."""
    if is_rendered(raw):
        mapped = {f: raw[c] for f, c in columns.items() if c in raw and c != "instruction"}
        return {**from_rendered(raw), **mapped}
    out = dict(raw)
    for field, column in columns.items():
        if column in raw:
            out[field] = raw[column]
    return from_rendered(out) if is_rendered(out) else out


def parse_score(value: Any, scale: tuple[int, int], integer: bool = True) -> float | int:
    """A gold score from a string or number, inside the scale; raises ValueError with the reason.
    On a two-level scale the words pass/fail, yes/no, true/false (and JSON booleans) are its high
    and low level, so a pass/fail column needs no recoding."""
    if scale[1] - scale[0] == 1:
        level = word_level(value, scale)
        if level is not None:
            return level
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("score is missing")
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"score {value!r} is not a number") from None
    if not np.isfinite(number) or not scale[0] <= number <= scale[1]:
        raise ValueError(f"score {value!r} is outside the scale {scale[0]}..{scale[1]}")
    if number.is_integer():
        return int(number)
    if integer:
        raise ValueError(f"score {value!r} is not an integer")
    return number


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def normalize_item(
    raw: dict[str, Any],
    scale: tuple[int, int] = (1, 5),
    need_feedback: bool = False,
    need_score: bool = False,
    need_reference: bool = False,
) -> dict[str, Any]:
    """Validate one row (field names already mapped) and return its judge fields.

    Raises DataError naming the first bad field. A score and feedback can also come from an
    `output` column in the '<feedback> [RESULT] k' form.
    """
    item: dict[str, Any] = {}
    required = ["orig_instruction", "orig_response", "orig_criteria", *score_fields(scale)]
    if need_reference:
        required.append("orig_reference_answer")
    for field in required:
        value = _text(raw.get(field))
        if not value:
            raise DataError("missing" if raw.get(field) is None else "empty", field=field)
        item[field] = value
    item["orig_reference_answer"] = _text(raw.get("orig_reference_answer"))
    feedback, score = _text(raw.get("orig_feedback")), raw.get("orig_score")
    if (not feedback or score in (None, "")) and _text(raw.get("output")):
        parsed_feedback, parsed_score = parse_result(_text(raw["output"]), scale)
        feedback = feedback or parsed_feedback
        score = parsed_score if score in (None, "") else score
    if need_feedback and not feedback:
        raise DataError("missing" if raw.get("orig_feedback") is None else "empty", field="orig_feedback")
    if feedback:
        item["orig_feedback"] = feedback
    if need_score or score not in (None, ""):
        try:
            item["orig_score"] = parse_score(score, scale, integer=False)
        except ValueError as exc:
            raise DataError(str(exc), field="orig_score") from None
        raters = rater_scores(raw.get("rater_scores"), item["orig_score"], scale)
        if raters:
            item["rater_scores"] = raters
    return item


def rater_scores(value: Any, gold: float, scale: tuple[int, int]) -> list[int] | None:
    """The whole-number rater scores whose mean is the gold (kept for CE's targets); None otherwise."""
    if not isinstance(value, list) or not value:
        return None
    try:
        scores = [parse_score(v, scale) for v in value]
    except ValueError:
        return None
    return scores if abs(sum(scores) / len(scores) - gold) < 1e-6 else None


def iter_items(
    source: str | Path,
    columns: dict[str, str] | None = None,
    scale: tuple[int, int] = (1, 5),
    split: str = "train",
    rubric: Rubric | None = None,
    **need: bool,
) -> Iterator[tuple[Record, dict[str, Any] | None]]:
    """Stream (record, item) pairs; item is None and record.error says why when a row is bad.

    Fields a row lacks are taken from the whole-file `rubric`; a field no column and no rubric
    supplies refuses the file before any row, naming every such field at once."""
    columns = columns or {}
    records = read_records(source, split=split)
    head = list(itertools.islice(records, HEAD_ROWS))
    good = [rec.data for rec in head if rec.error is None]
    if good:
        check_mapping(columns, good[0].keys(), str(source))
        check_fields(good, columns, scale, rubric, source, **need)
    for rec in itertools.chain(head, records):
        if rec.error is not None:
            yield rec, None
            continue
        try:
            yield rec, normalize_item(with_rubric(apply_mapping(rec.data, columns), rubric, scale[0]), scale, **need)
        except DataError as exc:
            rec.error = DataError(exc.reason, str(source), rec.row, exc.field)
            yield rec, None


def check_fields(
    head: list[dict[str, Any]],
    columns: dict[str, str],
    scale: tuple[int, int],
    rubric: Rubric | None,
    source: str | Path,
    **need: bool,
) -> None:
    """Refuse a source whose first rows, mapped and with the rubric, have no column for a required
    field (a field missing from only some rows is reported on those rows)."""
    keys = {k: None for row in head for k in row}
    try:
        row = with_rubric(apply_mapping({**keys, **head[0]}, columns), rubric, scale[0])
    except DataError:
        return  # a malformed rendered prompt: reported on its row
    missing = missing_fields(row, scale, **need)
    if missing:
        raise DataError(missing_message(missing), source_name(source))


def build_example(item: dict[str, Any], mode: str, prompt: JudgePrompt, scale: tuple[int, int]) -> dict[str, Any]:
    """One training example: the filled prompt, the target that ends in '[RESULT] k' (k the gold's
    nearest score), the float `gold` that RAFT regresses on, and the item."""
    template = prompt.for_item(item)
    score = nearest_score(item["orig_score"])
    feedback = item.get("orig_feedback")
    return {
        "prompt": template.fill(item, scale),
        "template": template.name,
        "target": target_text(mode, score, feedback),
        "target_prefix": target_prefix(mode, feedback),
        "score": score,
        "gold": item["orig_score"],
        "mode": mode,
        "item": item,
    }


def to_sharegpt(example: dict[str, Any]) -> dict[str, Any]:
    """LLaMA-Factory's ShareGPT row for one example."""
    return {
        "conversations": [{"from": "human", "value": example["prompt"]}, {"from": "gpt", "value": example["target"]}]
    }


def _percentiles(lengths: list[int]) -> dict[str, int]:
    if not lengths:
        return {}
    arr = np.asarray(lengths)
    out = {f"p{q}": int(np.percentile(arr, q)) for q in (50, 90, 95, 99)}
    out.update(min=int(arr.min()), max=int(arr.max()), mean=round(float(arr.mean()), 1))
    return out


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with open_output(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def collect_examples(
    source: str | Path,
    mode: str = "score_only",
    template: str | Path | JudgePrompt | None = None,
    columns: dict[str, str] | str | None = None,
    scale: tuple[int, int] = (1, 5),
    split: str = "train",
    rubric: Rubric | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """All valid examples of a source, the rejected rows (row, field, reason), and rows read."""
    try:
        mode = check_mode(mode)
    except TemplateError as exc:
        raise DataError(str(exc)) from None
    scale = check_scale(scale)
    columns = parse_columns(columns, scale)
    prompt = template if isinstance(template, JudgePrompt) else JudgePrompt.resolve(template, mode)
    examples, rejected, read = [], [], 0
    need = {"need_feedback": mode == "feedback", "need_score": True}
    for rec, item in iter_items(source, columns, scale, split, rubric, **need):
        read += 1
        tpl = prompt.for_item(item or {})
        if item is not None and tpl.uses_reference and not item["orig_reference_answer"]:
            item, rec.error = (
                None,
                DataError("empty, but the template needs it", str(source), rec.row, "orig_reference_answer"),
            )
        if item is None:
            err = rec.error
            rejected.append({"row": rec.row, "field": err.field, "reason": err.reason, "error": str(err)})
            continue
        example = build_example(item, mode, prompt, scale)
        example["row"] = rec.row
        examples.append(example)
    return examples, rejected, read


@dataclass
class BuiltDataset:
    """Examples split into train and validation, the rejected rows, what was done, and the manifest
    (`dataset_manifest`) that says how every prompt was made."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    info: dict[str, Any]
    manifest: dict[str, Any]


def dataset_manifest(
    mode: str,
    prompt: JudgePrompt,
    scale: tuple[int, int],
    columns: dict[str, str],
    source: str,
    rubric: Rubric | None = None,
) -> dict[str, Any]:
    """What a dataset was made with, template text included, so that nothing is re-derived later."""
    return {
        "format": 1,
        "mode": check_mode(mode),
        "scale": list(check_scale(scale)),
        "score_cue": SCORE_CUE,
        "prompt": prompt.to_dict(),
        "columns": dict(columns),
        "rubric": rubric.to_dict() if rubric else None,
        "source": source,
    }


def read_dataset_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a dataset folder, with its prompt as a JudgePrompt; a clear error when absent."""
    path = Path(folder) / DATASET_MANIFEST
    if not path.is_file():
        raise DataError(
            f"no {DATASET_MANIFEST}: not a dataset folder, or one written by an older version (run `python -m raft "
            "prepare` again so that the prompt template travels with the data)",
            str(folder),
        )
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["mode"] = check_mode(manifest["mode"])
    manifest["prompt"] = JudgePrompt.from_dict(manifest["prompt"], str(path))
    return manifest


def build_dataset(
    source: str | Path,
    mode: str = "score_only",
    template: str | Path | JudgePrompt | None = None,
    num_samples: int | None = None,
    validation_ratio: float = 0.0,
    seed: int = 0,
    columns: dict[str, str] | str | None = None,
    scale: tuple[int, int] = (1, 5),
    split: str = "train",
    rubric: Rubric | None = None,
) -> BuiltDataset:
    """Read, validate, shuffle (by seed), sample and split a source into examples, writing nothing."""
    if not 0.0 <= validation_ratio < 1.0:
        raise DataError(f"validation ratio {validation_ratio} must be in [0, 1)")
    try:
        mode = check_mode(mode)
        prompt = template if isinstance(template, JudgePrompt) else JudgePrompt.resolve(template, mode)
    except TemplateError as exc:
        raise DataError(str(exc)) from None
    mapping = parse_columns(columns, check_scale(scale))
    examples, rejected, read = collect_examples(source, mode, prompt, mapping, scale, split, rubric)
    random.Random(seed).shuffle(examples)
    if num_samples is not None and num_samples < len(examples):
        examples = examples[:num_samples]
    n_val = int(round(len(examples) * validation_ratio))
    if validation_ratio > 0 and len(examples) > 1:
        n_val = min(max(n_val, 1), len(examples) - 1)
    validation, train = examples[:n_val], examples[n_val:]
    if not train:
        first = rejected[0]["error"] if rejected else "none"
        raise DataError(f"no usable rows ({len(rejected)} rejected; first: {first})", str(source))
    info = {
        "source": source_name(source),
        "mode": mode,
        "templates": sorted({e["template"] for e in examples}),
        "scale": list(check_scale(scale)),
        "seed": seed,
        "rows_read": read,
        "rows_kept": len(examples),
        "rows_rejected": len(rejected),
        "rejected_reasons": dict(Counter(f"{r['field']}: {r['reason']}" for r in rejected).most_common()),
    }
    manifest = dataset_manifest(mode, prompt, scale, mapping, source_name(source), rubric)
    return BuiltDataset(train, validation, rejected, info, manifest)


REJECTION_WARNING_SHARE = 0.05
"""A prepare that rejects more than this share of the rows it read ends with a warning."""


def rejection_warning(stats: dict[str, Any]) -> str | None:
    """One line when more than 5% of the rows read were rejected, naming the main reason and its count."""
    read, rejected = stats.get("rows_read", 0), stats.get("rows_rejected", 0)
    if not read or rejected <= REJECTION_WARNING_SHARE * read:
        return None
    by_field: Counter[str] = Counter()
    example: dict[str, str] = {}
    for reason, count in stats.get("rejected_reasons", {}).items():
        field = reason.split(": ", 1)[0]
        by_field[field] += count
        example.setdefault(field, reason)
    field, count = by_field.most_common(1)[0]
    reason = example[field].split(": ", 1)[1]
    main = reason if field == "None" else f"field '{field}': {reason}"
    rows = "rows" if field == "None" else f"rows with '{field}' wrong"
    return (
        f"warning: {rejected} of {read} rows rejected ({rejected / read:.0%}); main reason: {main} "
        f"({count} {rows}); see rejected.jsonl"
    )


def source_name(source: str | Path) -> str:
    """A source as recorded in stats and manifests: a hub id, or a file's name (never a server path)."""
    return Path(source).name if Path(source).exists() else str(source)


def dataset_stats(built: BuiltDataset, tokenizer: Any = None, max_examples: int | None = None) -> dict[str, Any]:
    """Sizes, score histogram and, with a tokenizer, token-length percentiles of a built dataset
    (over the first `max_examples` examples when given: a preview need not tokenize every row)."""
    examples = built.train + built.validation
    stats = {
        **built.info,
        "train": len(built.train),
        "validation": len(built.validation),
        "score_histogram": {str(k): v for k, v in sorted(Counter(e["score"] for e in examples).items())},
        "fractional_gold": sum(is_fractional(e.get("gold", e["score"])) for e in examples),
    }
    if tokenizer is not None:
        sample = examples[:max_examples] if max_examples else examples
        stats["token_lengths"] = {**_percentiles(token_lengths(sample, tokenizer)), "examples": len(sample)}
    return stats


def token_lengths(examples: list[dict[str, Any]], tokenizer: Any) -> list[int]:
    """Prompt (chat-formatted) + target tokens of each example."""
    return [
        len(tokenizer(apply_chat(tokenizer, e["prompt"]) + e["target"], add_special_tokens=False)["input_ids"])
        for e in examples
    ]


def write_dataset(
    out_dir: str | Path, built: BuiltDataset, tokenizer: Any = None, name: str | None = None, exclusive: bool = False
) -> dict[str, Any]:
    """Write a dataset folder (train/validation/rejected jsonl, LLaMA-Factory export, stats.json).

    `exclusive` (the studio, Align): the folder must not exist; it is written whole elsewhere and
    renamed into place (`raft.atomic`), so of two writes of one name one wins and the other is
    refused, and no reader sees a half-written dataset. Otherwise the files are (re)written in place."""
    out = Path(out_dir)
    if exclusive:
        taken = f"a dataset named '{out.name}' exists already (or another request just wrote it): choose another name"
        with creating(out, taken) as tmp:
            stats = _write_files(tmp, built, tokenizer, name or out.name)
        return stats
    out.mkdir(parents=True, exist_ok=True)
    return _write_files(out, built, tokenizer, name or out.name)


def _write_files(out: Path, built: BuiltDataset, tokenizer: Any, name: str) -> dict[str, Any]:
    _write_jsonl(out / "train.jsonl", built.train)
    (out / "validation.jsonl").unlink(missing_ok=True)
    if built.validation:
        _write_jsonl(out / "validation.jsonl", built.validation)
    _write_jsonl(out / "rejected.jsonl", built.rejected)
    _write_jsonl(out / f"{name}_sharegpt.jsonl", map(to_sharegpt, built.train))
    info = {
        name: {
            "file_name": f"{name}_sharegpt.jsonl",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations"},
        }
    }
    write_text(out / "dataset_info.json", json.dumps(info, indent=2) + "\n")
    stats = {
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **dataset_stats(built, tokenizer),
    }
    write_text(out / "stats.json", json.dumps(stats, indent=2) + "\n")
    write_text(out / DATASET_MANIFEST, json.dumps(built.manifest, indent=2, ensure_ascii=False) + "\n")
    return stats


def prepare_dataset(
    source: str | Path,
    out_dir: str | Path,
    mode: str = "score_only",
    template: str | Path | JudgePrompt | None = None,
    tokenizer: Any = None,
    num_samples: int | None = None,
    validation_ratio: float = 0.0,
    seed: int = 0,
    columns: dict[str, str] | str | None = None,
    scale: tuple[int, int] = (1, 5),
    split: str = "train",
    name: str | None = None,
    rubric: Rubric | None = None,
) -> dict[str, Any]:
    """Build a fine-tuning set in out_dir and return its stats (also written to stats.json)."""
    built = build_dataset(source, mode, template, num_samples, validation_ratio, seed, columns, scale, split, rubric)
    return write_dataset(out_dir, built, tokenizer, name)


def list_datasets(root: str | Path) -> list[str]:
    """Names of the dataset folders (holding train.jsonl) directly under root, newest first (a
    hidden folder is one still being written)."""
    folders = [p.parent for p in Path(root).glob("*/train.jsonl") if not p.parent.name.startswith(".")]
    return [p.name for p in sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True)]


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All rows of one of our own jsonl files."""
    return [rec.data for rec in read_records(path) if rec.error is None]
