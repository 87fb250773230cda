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

from raft.errors import RaftError

log = logging.getLogger("raft.studio")

MAX_CHARS = 600
PATH = re.compile(r"(?<![\w.:/\\~<-])(?:~|[A-Za-z]:)?(?:[/\\][^\s/\\'\"`<>|,;:()\[\]{}]+)+[/\\]?")
"""An absolute path (POSIX or Windows, or under ~) not inside a URL or a relative path."""
EXPECTED = (RaftError, ValueError, FileNotFoundError)
"""Errors whose text is written for people (the library's RaftError, and the plain ValueError of a
refused value); anything else is reported by its kind only."""


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
    elif isinstance(exc, EXPECTED):
        message = str(exc)
    else:
        log.error("unexpected error in a studio handler", exc_info=exc)
        message = f"something went wrong ({type(exc).__name__}); the studio's log has the details"
    return gr.Error(for_visitor(message or type(exc).__name__), print_exception=False)


def guarded(fn: Callable) -> Callable:
    """`fn` whose every error reaches the visitor through `visitor_error` (signature kept for Gradio).

    The visitor's error is raised outside the handler's `except`, so it carries no link to the
    original exception, whose traceback holds the failed call's frames and whatever they held (a
    refused request's rows): they are freed as soon as the handler ends, not when Gradio lets go."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            error = None
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every error becomes a visitor's message
                error = visitor_error(exc)
            if error is not None:
                raise error

        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        error = None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every error becomes a visitor's message
            error = visitor_error(exc)
        raise error

    return call


NOT_UPLOADED = (
    "That file was not uploaded to this studio: upload it first (the page's file box, or POST it to "
    "gradio_api/upload), then send the path that the upload answered."
)


def gradio_error_text(error: BaseException | None) -> str | None:
    """What a visitor reads for an error Gradio raises itself, before any handler runs (a file path
    a client sent that was not uploaded, a malformed payload): without server paths. Gradio names
    the working directory, resolved, in its refusal of a relative path; here the refusal says why
    and what to do instead."""
    if error is None:
        return None
    if type(error).__name__ == "InvalidPathError":
        return NOT_UPLOADED
    return for_visitor(str(error))


def install_gradio_error_filter() -> None:
    """Route the text of Gradio's own errors through `gradio_error_text` (gr.Error messages, which
    our handlers already made safe, pass unchanged). Gradio builds every error event with
    `error_payload`, imported by name in its queue: both references are replaced, once."""
    import gradio.queueing
    import gradio.utils

    original = gradio.utils.error_payload
    if getattr(original, "raft_filtered", False):
        return

    @functools.wraps(original)
    def error_payload(error: BaseException | None, show_error: bool) -> dict[str, Any]:
        content = original(error, show_error)
        if isinstance(content.get("error"), str) and not isinstance(error, gr.Error):
            content["error"] = gradio_error_text(error)
        return content

    error_payload.raft_filtered = True
    gradio.utils.error_payload = error_payload
    gradio.queueing.error_payload = error_payload
