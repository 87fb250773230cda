"""Which row each labeller's card shows (`offers.json` in a project folder): the studio accepts a
label only for the row on the labeller's card, and keeps that row off the other labellers' cards
for OFFER_SECONDS. The file is read and rewritten whole under an exclusive lock."""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from raft.files import DataError
from raft.output import write_text

OFFERS = "offers.json"
OFFER_SECONDS = 600
"""How long a row shown on one labeller's card is kept from the other labellers' cards."""


class Offers:
    """The offers of the project in `folder`, by labeller (names already cut to length)."""

    def __init__(self, folder: Path):
        self.path = folder / OFFERS

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The offers ({labeller: {key, time, done}}) under an exclusive lock, written back whole on exit."""
        lock = self.path.with_name(OFFERS + ".lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.path
            try:
                offers = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                offers = {}
            offers = offers if isinstance(offers, dict) else {}
            before = json.dumps(offers, sort_keys=True)
            yield offers
            now = time.time()
            offers = {k: v for k, v in offers.items() if now - float(v.get("time", 0)) < OFFER_SECONDS}
            if json.dumps(offers, sort_keys=True) != before:
                write_text(path.with_name(path.name + ".tmp"), json.dumps(offers)).replace(path)  # charged
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def offer(self, labeller: str, key: int | None) -> None:
        """Record that `labeller`'s card now shows row `key` (None: no row)."""
        with self._locked() as offers:
            if key is None:
                offers.pop(labeller, None)
            else:
                offers[labeller] = {"key": int(key), "time": time.time(), "done": False}

    def to_others(self, labeller: str) -> set[int]:
        """Rows on another labeller's card, shown in the last OFFER_SECONDS and not yet answered."""
        with self._locked() as offers:
            now = time.time()
            return {
                int(o["key"])
                for who, o in offers.items()
                if who != labeller and not o.get("done") and now - float(o.get("time", 0)) < OFFER_SECONDS
            }

    def claim(self, labeller: str, key: int) -> int:
        """`key` when it is the row on `labeller`'s card and not yet answered from it (the card is
        then answered); else DataError."""
        with self._locked() as offers:
            shown = offers.get(labeller)
            if not shown or int(shown.get("key", -1)) != key:
                raise DataError(
                    f"row {key} is not the row on your card: nothing recorded; look at the card shown and answer again"
                )
            if shown.get("done"):
                raise DataError(f"row {key} is answered already: nothing recorded; wait for the next card")
            shown["done"] = True
        return key
