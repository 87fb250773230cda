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
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

from raft.atomic import creating
from raft.data import apply_mapping, normalize_item
from raft.files import DataError
from raft.output import charge, open_output, write_text
from raft.prompts import JudgePrompt
from raft.rubrics import Rubric, with_rubric
from raft.scores import check_scale

PROJECT = "project.json"
ROWS = "rows.jsonl"
LABELS_FILE = "labels.jsonl"
JUDGMENT_FIELDS = ("expected_score", "mode_score", "probs", "score_mass", "feedback", "error", "samples", "flag")
JUDGMENT_FIELDS += ("interval", "row", "key")
OFFERS = "offers.json"
MAX_NOTE = 2000
MAX_LABELLER = 100
OFFER_SECONDS = 600
"""How long a row shown on one labeller's card is kept from the other labellers' cards."""
_INTEGER = re.compile(r"-?[0-9]{1,6}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def heldout_keys(keys: list[int], share: float, seed: int) -> list[int]:
    """The held-out rows: a seeded random share of the keys (at least one row each side when possible)."""
    if not 0.0 <= share < 1.0:
        raise DataError(f"held-out share {share} must be in [0, 1)")
    n = int(round(len(keys) * share))
    if share > 0 and len(keys) > 1:
        n = min(max(n, 1), len(keys) - 1)
    order = np.random.default_rng(seed).permutation(len(keys))
    return sorted(keys[i] for i in order[:n])


def judge_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A scored row without the judgment: the row as it was before scoring."""
    return {k: v for k, v in row.items() if k not in JUDGMENT_FIELDS}


def item_of(
    row: dict[str, Any], columns: dict[str, str], scale: tuple[int, int], rubric: Rubric | None
) -> dict[str, Any]:
    """A scored row's judge fields (instruction, response, reference, rubric), mapped, with the
    whole-file rubric where the row has none, validated (DataError names the field)."""
    raw = with_rubric(apply_mapping(judge_fields(row), columns), rubric, scale[0])
    return normalize_item(raw, scale)


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
        usable, left_out, reasons = {}, 0, []
        columns = dict(columns or {})
        for i, row in enumerate(scored):
            probs = row.get("probs")
            if row.get("error") or not isinstance(probs, list) or row.get("expected_score") is None:
                left_out += 1
                continue
            key = int(row.get("row", i + 1))
            if key in usable:
                raise DataError(f"row {key} appears twice in the scored file", source or None)
            usable[key] = {**row, "key": key}
        if len(usable) < 2:
            raise DataError(f"only {len(usable)} scored rows carry a score distribution; score the file first")
        widths = {len(r["probs"]) for r in usable.values()}
        if len(widths) != 1:
            raise DataError("the scored rows hold score distributions of different lengths (two judges mixed?)")
        scale = check_scale(tuple(scale) if scale else (1, widths.pop()))
        if scale[1] - scale[0] + 1 != len(next(iter(usable.values()))["probs"]):
            raise DataError(f"the scale {scale[0]}..{scale[1]} does not match the rows' score distributions")
        if rubric is not None:
            rubric = rubric.check(scale)
        for key in sorted(usable):
            try:
                item_of(usable[key], columns, scale, rubric)
            except DataError as exc:
                reasons.append((key, exc))
                del usable[key]
        if len(usable) < 2:
            key, exc = reasons[0]
            fix = ""
            if exc.field and ("criteria" in exc.field or "description" in exc.field):
                fix = (
                    ": the rows carry no rubric of their own; give the whole file one (a rubric preset in the "
                    "studio, `label create --rubric PRESET_OR_FILE` on the command line)"
                )
            raise DataError(
                f"only {len(usable)} of {len(usable) + len(reasons)} scored rows are whole judge items; row {key}: "
                f"field '{exc.field}': {exc.reason}{fix}",
                source or None,
            )
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
            "rows_left_out": left_out + len(reasons),
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

    # the labels file
    @property
    def labels_path(self) -> Path:
        return self.folder / LABELS_FILE

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append one entry as one write under an exclusive lock, after any torn last line."""
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        charge(self.labels_path, len(line) + 1)  # the quota is charged before the append
        fd = os.open(self.labels_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size:
                with self.labels_path.open("rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        line = b"\n" + line  # a writer killed mid-line: its fragment stays unreadable
            os.write(fd, line)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return entry

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
            "id": uuid.uuid4().hex[:12],
            "kind": "label",
            "key": key,
            "score": parse_label(score, self.scale),
            "note": str(note or "")[:MAX_NOTE],
            "labeller": str(labeller or "")[:MAX_LABELLER],
            "time": _now(),
        }
        return self._append(entry)

    def skip(self, key: Any, labeller: str = "") -> dict[str, Any]:
        """Pass over a row: it is not offered again, and it is no label."""
        key = self._check_key(key)
        entry = {"id": uuid.uuid4().hex[:12], "kind": "skip", "key": key, "labeller": str(labeller or "")[:100]}
        return self._append({**entry, "time": _now()})

    def undo(self, labeller: str = "") -> dict[str, Any] | None:
        """Retract this labeller's last label or skip not yet undone (the row's earlier label, if
        any, counts again); returns the retracted entry, or None when there is nothing to undo."""
        entries = self.entries()
        undone = {e["target"] for e in entries if e.get("kind") == "undo"}
        labeller = str(labeller or "")[:MAX_LABELLER]
        for entry in reversed(entries):
            if entry.get("kind") in ("label", "skip") and entry["id"] not in undone:
                if entry.get("labeller", "") == labeller:
                    self._append({"id": uuid.uuid4().hex[:12], "kind": "undo", "target": entry["id"], "time": _now()})
                    return entry
        return None

    # which row each labeller's card shows
    @contextmanager
    def _offers(self) -> Any:
        """The offers ({labeller: {key, time, done}}) under an exclusive lock, written back whole on exit."""
        lock = (self.folder / (OFFERS + ".lock")).open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.folder / OFFERS
            try:
                offers = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                offers = {}
            offers = offers if isinstance(offers, dict) else {}
            before = json.dumps(offers, sort_keys=True)
            yield offers
            now = time.time()
            offers = {k: v for k, v in offers.items() if now - float(v.get("time", 0)) < OFFER_SECONDS}
            if json.dumps(offers, sort_keys=True) != before:
                write_text(path.with_name(path.name + ".tmp"), json.dumps(offers)).replace(path)  # charged
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def offer(self, labeller: str, key: int | None) -> None:
        """Record that `labeller`'s card now shows row `key` (None: no row)."""
        labeller = str(labeller or "")[:MAX_LABELLER]
        with self._offers() as offers:
            if key is None:
                offers.pop(labeller, None)
            else:
                offers[labeller] = {"key": int(key), "time": time.time(), "done": False}

    def offered_to_others(self, labeller: str) -> set[int]:
        """Rows on another labeller's card, shown in the last OFFER_SECONDS and not yet answered."""
        labeller = str(labeller or "")[:MAX_LABELLER]
        with self._offers() as offers:
            now = time.time()
            return {
                int(o["key"])
                for who, o in offers.items()
                if who != labeller and not o.get("done") and now - float(o.get("time", 0)) < OFFER_SECONDS
            }

    def claim(self, labeller: str, key: Any) -> int:
        """The row `key` when it is the one on `labeller`'s card and not yet answered from it (the
        card is then answered); else DataError: a label for a row the card did not show, or a
        second key press while the next card loads, is refused."""
        key = self._check_key(key)
        labeller = str(labeller or "")[:MAX_LABELLER]
        with self._offers() as offers:
            shown = offers.get(labeller)
            if not shown or int(shown.get("key", -1)) != key:
                raise DataError(
                    f"row {key} is not the row on your card: nothing recorded; look at the card shown and answer again"
                )
            if shown.get("done"):
                raise DataError(f"row {key} is answered already: nothing recorded; wait for the next card")
            shown["done"] = True
        return key

    def entries(self) -> list[dict[str, Any]]:
        """Every readable entry in file order (a torn line from a killed writer is passed over)."""
        out = []
        if not self.labels_path.is_file():
            return out
        with self.labels_path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and "id" in entry and "kind" in entry:
                    out.append(entry)
        return out

    def state(self) -> tuple[dict[int, dict[str, Any]], set[int]]:
        """(the label in force per row, the rows skipped), undos applied."""
        entries = self.entries()
        undone = {e["target"] for e in entries if e.get("kind") == "undo"}
        labels: dict[int, dict[str, Any]] = {}
        skipped: set[int] = set()
        for e in entries:
            if e["id"] in undone or e.get("key") not in self.rows:
                continue
            if e["kind"] == "label":
                labels[e["key"]] = e
            elif e["kind"] == "skip":
                skipped.add(e["key"])
        return labels, skipped - set(labels)

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
