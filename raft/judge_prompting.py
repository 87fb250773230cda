"""The prompt side of a judge: from an item (or a pair) to the chat text and token ids the model
reads, with the templates, scale and score cue it was trained on; no model runs here.

`raft.judge.Judge` inherits it, so its prompt methods are the judge's own; apart so the judge
class keeps the engine, the settings and the scoring calls.
"""

from __future__ import annotations

from typing import Any

from raft.data import normalize_item
from raft.files import DataError
from raft.judge_scoring import fit_prompt
from raft.prompts import JudgePrompt, Template, apply_chat, check_judge_mode
from raft.scores import ScoreTokens, find_pair_tokens


class JudgePrompting:
    """Prompts and token ids of a judge; the judge sets these attributes and gives a `tokenizer`
    and a `context_limit()`."""

    scale: tuple[int, int]
    mode: str
    cue: str
    score_tokens: ScoreTokens
    prompt_spec: JudgePrompt | None
    _pair_tokens: ScoreTokens | None
    tokenizer: Any

    @property
    def pairwise(self) -> bool:
        """A judge trained to compare pairs (its templates show response A and response B)."""
        return self.prompt_spec is not None and self.prompt_spec.pairwise

    @property
    def pair_tokens(self) -> ScoreTokens:
        """The verdict tokens 'A' (value 1) and 'B' (value 0) after the score cue, found once."""
        if self._pair_tokens is None:
            self._pair_tokens = find_pair_tokens(self.tokenizer, self.cue)
        return self._pair_tokens

    def pair_prompt(self, mode: str) -> JudgePrompt:
        """The relative-grading templates: the judge's own when it was trained on pairs, else the built-in ones."""
        return self.prompt_spec if self.pairwise else JudgePrompt.resolve(None, mode, pairwise=True)

    def _template(self, item: dict[str, Any], mode: str) -> Template:
        spec = self.prompt_spec or JudgePrompt.resolve(None, "score_only" if mode == "score_only" else "feedback")
        return spec.for_item(item)

    def _item(self, item: dict[str, Any], mode: str) -> tuple[dict[str, Any], Template]:
        clean = normalize_item(item, self.scale)
        template = self._template(clean, mode)
        if template.uses_reference and not clean["orig_reference_answer"]:
            raise DataError("empty, but the template needs it", field="orig_reference_answer")
        return clean, template

    def prompt(self, item: dict[str, Any], mode: str | None = None) -> str:
        """The chat-formatted prompt, before any assistant text."""
        clean, template = self._item(item, check_judge_mode(mode or self.mode))
        return apply_chat(self.tokenizer, template.fill(clean, self.scale))

    def render(self, item: dict[str, Any], mode: str | None = None) -> str:
        """The exact text given to the model for one item (score-only: ends with the score cue)."""
        mode = check_judge_mode(mode or self.mode)
        text = self.prompt(item, mode)
        return text + self.score_tokens.cue if mode == "score_only" else text

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _fit(self, item: dict[str, Any], mode: str, reserve: int, overflow: str) -> tuple[list[int], str | None]:
        """Prompt ids that fit the context with `reserve` tokens to spare, and a flag if cut."""
        return fit_prompt(self, item, mode, reserve, overflow)
