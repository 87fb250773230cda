"""The Fine-tune form: its fields as one dataclass (`FinetuneForm`, the one place their names, types
and order are spelled), steps proposed from the chosen dataset's rows, and the filled form kept in
the browser (localStorage) so that a reload shows it again.

What comes back from the browser is the visitor's own text: each value is coerced to its field's
type and a dataset is restored only if it is still one of the visitor's; the YAML built from the
form is checked on Start as ever.
"""

from __future__ import annotations

import functools
import html
import inspect
import os
import secrets
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import gradio as gr

from app.studio import Studio
from raft.paths import safe_child
from raft.train.config import TrainConfig
from raft.train.sizing import describe_proposal, propose_steps, training_rows

__all__ = ["propose_steps", "training_rows"]

STORAGE_KEY = "raft-finetune-form"
SECRET_FILE = ".browser-form-key"
OWN_STEPS = "steps_own"
"""Kept beside the fields: whether Max steps is the visitor's own (typed, or a job's), not a proposal."""


@dataclass
class FinetuneForm:
    """The Fine-tune form's values, one field per input in the order of the tab's inputs. Gradio passes
    them positionally; these names are the api parameters gradio_client users pass (`form_handler`)."""

    dataset: str
    run_name: str
    base_model: str
    loss: str
    lam: float
    lora: bool
    lora_r: int
    learning_rate: float
    max_steps: int
    epochs: float
    batch_size: int
    grad_accum: int
    max_length: int
    eval_steps: int
    gradient_checkpointing: bool

    def to_config(self) -> TrainConfig:
        """The values as a TrainConfig that names its dataset, run and base model (app.train_config)."""
        return TrainConfig(
            data=(self.dataset or "").strip(),
            output_dir=(self.run_name or "").strip() or "run",
            base_model=(self.base_model or "").strip() or None,
            loss=self.loss,
            lam=float(self.lam),
            lora=bool(self.lora),
            lora_r=int(self.lora_r),
            lora_alpha=2 * int(self.lora_r),
            learning_rate=float(self.learning_rate),
            max_steps=int(self.max_steps),
            epochs=float(self.epochs),
            batch_size=int(self.batch_size),
            grad_accum=int(self.grad_accum),
            max_length=int(self.max_length),
            eval_steps=int(self.eval_steps),
            gradient_checkpointing=bool(self.gradient_checkpointing),
        )


TYPES = typing.get_type_hints(FinetuneForm)
FORM = [field.name for field in fields(FinetuneForm)]
"""The Fine-tune form's fields, in the order of its inputs (kept in the browser, restored on load)."""
NUMBERS = {name for name in FORM if TYPES[name] in (int, float)}
FLAGS = {name for name in FORM if TYPES[name] is bool}
TEXTS = {name for name in FORM if TYPES[name] is str} - {"run_name"}
"""The fields restored; the run name is not (a reload proposes a fresh one: the old may be taken)."""


def in_order(**inputs: Any) -> list[Any]:
    """A tab's input components, given by field name, as the positional list Gradio takes (FORM
    order); a name missing or unknown fails as the page is built."""
    if set(inputs) != set(FORM):
        raise TypeError(f"the form's inputs are {FORM}, not {sorted(inputs)}")
    return [inputs[name] for name in FORM]


T = typing.TypeVar("T")


def form_handler(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn(studio, form: FinetuneForm, ...)` as Gradio calls it: the form's values positionally after
    the studio, one parameter per field named as the field is (the api's parameters, documented for
    gradio_client users), gathered into a FinetuneForm here and nowhere else; `fn`'s own parameters
    after `form` (a `gr.Request`) follow them."""
    own = list(inspect.signature(fn).parameters.values())
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.signature(fn).replace(
        parameters=[own[0], *(inspect.Parameter(name, kind, annotation=TYPES[name]) for name in FORM), *own[2:]]
    )

    @functools.wraps(fn)
    def handler(*args: Any, **kwargs: Any) -> T:
        given = signature.bind(*args, **kwargs)
        given.apply_defaults()
        form = FinetuneForm(**{name: given.arguments.pop(name) for name in FORM})
        studio = given.arguments.pop(own[0].name)
        return fn(studio, form, **given.arguments)

    handler.__signature__ = signature
    handler.__annotations__ = {**{k: v for k, v in fn.__annotations__.items() if k != own[1].name}, **TYPES}
    return handler


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
