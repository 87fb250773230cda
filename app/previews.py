"""Previews kept on the server: *Preview* builds a dataset in memory and the page keeps only an
unguessable id of it (in `gr.State`), never the dataset itself, so what a visitor previews is held
once, bounded, and dropped when it is old.

The store holds at most `max_bytes` of previews (their decoded size, as the request's read budget
counted it) and `max_items` of them, the least recently used going first; an entry unused for
`ttl_s` is dropped. An id is good only for the visitor who made it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

TTL_S = 1800.0
"""A preview unused this long is dropped (Write then asks for a new Preview)."""


@dataclass
class _Entry:
    owner: str | None
    value: Any
    size: int
    used: float


class PreviewStore:
    """Built datasets by id, bounded in bytes and count (see the module docstring)."""

    def __init__(self, max_bytes: int, max_items: int = 32, ttl_s: float = TTL_S):
        self.max_bytes, self.max_items, self.ttl_s = max_bytes, max_items, ttl_s
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, owner: str | None, value: Any, size: int) -> str:
        """Keep `value` (about `size` bytes) for `owner`; its id. A visitor's older previews go first."""
        key = secrets.token_urlsafe(18)
        with self._lock:
            for old in [k for k, e in self._items.items() if e.owner == owner]:
                self._items.pop(old)  # one preview per visitor: the page shows only the last
            self._items[key] = _Entry(owner, value, size, time.time())
            self._trim()
        return key

    def get(self, owner: str | None, key: Any) -> Any:
        """The value kept under `key` for `owner`, or None (unknown, another visitor's, or dropped)."""
        if not isinstance(key, str):
            return None
        with self._lock:
            self._trim()
            entry = self._items.get(key)
            if entry is None or entry.owner != owner:
                return None
            entry.used = time.time()
            self._items.move_to_end(key)
            return entry.value

    def held_bytes(self) -> int:
        with self._lock:
            return sum(e.size for e in self._items.values())

    def _trim(self) -> None:
        now = time.time()
        for key in [k for k, e in self._items.items() if now - e.used > self.ttl_s]:
            self._items.pop(key)
        while self._items and (
            len(self._items) > self.max_items or sum(e.size for e in self._items.values()) > self.max_bytes
        ):
            self._items.popitem(last=False)
