"""Judge prompt templates: text files with named placeholders, filled from one item.

A template is the user message. The studio appends the model's chat template and, for
score-only judging, the score cue, so that training targets and inference cues are one text.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raft.errors import RaftError

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"

PLACEHOLDERS = {
    "instruction",
    "response",
    "response_a",
    "response_b",
    "reference_answer",
    "rubric",
    "min_score",
    "max_score",
}
REQUIRED = {"instruction", "response", "rubric"}
PAIR_REQUIRED = {"instruction", "response_a", "response_b", "rubric"}
"""A pairwise (relative grading) template shows two responses, A and B, and no single one."""
PAIR_LABELS = ("A", "B")
"""The verdict tokens of pairwise judging, read after the score cue as the digits are."""

SCORE_CUE = "[RESULT] "
"""Text that precedes the score token, in training targets and at inference alike."""
FEEDBACK_PREFIX = "Feedback: "

MODES = ("score_only", "feedback")
"""The one vocabulary of modes, from dataset to manifest to judge, CLI and studio: a target (and a
judgment) that is the score alone, or feedback followed by the score."""
JUDGE_MODES = (*MODES, "decode")
"""How a judge can be run: its two modes, and the decode baseline (parse the written digit)."""
_LEGACY_MODES = {"feedback_score": "feedback"}

DEFAULT_TEMPLATES = {
    ("score_only", True): "absolute_score",
    ("score_only", False): "absolute_score_noref",
    ("feedback", True): "absolute_feedback",
    ("feedback", False): "absolute_feedback_noref",
}
PAIR_TEMPLATES = {
    ("score_only", True): "relative_score",
    ("score_only", False): "relative_score_noref",
    ("feedback", True): "relative_feedback",
    ("feedback", False): "relative_feedback_noref",
}


def check_mode(mode: str) -> str:
    """A mode of MODES; 'feedback_score', the name older datasets were written with, reads as 'feedback'."""
    mode = _LEGACY_MODES.get(mode, mode)
    if mode not in MODES:
        raise TemplateError(f"unknown mode '{mode}'; choose one of {', '.join(MODES)}")
    return mode


def check_judge_mode(mode: str) -> str:
    """A mode of JUDGE_MODES, read through `check_mode`."""
    if mode == "decode":
        return mode
    try:
        return check_mode(mode)
    except TemplateError:
        raise ValueError(f"unknown mode '{mode}'; choose one of {', '.join(JUDGE_MODES)}") from None


class TemplateError(RaftError, ValueError):
    """A template file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Template:
    """A prompt template: its text, a name for display, and the placeholders it uses."""

    name: str
    text: str
    placeholders: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        names = set()
        try:
            parsed = list(string.Formatter().parse(self.text))
        except ValueError as exc:
            raise TemplateError(f"template '{self.name}': {exc} (write literal braces as {{{{ }}}})") from exc
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if name not in PLACEHOLDERS or spec or conversion:
                raise TemplateError(
                    f"template '{self.name}': unknown placeholder '{{{name}}}'; "
                    f"known placeholders are {', '.join(sorted(PLACEHOLDERS))}"
                )
            names.add(name)
        pairwise = bool(names & {"response_a", "response_b"})
        if pairwise and "response" in names:
            raise TemplateError(
                f"template '{self.name}': use either '{{response}}' or '{{response_a}}' and '{{response_b}}'"
            )
        missing = (PAIR_REQUIRED if pairwise else REQUIRED) - names
        if missing:
            raise TemplateError(
                f"template '{self.name}': missing placeholder(s) " + ", ".join(f"'{{{m}}}'" for m in sorted(missing))
            )
        object.__setattr__(self, "placeholders", frozenset(names))  # frozen: set once here

    @property
    def uses_reference(self) -> bool:
        return "reference_answer" in self.placeholders

    @property
    def pairwise(self) -> bool:
        """A relative-grading template: it shows two responses and asks which is better."""
        return "response_a" in self.placeholders

    def fill(self, item: dict[str, Any], scale: tuple[int, int] = (1, 5)) -> str:
        """The user message for one item (Feedback-Collection field names; a pair's responses are
        `orig_response_A` and `orig_response_B`, its rubric the criterion alone)."""
        if self.pairwise:
            return self.text.format(
                instruction=str(item["orig_instruction"]).strip(),
                response_a=str(item["orig_response_A"]).strip(),
                response_b=str(item["orig_response_B"]).strip(),
                reference_answer=str(item.get("orig_reference_answer") or "").strip(),
                rubric=str(item["orig_criteria"]).strip(),
                min_score=scale[0],
                max_score=scale[1],
            )
        values = {
            "instruction": str(item["orig_instruction"]).strip(),
            "response": str(item["orig_response"]).strip(),
            "reference_answer": str(item.get("orig_reference_answer") or "").strip(),
            "rubric": render_rubric(item, scale),
            "min_score": scale[0],
            "max_score": scale[1],
        }
        return self.text.format(**values)


