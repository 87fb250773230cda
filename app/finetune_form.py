"""The Fine-tune form's memory and sizing: steps proposed from the chosen dataset's rows, and the
filled form kept in the browser (localStorage) so that a reload shows it again.

What comes back from the browser is the visitor's own text: each value is coerced to its field's
type and a dataset is restored only if it is still one of the visitor's; the YAML built from the
form is checked on Start as ever.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from app.studio import Studio
from raft.paths import safe_child
from raft.train.sizing import describe_proposal, propose_steps, training_rows

__all__ = ["propose_steps", "training_rows"]

STORAGE_KEY = "raft-finetune-form"
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


def dataset_rows(studio: Studio, dataset: str | None, request: gr.Request | None) -> int:
    """Training rows of one of the visitor's datasets (0 for none or a name that is not one)."""
    if not dataset or dataset not in studio.datasets(request):
        return 0
    return training_rows(safe_child(studio.workspace(request).datasets, dataset))


def propose(
    studio: Studio, dataset: str | None, batch_size: float, grad_accum: float, request: gr.Request = None
) -> tuple[Any, str]:
    """(max steps, a note) for the chosen dataset: a few epochs over its rows, not a fixed 100."""
    rows = dataset_rows(studio, dataset, request)
    if not rows:
        return gr.skip(), ""
    batch, accum = int(batch_size or 1), int(grad_accum or 1)
    return propose_steps(rows, batch, accum), describe_proposal(rows, batch, accum) + " (edit Max steps to change it)."


def save(*values: Any) -> dict[str, Any]:
    """The form as the browser keeps it: field name -> value (FORM order)."""
    from app.finetune_tab import FORM

    return dict(zip(FORM, values))


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
    from app.finetune_tab import FORM

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
