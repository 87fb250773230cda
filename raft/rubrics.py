"""A rubric for a whole file: one criterion and a description per score level, from a preset or
typed, filled into every row that has none of its own (most people's data has no per-row rubric)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raft.files import DataError
from raft.prompts import PROMPTS_DIR
from raft.scores import check_scale

MAX_RUBRIC_BYTES = 100_000
"""A rubric file is a criterion and a few sentences; anything larger is refused unread."""


@dataclass(frozen=True)
class Rubric:
    """A criterion and one description per score, lowest score first."""

    criteria: str
    descriptions: tuple[str, ...]
    name: str = ""
    """The preset it came from; empty when typed or read from a file."""

    def check(self, scale: tuple[int, int]) -> Rubric:
        """Itself when it has a non-empty criterion and one non-empty description per level of `scale`."""
        lo, hi = check_scale(scale)
        missing = [f"score {lo + i}" for i, d in enumerate(self.descriptions) if not str(d).strip()]
        if not str(self.criteria).strip():
            missing.insert(0, "criterion")
        if len(self.descriptions) != hi - lo + 1:
            raise DataError(
                f"the rubric has {len(self.descriptions)} level descriptions; the scale {lo}..{hi} needs {hi - lo + 1}"
            )
        if missing:
            raise DataError(f"the rubric's {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} empty")
        return self

    def fields(self, low: int = 1) -> dict[str, str]:
        """The rubric in Feedback-Collection field names (descriptions numbered from `low`)."""
        out = {"orig_criteria": self.criteria.strip()}
        out.update({f"orig_score{k}_description": d.strip() for k, d in enumerate(self.descriptions, low)})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "criteria": self.criteria, "descriptions": list(self.descriptions)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "rubric") -> Rubric:
        if not isinstance(data, dict) or not isinstance(data.get("descriptions"), list):
            raise DataError("a rubric is {criteria: text, descriptions: [one text per score, lowest first]}", where)
        texts = [data.get("criteria"), *data["descriptions"]]
        if not all(isinstance(t, str) for t in texts):
            raise DataError("the rubric's criterion and descriptions must be text", where)
        return cls(data["criteria"], tuple(data["descriptions"]), str(data.get("name") or ""))


def presets() -> dict[str, Rubric]:
    """The built-in rubrics (prompts/rubrics.json), scores 1..5, by name."""
    data = json.loads((PROMPTS_DIR / "rubrics.json").read_text(encoding="utf-8"))
    return {name: Rubric(p["criteria"], tuple(p["descriptions"]), name) for name, p in data.items()}


def load_rubric(spec: str | Path | Rubric | dict | None, scale: tuple[int, int] = (1, 5)) -> Rubric | None:
    """A preset name, a .json/.yaml file ({criteria, descriptions}), a dict or a Rubric, checked
    against the scale; None for none."""
    if spec is None or spec == "":
        return None
    if isinstance(spec, Rubric):
        return spec.check(scale)
    if isinstance(spec, dict):
        return Rubric.from_dict(spec).check(scale)
    named = presets()
    if str(spec) in named:
        return named[str(spec)].check(scale)
    path = Path(spec)
    if not path.is_file():
        raise DataError(f"not a rubric preset ({', '.join(named)}) nor a rubric file", str(spec))
    if path.stat().st_size > MAX_RUBRIC_BYTES:
        raise DataError(f"a rubric file holds at most {MAX_RUBRIC_BYTES} bytes", path.name)
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"not JSON or YAML: {str(exc).splitlines()[0]}", path.name) from None
    return Rubric.from_dict(data, path.name).check(scale)


def with_rubric(row: dict[str, Any], rubric: Rubric | None, low: int = 1) -> dict[str, Any]:
    """The row with the rubric's fields where the row has none of its own (missing or empty)."""
    if rubric is None:
        return row
    out = dict(row)
    for field, text in rubric.fields(low).items():
        if out.get(field) is None or not str(out[field]).strip():
            out[field] = text
    return out
