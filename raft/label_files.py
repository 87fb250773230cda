"""Labels exchanged as files with graders who work elsewhere: the next rows to label as a CSV
(blind: the judge's score left out unless asked for), and their filled-in file read back."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from raft.files import DataError, read_records
from raft.labels import LabelProject
from raft.output import open_output

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet runs a cell that starts with these as a formula (CSV injection): such text is
written with a leading apostrophe."""


def safe_cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text, never runs."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def export_rows(project: LabelProject, keys: list[int], path: str | Path, show_judge: bool = False) -> Path:
    """The rows to label as a CSV: key, the texts and rubric, empty `label` and `note` columns
    (and the judge's expected score with `show_judge`)."""
    lo, hi = project.scale
    fields = ["key", "instruction", "response", "reference_answer", "criteria"]
    fields += [f"score{k}_description" for k in range(lo, hi + 1)]
    fields += (["judge_expected_score"] if show_judge else []) + ["label", "note"]
    out = Path(path)
    items = {}
    for key in keys:  # every row is checked before the file is opened: no header-only file is left
        try:
            items[key] = project.item(key)
        except DataError as exc:
            raise DataError(
                f"row {key}, field '{exc.field}': {exc.reason}; the project cannot show its rows (made before the "
                "whole-file rubric travelled with it?): create it again with --rubric PRESET_OR_FILE",
                str(project.folder.name),
            ) from None
    tmp = out.with_name(out.name + ".writing")
    with open_output(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for key in keys:
            item = items[key]
            row = {
                "key": key,
                "instruction": item["orig_instruction"],
                "response": item["orig_response"],
                "reference_answer": item["orig_reference_answer"],
                "criteria": item["orig_criteria"],
                **{f"score{k}_description": item[f"orig_score{k}_description"] for k in range(lo, hi + 1)},
                "label": "",
                "note": "",
            }
            if show_judge:
                row["judge_expected_score"] = round(float(project.rows[key]["expected_score"]), 2)
            writer.writerow({k: safe_cell(v) for k, v in row.items()})
    tmp.replace(out)
    return out


def import_labels(project: LabelProject, path: str | Path, labeller: str = "") -> dict[str, Any]:
    """Read a filled-in file (CSV, JSONL, ... with `key` and `label`, optional `note`): every row
    with a label is recorded; an empty label is passed over; a bad row is reported with its row
    number and field, and the others are still recorded."""
    done, empty, errors = 0, 0, []
    for rec in read_records(path):
        if rec.error is not None:
            errors.append(str(rec.error))
            continue
        if "key" not in rec.data or "label" not in rec.data:
            raise DataError("needs the columns 'key' and 'label' (as `label next` writes them)", str(Path(path).name))
        label = rec.data.get("label")
        if label is None or str(label).strip() == "":
            empty += 1
            continue
        note = rec.data.get("note") or ""
        try:
            project.label(rec.data["key"], str(label).strip(), note=str(note), labeller=labeller)
            done += 1
        except DataError as exc:
            field = "label" if exc.field == "score" else "key"
            errors.append(str(DataError(exc.reason, Path(path).name, rec.row, field)))
    return {"labelled": done, "without_label": empty, "errors": errors}
