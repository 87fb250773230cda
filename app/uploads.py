"""Gradio's upload route, bounded: files sent to `gradio_api/upload` land in Gradio's cache before
any event runs, so they are counted here, on the way in.

Each upload is capped by `max_file_size` (Gradio refuses a larger one while it streams). On top,
the whole cache folder (uploads and the copies Gradio makes of downloads) has a total cap: an upload
whose declared size would pass it is first met by removing the cache's files older than the age
limit (visitors' files age out as Gradio's own `delete_cache` also removes them), and refused with
HTTP 507 and a reason when that is not enough. An upload that does not declare its size is refused
(411): it could not be counted before it is written.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.workspace import folder_bytes

UPLOAD_AGE_S = 3600.0
"""Files in Gradio's cache older than this are removed when room is needed (and by Gradio hourly)."""


@dataclass
class UploadBudget:
    """The total cap on Gradio's cache folder, and the uploads in flight counted against it."""

    folder: Path
    total_bytes: int
    age_s: float = UPLOAD_AGE_S
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, size: int, now: float | None = None) -> str:
        """Count an upload of `size` bytes; '' when it fits (call `done` after), else why not."""
        with self.lock:
            used = folder_bytes(self.folder) + self.in_flight
            if used + size > self.total_bytes:
                used -= self.clear_aged(now)
            if used + size > self.total_bytes:
                return (
                    f"this studio's upload space is full ({self.total_bytes >> 20} MB for everyone's files): "
                    "try again in a few minutes, when older uploads have been cleared"
                )
            self.in_flight += size
            return ""

    def done(self, size: int) -> None:
        with self.lock:
            self.in_flight -= size

    def clear_aged(self, now: float | None = None) -> int:
        """Remove the cache's entries (Gradio keeps one folder per file) older than `age_s`; bytes freed."""
        now = time.time() if now is None else now
        freed = 0
        for entry in list(self.folder.glob("*")):
            try:
                if now - entry.stat().st_mtime <= self.age_s:
                    continue
                size = folder_bytes(entry) if entry.is_dir() else entry.stat().st_size
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                freed += size
            except OSError:
                pass
        return freed


class UploadGuard:
    """ASGI middleware: every POST to an upload route is admitted by its declared size first."""

    def __init__(self, app: Any, budget: UploadBudget):
        self.app, self.budget = app, budget

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        upload = scope.get("method") == "POST" and scope.get("path", "").endswith("/upload")
        if scope.get("type") != "http" or not upload:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is None or not length.isdigit():
            await _refuse(send, 411, "an upload must declare its size (Content-Length)")
            return
        size = int(length)
        why = self.budget.admit(size)
        if why:
            await _refuse(send, 507, why)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.budget.done(size)


async def _refuse(send: Any, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def gradio_cache() -> Path:
    """Gradio's upload and cache folder (GRADIO_TEMP_DIR, else the temporary folder's 'gradio')."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder())
    folder.mkdir(parents=True, exist_ok=True)
    return folder
