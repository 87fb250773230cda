"""The one place that turns an error into what a visitor reads: words without server paths (a
path becomes its last part, a name), no traceback, and escaped so that a name holding markup shows
as text in a toast. Every handler goes through `guarded` (app.studio.bind applies it)."""

from __future__ import annotations

import functools
import html
import inspect
import logging
import re
from collections.abc import Callable
from typing import Any

import gradio as gr

log = logging.getLogger("raft.studio")

MAX_CHARS = 600
PATH = re.compile(r"(?<![\w.:/\\~<-])(?:~|[A-Za-z]:)?(?:[/\\][^\s/\\'\"`<>|,;:()\[\]{}]+)+[/\\]?")
"""An absolute path (POSIX or Windows, or under ~) not inside a URL or a relative path."""
EXPECTED = ("DataError", "ConfigError", "TemplateError", "ModelError", "ScaleError", "JobError", "WorkspaceError")
"""Errors whose text is written for people; anything else is reported by its kind only."""


def without_paths(text: str) -> str:
    """`text` with every absolute path replaced by its last part: '/srv/data/x/train.jsonl' -> 'train.jsonl'."""
    return PATH.sub(lambda m: m.group(0).rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or "(folder)", text)


def for_visitor(text: str) -> str:
    """Any text about to be shown on a page: no server paths, markup escaped, a bounded length."""
    text = without_paths(str(text))
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS - 1] + "…"
    return html.escape(text, quote=False)


def visitor_error(exc: BaseException) -> gr.Error:
    """The gr.Error a visitor sees for `exc`: its message if it was written for people, else its kind."""
    if isinstance(exc, gr.Error):
        message = str(exc.message)
    elif type(exc).__name__ in EXPECTED or isinstance(exc, (ValueError, FileNotFoundError)):
        message = str(exc)
    else:
        log.error("unexpected error in a studio handler", exc_info=exc)
        message = f"something went wrong ({type(exc).__name__}); the studio's log has the details"
    return gr.Error(for_visitor(message or type(exc).__name__), print_exception=False)


def guarded(fn: Callable) -> Callable:
    """`fn` whose every error reaches the visitor through `visitor_error` (signature kept for Gradio)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every error becomes a visitor's message
                raise visitor_error(exc) from None

        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every error becomes a visitor's message
            raise visitor_error(exc) from None

    return call
