"""What the Align tab keeps in the browser (a BrowserState, as the Fine-tune form is kept: see
`app.finetune_form`): the batch result chosen, the judge chosen to compare after fine-tuning or
calibrating, and this browser's labeller identity, so that a reload shows the same choices and
labels as the same grader (Undo still takes back the labels given before the reload).

What comes back from the browser is the visitor's own text: a result or a judge is restored only
if it is still among the choices offered, and an identity only if it has the shape made here.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

import gradio as gr

from app.finetune_form import browser_secret
from app.studio import Studio

STORAGE_KEY = "raft-align"
IDENTITY = re.compile(r"^[A-Za-z0-9_-]{16}$")
"""A browser identity as `new_identity` makes it (random, 96 bits)."""


def browser_state(studio: Studio) -> gr.BrowserState:
    """The kept choices; made outside the tabs, so that it is mounted (and read) as the page loads."""
    return gr.BrowserState(None, storage_key=STORAGE_KEY, secret=browser_secret(studio))


def new_identity() -> str:
    return secrets.token_urlsafe(12)


def identity(saved: Any) -> str:
    """The browser's labeller identity kept in `saved`, or a new one (nothing, or junk, kept)."""
    kept = saved.get("labeller") if isinstance(saved, dict) else None
    return kept if isinstance(kept, str) and IDENTITY.match(kept) else new_identity()


def browser_labeller(who: str | None) -> str:
    """How a browser identity is named in the labels: a digest, never the identity itself (a name
    seen in a labels file cannot be replayed to act as that grader)."""
    if not who or not IDENTITY.match(str(who)):
        return ""
    return "browser " + hashlib.sha256(str(who).encode()).hexdigest()[:8]


def _values(choices: list[Any]) -> list[Any]:
    return [c[1] if isinstance(c, (tuple, list)) else c for c in choices]


def kept_choice(saved: Any, key: str, choices: list[Any], fallback: Any) -> Any:
    """The value kept under `key` when it is still among `choices` (values or (label, value) pairs), else `fallback`."""
    kept = saved.get(key) if isinstance(saved, dict) else None
    return kept if isinstance(kept, str) and kept in _values(choices) else fallback


def save(saved: Any, result: Any, after: Any, who: Any) -> dict[str, Any]:
    """What the browser keeps: the batch result, the judge to compare and the identity."""
    kept = {"labeller": who if isinstance(who, str) and IDENTITY.match(who) else identity(saved)}
    kept.update({k: v for k, v in (("result", result), ("after", after)) if isinstance(v, str) and v})
    return kept


def restored_identity(saved: Any) -> tuple[str, dict[str, Any]]:
    """As the page loads: the identity for this page's handlers and the state kept with it (a new
    identity is written back at once, so the next reload finds it)."""
    who = identity(saved)
    kept = dict(saved) if isinstance(saved, dict) else {}
    kept["labeller"] = who
    return who, {k: v for k, v in kept.items() if k in ("labeller", "result", "after") and isinstance(v, str)}