def render_rubric(item: dict[str, Any], scale: tuple[int, int] = (1, 5)) -> str:
    """The rubric block: '[criteria]' then one 'Score k: description' line per score."""
    lines = [f"[{str(item['orig_criteria']).strip()}]"]
    for k in range(scale[0], scale[1] + 1):
        lines.append(f"Score {k}: {str(item[f'orig_score{k}_description']).strip()}")
    return "\n".join(lines)


def load_template(
    name_or_path: str | Path | None = None, mode: str = "score_only", reference: bool = True, pairwise: bool = False
) -> Template:
    """A template by built-in name (a file in prompts/), by file path, or the default for the mode.

    The default follows the mode, whether a reference answer is available, and whether pairs are graded.
    """
    mode = check_mode(mode)
    if name_or_path is None or str(name_or_path) == "":
        name_or_path = (PAIR_TEMPLATES if pairwise else DEFAULT_TEMPLATES)[(mode, reference)]
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = PROMPTS_DIR / f"{name_or_path}.txt"
    if not path.is_file():
        raise TemplateError(f"template '{name_or_path}' not found (built-in: {', '.join(builtin_templates())})")
    return Template(name=path.stem, text=path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class JudgePrompt:
    """The templates a judge reads, as text: one for items with a reference answer, one without.

    This is what travels from a dataset's manifest to the run's `judge.json`, so a judge is served
    with the very text it was trained on, wherever the run folder is copied.
    """

    with_reference: Template
    without_reference: Template

    @classmethod
    def resolve(cls, name_or_path: str | Path | None, mode: str, pairwise: bool = False) -> JudgePrompt:
        """A built-in name or file for both cases, or (None) the mode's defaults with and without
        reference (the relative-grading ones when `pairwise`)."""
        prompt = cls(
            load_template(name_or_path, mode, True, pairwise), load_template(name_or_path, mode, False, pairwise)
        )
        if prompt.pairwise != pairwise:
            want = "a pairwise (response_a, response_b)" if pairwise else "an absolute (response)"
            raise TemplateError(f"template '{prompt.with_reference.name}' is not {want} template")
        return prompt

    @property
    def pairwise(self) -> bool:
        """Templates that compare two responses (relative grading)."""
        return self.with_reference.pairwise

    def for_item(self, item: dict[str, Any]) -> Template:
        return self.with_reference if item.get("orig_reference_answer") else self.without_reference

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {
            key: {"name": t.name, "text": t.text}
            for key, t in (("with_reference", self.with_reference), ("without_reference", self.without_reference))
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> JudgePrompt:
        try:
            return cls(*(Template(data[k]["name"], data[k]["text"]) for k in ("with_reference", "without_reference")))
        except (KeyError, TypeError) as exc:
            raise TemplateError(f"{source}: the prompt templates are incomplete ({exc})") from None

    def differs_from(self, other: JudgePrompt) -> str | None:
        """None when both read the same text; else which template differs, for an error message."""
        for key in ("with_reference", "without_reference"):
            mine, theirs = getattr(self, key), getattr(other, key)
            if mine.text != theirs.text:
                return f"the template {key.replace('_', ' ')} ('{mine.name}' vs '{theirs.name}')"
        return None


def builtin_templates(pairwise: bool = False) -> list[str]:
    """The names of the built-in templates of one kind: absolute grading, or pairwise (relative) grading."""
    return sorted(
        p.stem
        for p in PROMPTS_DIR.glob("*.txt")
        if Template(p.stem, p.read_text(encoding="utf-8")).pairwise == pairwise
    )


def apply_chat(tokenizer: Any, user_message: str) -> str:
    """The model-ready prompt: the tokenizer's chat template with a generation prompt, if it has one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True
        )
    return user_message + "\n"


def target_prefix(mode: str, feedback: str | None = None) -> str:
    """Assistant text that comes before the score cue: nothing, or 'Feedback: <text> '."""
    if check_mode(mode) == "score_only":
        return ""
    return f"{FEEDBACK_PREFIX}{(feedback or '').strip()} "


def target_text(mode: str, score: int | str, feedback: str | None = None) -> str:
    """The full assistant target, ending in the score cue and the score (or a pair's verdict letter)."""
    return f"{target_prefix(mode, feedback)}{SCORE_CUE}{score}"


def rubric_item(
    criteria: str, descriptions: list[str], instruction: str, response: str, reference: str = "", low: int = 1
) -> dict[str, Any]:
    """An item in Feedback-Collection field names from a rubric and one response (scores from `low`)."""
    item = {
        "orig_instruction": instruction,
        "orig_response": response,
        "orig_reference_answer": reference,
        "orig_criteria": criteria,
    }
    item.update({f"orig_score{k}_description": d for k, d in enumerate(descriptions, low)})
    return item
