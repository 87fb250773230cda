"""A labelling project: a scored file, the judge and prompt it was scored with, and a team's own
labels of its rows, kept so that a judge can be aligned to those labels and measured honestly.

A project is a folder: `project.json` (judge, template text, scale, mode, column mapping, the
held-out rows fixed at creation), `rows.jsonl` (a copy of the scored rows, each with its `key`)
and `labels.jsonl`, append-only: one line per label, skip or undo, written with one `write` under
an exclusive lock, so concurrent writers lose nothing and a restart resumes from the file. The
last label of a row wins; an undo retracts one earlier entry. Held-out rows (a seeded share) are
only ever used to measure agreement, never to train.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from raft.data import apply_mapping, normalize_item
from raft.files import DataError
from raft.prompts import JudgePrompt
from raft.scores import check_scale

PROJECT = "project.json"
ROWS = "rows.jsonl"
LABELS = "labels.jsonl"
JUDGMENT_FIELDS = ("expected_score", "mode_score", "probs", "score_mass", "feedback", "error", "samples", "flag")
JUDGMENT_FIELDS += ("interval", "row", "key")
MAX_NOTE = 2000
MAX_LABELLER = 100


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
    ) -> LabelProject:
        """A new project over the rows of a scored file that carry a score distribution.

        Rows with an error or no `probs` are left out (counted in `meta['rows_left_out']`). A folder
        that already holds a project is refused: the held-out rows are fixed once."""
        out = Path(folder)
        if (out / PROJECT).exists():
            raise DataError("a labelling project already exists here; open it instead", str(out))
        usable, left_out = {}, 0
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
            "columns": dict(columns or {}),
            "heldout_share": heldout,
            "seed": seed,
            "heldout": heldout_keys(keys, heldout, seed),
            "n_rows": len(keys),
            "rows_left_out": left_out,
        }
        out.mkdir(parents=True, exist_ok=True)
        with (out / ROWS).open("w", encoding="utf-8") as f:
            for key in keys:
                f.write(json.dumps(usable[key], ensure_ascii=False) + "\n")
        (out / LABELS).touch()
        tmp = out / (PROJECT + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(out / PROJECT)  # the project exists once it is whole
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

    def item(self, key: int) -> dict[str, Any]:
        """The row's judge fields (instruction, response, reference, rubric), validated."""
        raw = apply_mapping(judge_fields(self.rows[key]), self.meta.get("columns") or {})
        return normalize_item(raw, self.scale)

    # the labels file
    @property
    def labels_path(self) -> Path:
        return self.folder / LABELS

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append one entry as one write under an exclusive lock, after any torn last line."""
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
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

    def label(self, key: Any, score: Any, note: str = "", labeller: str = "") -> dict[str, Any]:
        """Record a label (an integer on the project's scale); the last label of a row wins."""
        key = self._check_key(key)
        lo, hi = self.scale
        try:
            value = float(score)
        except (TypeError, ValueError):
            raise DataError(f"score {str(score)[:20]!r} is not a number", field="score") from None
        if not value.is_integer() or not lo <= value <= hi:
            raise DataError(f"score {score!r} must be an integer from {lo} to {hi}", field="score")
        entry = {
            "id": uuid.uuid4().hex[:12],
            "kind": "label",
            "key": key,
            "score": int(value),
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
