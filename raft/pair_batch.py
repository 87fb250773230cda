"""Resumable batch scoring of a pairs file: P(A) in each order, the two combined, and the raw mass.

Each output line holds the row's own fields, its pair fields under their own names, the
`PairJudgment` fields (p_a, p_ab, p_ba, mass_ab, mass_ba, position_gap, error) and `row`. As with
`raft.batch`, lines are flushed as each chunk finishes and a rerun skips the rows already written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from raft.batch import ROW_KEY, _chunks, _sort_by_row, done_rows, holding, lock_path
from raft.columns import guess_pair_mapping
from raft.data import check_mapping
from raft.files import DataError, Record, read_records
from raft.judge import Judge
from raft.output import open_output
from raft.pairs import map_pair
from raft.pairwise import PairJudgment, position_bias
from raft.rubrics import Rubric


def score_pairs_file(
    judge: Judge,
    input_path: str | Path,
    out_path: str | Path,
    mode: str | None = None,
    columns: dict[str, str] | None = None,
    batch_size: int = 8,
    chunk_rows: int = 256,
    progress: Callable[[int], None] | None = None,
    rubric: Rubric | None = None,
    both_orders: bool = True,
    label: str | None = None,
    **compare_kwargs: Any,
) -> dict[str, Any]:
    """Score every pair of input_path into out_path (jsonl), resuming where a previous run stopped.

    Returns counts (scored, skipped, errors) and the judge's position bias over the whole output file
    (the mean gap between the two orders, and the share of pairs whose two orders agree)."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    source = label or str(input_path)
    with holding(lock_path(out)):
        done = done_rows(out)
        summary: dict[str, Any] = {"scored": 0, "skipped": len(done), "errors": 0}
        mapping: dict[str, str] | None = None

        def pending() -> Iterable[Record]:
            nonlocal mapping
            for rec in read_records(input_path, label=label):
                if rec.error is None and mapping is None:
                    mapping = _pair_mapping(columns, rec.data.keys(), source)
                if rec.row not in done:
                    yield rec

        with open_output(out, "a") as f:
            for chunk in _chunks(pending(), chunk_rows):
                options = {"mode": mode, "both_orders": both_orders, "batch_size": batch_size, **compare_kwargs}
                judged = _judge_chunk(judge, chunk, mapping or {}, rubric, options)
                for rec in chunk:
                    verdict = judged.get(rec.row) or PairJudgment(error=str(rec.error))
                    line = _line(rec, verdict, mapping or {}, source)
                    summary["errors"] += bool(line.get("error"))
                    summary["scored"] += 1
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
                if progress:
                    progress(summary["scored"])
        _sort_by_row(out)
    summary.update(file_position_bias(out))
    return summary


def _pair_mapping(columns: dict[str, str] | None, keys: Iterable[str], source: str) -> dict[str, str]:
    """Pair field -> column: the columns given (checked against the file's), the rest guessed."""
    given = dict(columns or {})
    check_mapping(given, keys, source)
    guessed = guess_pair_mapping(keys)
    return {**{f: c for f, c in guessed.items() if c not in given.values()}, **given}


def _judge_chunk(
    judge: Judge, chunk: list[Record], mapping: dict[str, str], rubric: Rubric | None, options: dict[str, Any]
) -> dict[int, PairJudgment]:
    """{row: verdict} for the readable records of a chunk, compared in one call with `options`."""
    good = [rec for rec in chunk if rec.error is None]
    items = [_with_criterion(map_pair(rec.data, mapping), rubric) for rec in good]
    return dict(zip((rec.row for rec in good), judge.compare(items, **options)))


def _with_criterion(item: dict[str, Any], rubric: Rubric | None) -> dict[str, Any]:
    """The whole-file rubric's criterion where a pair brings none of its own."""
    if rubric is not None and not str(item.get("orig_criteria") or "").strip():
        return {**item, "orig_criteria": rubric.criteria}
    return item


def _line(rec: Record, verdict: PairJudgment, mapping: dict[str, str], source: str) -> dict[str, Any]:
    judged = verdict.to_dict()
    if judged.get("error") and rec.error is None:
        judged["error"] = f"{source}: row {rec.row}: {judged['error']}"
    data = rec.data if rec.error is None else {}
    named = {f: data[c] for f, c in mapping.items() if c in data}
    if data:
        try:
            mapped = map_pair(data, mapping)
            if mapped.get("orig_preference") not in (None, ""):
                from raft.pairs import parse_preference

                named["orig_preference"] = parse_preference(mapped["orig_preference"])
        except (DataError, ValueError):
            pass  # a preference that is not one: the row is scored, its gold left as given
    return {**data, **named, **judged, ROW_KEY: rec.row}


def file_position_bias(out: str | Path) -> dict[str, Any]:
    """The position bias of the judge over a scored pairs file (every row, resumed runs included)."""
    judged = []
    with Path(out).open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            judged.append(PairJudgment(p_ab=row.get("p_ab"), p_ba=row.get("p_ba")))
    return position_bias(judged)
