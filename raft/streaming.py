"""Run a slow call in a thread and follow it as an iterator: the updates it emits (generated text,
say) as they come, then its result; closing the iterator cancels the call at its next check.

This is what lets a page stream a judge's feedback token by token and stop it with a button:
the call receives `emit` and a `cancelled` event, and raises `Cancelled` when the event is set.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_DONE = object()


class Cancelled(Exception):
    """Raised inside a streamed call when whoever followed it stopped or asked to cancel."""


def follow(
    work: Callable[[Callable[[Any], None], threading.Event], Any], idle_s: float = 0.5
) -> Iterator[tuple[str, Any]]:
    """Yield ("update", latest emitted value) as `work(emit, cancelled)` emits (only the latest when
    several queued up), ("idle", None) after `idle_s` without one (so the follower can be closed
    while nothing happens), then ("done", result). An exception in `work` is raised here.

    Closing the iterator sets `cancelled`; `work` should check it and raise `Cancelled`."""
    updates: queue.Queue = queue.Queue()
    cancelled = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work(updates.put, cancelled)
        except BaseException as exc:  # handed to the follower, which raises it
            outcome["error"] = exc
        finally:
            updates.put(_DONE)

    threading.Thread(target=run, daemon=True, name="streamed-call").start()
    try:
        while True:
            try:
                latest = updates.get(timeout=idle_s)
            except queue.Empty:
                yield "idle", None
                continue
            while latest is not _DONE and not updates.empty():
                latest = updates.get_nowait()
            if latest is _DONE:
                break
            yield "update", latest
        if "error" in outcome:
            raise outcome["error"]
        yield "done", outcome["result"]
    finally:
        cancelled.set()
