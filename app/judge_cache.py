"""The studio's loaded judges and tokenizers: each model loads once, under its own lock, and at most
two judges stay in memory. Studio resolves a picker's choice and hands this cache the model."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from raft.engines import available_engines
from raft.judge import Judge
from raft.models import (
    JUDGE_MANIFEST,
    ModelError,
    default_ready,
    load_tokenizer,
    needs_default,
    read_manifest,
)
from raft.models import (
    resolve_model as resolve_weights,
)
from raft.prompts import TemplateError
from raft.runs import run_weights
from raft.scores import ScaleError

DEFAULT_CHOICE = "default model"
"""The picker's first choice: the studio's default model (re-exported by app.studio)."""


def cache_key(model: str | None, engine: str = "hf") -> tuple[str, int]:
    """A model on an engine, the weights a run serves and its manifest's modification time: a run
    trained again, or one with a newer checkpoint, is loaded again."""
    manifest = Path(str(model)) / JUDGE_MANIFEST if model else None
    if not (manifest and manifest.is_file()):
        return f"{engine}:{model}", 0
    weights = run_weights(manifest.parent, read_manifest(manifest.parent) or {})
    served = weights.folder.name if weights else ""  # a newer checkpoint, or the final judge, loads again
    return f"{engine}:{model}:{served}", manifest.stat().st_mtime_ns


class JudgeCache:
    """Judges and tokenizers by model choice, loaded on first use; `resolve` turns a choice into a model."""

    def __init__(self, resolve: Callable[[str | None], str | None], device: str | None):
        self._resolve = resolve
        self._device = device
        self._judges: dict[tuple[str, int], Judge] = {}
        self._tokenizers: dict[str | None, object] = {}
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, int], threading.Lock] = {}

    def loading_note(self, choice: str | None, engine: str = "hf") -> str:
        """What getting this judge involves now, for a progress line: "" when it is loaded, else
        loading it, or first preparing the default model it needs (a 517 MB download)."""
        try:
            model = self._resolve(choice)
        except ValueError:
            return ""
        with self._lock:
            if cache_key(model, engine) in self._judges:
                return ""
        name = (choice or "").strip() or DEFAULT_CHOICE
        if needs_default(model) and not default_ready():
            return f"preparing the default model for {name} (first use: a 517 MB download, then a conversion)"
        return f"loading the judge {name}"

    def tokenizer(self, choice: str | None) -> object:
        """The tokenizer of a model choice, for counting tokens and showing the chat template: a
        loaded judge's when there is one, else the tokenizer alone (no weights are loaded; the
        default model is prepared first if need be, and a toast says so)."""
        try:
            model = self._resolve(choice)
            with self._lock:
                for key, judge in self._judges.items():
                    if key[0] == cache_key(model)[0]:
                        return judge.tokenizer
                if model in self._tokenizers:
                    return self._tokenizers[model]
            if needs_default(model) and not default_ready():
                gr.Info("Preparing the default model to count tokens (first use: a 517 MB download, a conversion).")
            tokenizer = load_tokenizer(resolve_weights(model)[0])
        except (ModelError, ValueError) as exc:
            raise gr.Error(str(exc)) from None
        with self._lock:
            self._tokenizers[model] = tokenizer
        return tokenizer

    def judge(self, choice: str | None, engine: str = "hf") -> Judge:
        """The judge for a model choice, loaded on first use and kept (two at most).

        Each model loads under its own lock, so a cold load never holds up scoring with a loaded
        judge. A choice that cannot be served reaches the page as a readable error, not a stack trace."""
        try:
            if engine not in available_engines():
                raise ValueError(f"the engine '{str(engine)[:20]}' is not available here")
            model = self._resolve(choice)
            key = cache_key(model, engine)
            with self._lock:
                if key in self._judges:
                    return self._judges[key]
                loading = self._loading.setdefault(key, threading.Lock())
            with loading:
                with self._lock:
                    if key in self._judges:
                        return self._judges[key]
                judge = Judge.load(model, device=self._device, engine=engine)
                self._keep(key, judge)
                return judge
        except (ModelError, ScaleError, TemplateError, ValueError) as exc:
            raise gr.Error(str(exc)) from None

    def _keep(self, key: tuple[str, int], judge: Judge) -> None:
        """Hold a freshly loaded judge: an older load of the same model goes, and two judges at most stay."""
        with self._lock:
            for old in [k for k in self._judges if k[0] == key[0]]:
                self._judges.pop(old)  # the same run, trained again
            while len(self._judges) >= 2:
                self._judges.pop(next(iter(self._judges)))
            self._judges[key] = judge
            self._loading.pop(key, None)
