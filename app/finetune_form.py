"""The Fine-tune form's memory and sizing: steps proposed from the chosen dataset's rows, and the
filled form kept in the browser (localStorage) so that a reload shows it again.

What comes back from the browser is the visitor's own text: each value is coerced to its field's
type and a dataset is restored only if it is still one of the visitor's; the YAML built from the
form is checked on Start as ever.
"""

from __future__ import annotations

import html
import os
import secrets
from typing import Any

import gradio as gr

from app.studio import Studio
from raft.paths import safe_child
from raft.train.sizing import describe_proposal, propose_steps, training_rows

__all__ = ["propose_steps", "training_rows"]

STORAGE_KEY = "raft-finetune-form"
SECRET_FILE = ".browser-form-key"
OWN_STEPS = "steps_own"
"""Kept beside the fields: whether Max steps is the visitor's own (typed, or a job's), not a proposal."""
NUMBERS = {
    "lam",
    "lora_r",
    "learning_rate",
    "max_steps",
    "epochs",
    "batch_size",
    "grad_accum",
    "max_length",
    "eval_steps",
}
FLAGS = {"lora", "gradient_checkpointing"}
TEXTS = {"dataset", "base_model", "loss"}
"""The fields restored; the run name is not (a reload proposes a fresh one: the old may be taken)."""


FORM = [
    "dataset",
    "run_name",
    "base_model",
    "loss",
    "lam",
    "lora",
    "lora_r",
    "learning_rate",
    "max_steps",
    "epochs",
    "batch_size",
    "grad_accum",
    "max_length",
    "eval_steps",
    "gradient_checkpointing",
]
"""The Fine-tune form's fields, in the order of its inputs (kept in the browser, restored on load)."""


def browser_secret(studio: Studio) -> str:
    """The key the kept form is encrypted with, made once per data root: a random key per server
    start (Gradio's default) makes every form kept before a restart unreadable after it."""
    path = studio.root / SECRET_FILE
    try:
        key = path.read_text().strip()
    except OSError:
        key = ""
    if len(key) < 16:
        key = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
    return key


def browser_state(studio: Studio) -> gr.BrowserState:
    """The kept form. Create it outside the tabs: a component in a tab not yet opened is not mounted
    when the page's load events run, so it would read as empty and nothing would be restored."""
    return gr.BrowserState(None, storage_key=STORAGE_KEY, secret=browser_secret(studio))


def dataset_rows(studio: Studio, dataset: str | None, request: gr.Request | None) -> int:
    """Training rows of one of the visitor's datasets (0 for none or a name that is not one)."""
    if not dataset or dataset not in studio.datasets(request):
        return 0
    return training_rows(safe_child(studio.workspace(request).datasets, dataset))


def propose(
    studio: Studio,
    dataset: str | None,
    batch_size: float,
    grad_accum: float,
    steps_own: bool = False,
    note: str | None = None,
    request: gr.Request = None,
) -> tuple[Any, str]:
    """(max steps, a note) for the chosen dataset: a few epochs over its rows, not a fixed 100;
    Max steps is left alone when the visitor typed their own (or took a job's), or when Align has
    just written this dataset and proposed its steps (`note` says so): proposing again would hide
    what Align wrote and overwrite steps typed meanwhile."""
    rows = dataset_rows(studio, dataset, request)
    if not rows:
        return gr.skip(), ""
    if steps_own or (dataset and note == written_note(dataset, rows, int(batch_size or 1), int(grad_accum or 1))):
        return gr.skip(), gr.skip()
    batch, accum = int(batch_size or 1), int(grad_accum or 1)
    return propose_steps(rows, batch, accum), describe_proposal(rows, batch, accum) + " (edit Max steps to change it)."


APPLY_JS = "(proposed, seen, steps) => (proposed == null || steps !== seen) ? steps : proposed"
"""Applies a proposal in the browser, at the moment it lands: Max steps typed since the dataset was
chosen (the field no longer holds the value the proposal saw) keeps the visitor's value."""


def propose_pending(
    studio: Studio,
    dataset: str | None,
    batch_size: float,
    grad_accum: float,
    steps_own: bool = False,
    note: str | None = None,
    steps: float | None = None,
    request: gr.Request = None,
) -> tuple[Any, Any, Any]:
    """`propose`, as (the steps proposed or None, the Max steps it saw, the note): the page applies
    the proposal only if Max steps still holds what it saw (APPLY_JS), so a value typed while the
    proposal was on its way is never overwritten."""
    proposed, said = propose(studio, dataset, batch_size, grad_accum, steps_own, note, request)
    return (None if isinstance(proposed, type(gr.skip())) else proposed), steps, said


def save(*values: Any) -> dict[str, Any]:
    """The form as the browser keeps it: field name -> value (FORM order), then whether Max steps
    is the visitor's own."""
    kept = dict(zip(FORM, values))
    if len(values) > len(FORM):
        kept[OWN_STEPS] = bool(values[len(FORM)])
    return kept


def own_steps() -> bool:
    """Max steps typed by the visitor (or taken from a job): no proposal replaces it."""
    return True


def proposed_steps() -> bool:
    """Max steps proposed (Align's *Fine-tune on my labels*): a dataset chosen later proposes again."""
    return False


def restored_own_steps(saved: Any) -> bool:
    """Whether the kept form's Max steps was the visitor's own (False for nothing or junk kept)."""
    return isinstance(saved, dict) and saved.get(OWN_STEPS) is True


def _coerce(name: str, value: Any) -> Any:
    if name in NUMBERS:
        number = float(value)
        if number != number or abs(number) > 1e9:
            raise ValueError(name)
        return number
    if name in FLAGS:
        return bool(value)
    if name in TEXTS:
        return str(value)[:200]
    raise ValueError(name)


def restore(studio: Studio, saved: Any, request: gr.Request = None) -> tuple[Any, ...]:
    """The form's fields from what the browser kept (skipped where nothing or nothing usable is kept)."""
    saved = saved if isinstance(saved, dict) else {}
    out = []
    for name in FORM:
        if name not in saved or name == "run_name":
            out.append(gr.skip())
            continue
        try:
            value = _coerce(name, saved[name])
        except (TypeError, ValueError):
            out.append(gr.skip())
            continue
        if name == "dataset" and value not in studio.datasets(request):
            out.append(gr.skip())
            continue
        out.append(value)
    return tuple(out)


def written_note(dataset: str, rows: int, batch_size: int, grad_accum: int) -> str:
    """What Align's *Fine-tune on my labels* wrote, for the Fine-tune tab."""
    return (
        f"Wrote the dataset **{html.escape(dataset, quote=False)}** from your labels: {rows} training rows "
        f"(held-out rows left out). {describe_proposal(rows, batch_size, grad_accum)}."
    )
