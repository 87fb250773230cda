"""A labelling project: a scored file, the judge and prompt it was scored with, and a team's own
labels of its rows, kept so that a judge can be aligned to those labels and measured honestly.

A project is a folder: `project.json` (judge, template text, scale, mode, column mapping, the
whole-file rubric for rows that carry none, the held-out rows fixed at creation), `rows.jsonl` (a
copy of the scored rows, each with its `key`) and `labels.jsonl`, append-only: one line per
label, skip or undo, written with one `write` under an exclusive lock, so concurrent writers lose
nothing and a restart resumes from the file. The last label of a row wins; an undo retracts one
earlier entry, and only the labeller's own. Held-out rows (a seeded share) are only ever used to
measure agreement, never to train.

A project is created whole or not at all: its files are written into a hidden temporary folder
that is renamed into place, so two creates of one name give one project and a clear refusal.
`offers.json` records which row each labeller's card shows: the studio accepts a label only for
the row on the labeller's card, and does not offer that row to another labeller for a while. Every
file here is written through `raft.output` (an append is charged first), so a host's quota holds.

The parts live beside this module: choosing the rows (`raft.label_rows`), the labels file
(`raft.label_log`) and the cards' offers (`raft.label_offers`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from numbers import Integral
from pathlib import Path
from typing import Any

from raft import label_log
from raft.atomic import creating
from raft.files import DataError
from raft.label_log import MAX_LABELLER, labeller_name
from raft.label_offers import OFFER_SECONDS, OFFERS, Offers
from raft.label_rows import (
    JUDGMENT_FIELDS,
    heldout_keys,
    item_of,
    judge_fields,
    keep_whole_items,
    rows_scale,
    scored_rows,
)
from raft.output import open_output, write_text
from raft.prompts import JudgePrompt
from raft.rubrics import Rubric

__all__ = [
    "JUDGMENT_FIELDS",
    "LABELS_FILE",
    "MAX_LABELLER",
    "MAX_NOTE",
    "OFFERS",
    "OFFER_SECONDS",
    "PROJECT",
    "ROWS",
    "LabelProject",
    "heldout_keys",
    "item_of",
    "judge_fields",
    "parse_label",
]

PROJECT = "project.json"
ROWS = "rows.jsonl"
LABELS_FILE = "labels.jsonl"
MAX_NOTE = 2000
_INTEGER = re.compile(r"-?[0-9]{1,6}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_label(score: Any, scale: tuple[int, int]) -> int:
    """A label value: an integer of the scale, as a number (not a bool, not a float) or as plain
    ASCII digits ('3', '-1'); '3.0', '1e0', '+3', 'True' and other digits are refused."""
    lo, hi = scale
    if isinstance(score, Integral) and not isinstance(score, bool):
        value = int(score)
    elif isinstance(score, str) and _INTEGER.fullmatch(score.strip()):
        value = int(score.strip())
    else:
        raise DataError(
            f"score {str(score)[:20]!r} is not a label: type a whole number from {lo} to {hi} in plain digits",
            field="score",
        )
    if not lo <= value <= hi:
        raise DataError(f"score {str(score).strip()[:20]!r} must be an integer from {lo} to {hi}", field="score")
    return value


@dataclass
class LabelProject:
    """One labelling project folder (see the module docstring)."""

    folder: Path
    meta: dict[str, Any]
    rows: dict[int, dict[str, Any]]

    @classmethod
    def create(
        cls,
        folder: str | Path,
        scored: list[dict[str, Any]],
        judge: str | None = None,
        prompt: JudgePrompt | None = None,
        scale: tuple[int, int] | None = None,
        mode: str = "score_only",
        columns: dict[str, str] | None = None,
        heldout: float = 0.3,
        seed: int = 0,
        source: str = "",
        rubric: Rubric | None = None,
    ) -> LabelProject:
        """A new project over the rows of a scored file that carry a score distribution.

        Rows with an error or no `probs` are left out (counted in `meta['rows_left_out']`), and so
        are rows that, mapped and with the whole-file `rubric` filled in where they have none, are
        not a whole judge item; when fewer than 2 rows are left the create is refused with the
        first row's reason (a missing rubric field names `--rubric` / the rubric preset as the fix).
        The folder is written elsewhere and renamed into place: a folder that already holds a
        project, or one made by a create that won the race, is refused; nothing half-made stays."""
        out = Path(folder)
        taken = f"a labelling project named '{out.name}' already exists (or another request just made it): open it"
        if out.exists() and any(out.iterdir()):
            raise DataError(taken)
        columns = dict(columns or {})
        usable, left_out = scored_rows(scored, source)
        scale = rows_scale(usable, scale)
        rubric = rubric.check(scale) if rubric is not None else None
        left_out += keep_whole_items(usable, columns, scale, rubric, source)
        prompt = prompt or JudgePrompt.resolve(None, "score_only")
        keys = sorted(usable)
        meta = {
            "format": 1,
            "created": _now(),
            "source": source,
            "judge": judge,
            "mode": mode,
            "scale": list(scale),
            "prompt": prompt.to_dict(),
            "columns": columns,
            "rubric": rubric.to_dict() if rubric else None,
            "heldout_share": heldout,
            "seed": seed,
            "heldout": heldout_keys(keys, heldout, seed),
            "n_rows": len(keys),
            "rows_left_out": left_out,
        }
        with creating(out, taken) as tmp:
            with open_output(tmp / ROWS, "w") as f:
                for key in keys:
                    f.write(json.dumps(usable[key], ensure_ascii=False) + "\n")
            (tmp / LABELS_FILE).touch()
            write_text(tmp / PROJECT, json.dumps(meta, indent=2, ensure_ascii=False))
        return cls(out, meta, usable)

    @classmethod
    def open(cls, folder: str | Path) -> LabelProject:
        out = Path(folder)
        if not (out / PROJECT).is_file():
            raise DataError("no labelling project here", str(out))
        meta = json.loads((out / PROJECT).read_text(encoding="utf-8"))
        rows = {}
        with (out / ROWS).open(encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                rows[int(row["key"])] = row
        return cls(out, meta, rows)

    # what the project was made with
    @property
    def scale(self) -> tuple[int, int]:
        return tuple(self.meta["scale"])

    @property
    def prompt(self) -> JudgePrompt:
        return JudgePrompt.from_dict(self.meta["prompt"], str(self.folder / PROJECT))

    @property
    def keys(self) -> list[int]:
        return sorted(self.rows)

    @property
    def heldout(self) -> set[int]:
        return set(self.meta["heldout"])

    @property
    def rubric(self) -> Rubric | None:
        """The whole-file rubric the rows were scored with (filled into rows that carry none)."""
        data = self.meta.get("rubric")
        return Rubric.from_dict(data, str(self.folder / PROJECT)) if data else None

    def item(self, key: int) -> dict[str, Any]:
        """The row's judge fields (instruction, response, reference, rubric), validated."""
        return item_of(self.rows[key], self.meta.get("columns") or {}, self.scale, self.rubric)

    # the labels file (`raft.label_log`)
    @property
    def labels_path(self) -> Path:
        return self.folder / LABELS_FILE

    def _check_key(self, key: Any) -> int:
        try:
            key = int(key)
        except (TypeError, ValueError):
            raise DataError(f"row {str(key)[:20]!r} is not a row number") from None
        if key not in self.rows:
            raise DataError(f"row {key} is not in this project")
        return key

    def label_value(self, score: Any) -> int:
        """A label value checked against the project's scale (`parse_label`)."""
        return parse_label(score, self.scale)

    def label(self, key: Any, score: Any, note: str = "", labeller: str = "") -> dict[str, Any]:
        """Record a label (an integer on the project's scale, see `parse_label`); the last label of a row wins."""
        key = self._check_key(key)
        entry = {
            "id": label_log.entry_id(),
            "kind": "label",
            "key": key,
            "score": parse_label(score, self.scale),
            "note": str(note or "")[:MAX_NOTE],
            "labeller": labeller_name(labeller),
            "time": _now(),
        }
        return label_log.append(self.labels_path, entry)

    def skip(self, key: Any, labeller: str = "") -> dict[str, Any]:
        """Pass over a row: it is not offered again, and it is no label."""
        key = self._check_key(key)
        entry = {"id": label_log.entry_id(), "kind": "skip", "key": key, "labeller": labeller_name(labeller)}
        return label_log.append(self.labels_path, {**entry, "time": _now()})

    def undo(self, labeller: str = "") -> dict[str, Any] | None:
        """Retract this labeller's last label or skip not yet undone (the row's earlier label, if
        any, counts again); returns the retracted entry, or None when there is nothing to undo."""
        entry = label_log.last_undoable(self.entries(), labeller_name(labeller))
        if entry is not None:
            undo = {"id": label_log.entry_id(), "kind": "undo", "target": entry["id"], "time": _now()}
            label_log.append(self.labels_path, undo)
        return entry

    # which row each labeller's card shows (`raft.label_offers`)
    def offer(self, labeller: str, key: int | None) -> None:
        """Record that `labeller`'s card now shows row `key` (None: no row)."""
        Offers(self.folder).offer(labeller_name(labeller), key)

    def offered_to_others(self, labeller: str) -> set[int]:
        """Rows on another labeller's card, shown in the last OFFER_SECONDS and not yet answered."""
        return Offers(self.folder).to_others(labeller_name(labeller))

    def claim(self, labeller: str, key: Any) -> int:
        """The row `key` when it is the one on `labeller`'s card and not yet answered from it (the
        card is then answered); else DataError: a label for a row the card did not show, or a
        second key press while the next card loads, is refused."""
        key = self._check_key(key)
        return Offers(self.folder).claim(labeller_name(labeller), key)

    def entries(self) -> list[dict[str, Any]]:
        """Every readable entry in file order (a torn line from a killed writer is passed over)."""
        return label_log.read_entries(self.labels_path)

    def state(self) -> tuple[dict[int, dict[str, Any]], set[int]]:
        """(the label in force per row, the rows skipped), undos applied."""
        return label_log.in_force(self.entries(), self.rows)

    def labels(self) -> dict[int, int]:
        """{row key: score} of every labelled row (the last label wins)."""
        return {k: e["score"] for k, e in self.state()[0].items()}

    def counts(self) -> dict[str, int]:
        """How many rows each side holds and how many of them are labelled."""
        labels, skipped = self.state()
        held = self.heldout
        return {
            "rows": len(self.rows),
            "train_rows": len(self.rows) - len(held),
            "heldout_rows": len(held),
            "train_labelled": sum(1 for k in labels if k not in held),
            "heldout_labelled": sum(1 for k in labels if k in held),
            "skipped": len(skipped),
        }
