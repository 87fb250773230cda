"""Launched studios to attack: one in public (Space) mode, one in local mode, each on its own data
root on a free loopback port; raw HTTP and gradio_client helpers; and the table of attacks tried,
printed at the end of the run (the README's security table comes from it)."""

import json
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(root: Path, model: Path, env: dict[str, str]):
    from app.main import launch, parse_args

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        port = _free_port()
        demo, studio = launch(
            parse_args(["--port", str(port), "--data-root", str(root), "--model", str(model)]), prevent_thread_lock=True
        )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return demo, studio, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="session")
def studios(tmp_path_factory, tiny_model):
    """{'space': (url, studio), 'local': (url, studio)}"""
    env_space = {"SPACE_ID": "attacker-test/studio", "RAFT_MAX_UPLOAD_MB": "1", "RAFT_QUEUE_SIZE": "64"}
    env_local = {"RAFT_MAX_UPLOAD_MB": "1"}
    launched = {}
    for mode, env in (("space", env_space), ("local", env_local)):
        root = tmp_path_factory.mktemp(f"root-{mode}")
        launched[mode] = _launch(root, tiny_model, env)
    yield {mode: (url, studio) for mode, (_, studio, url) in launched.items()}
    for _, (demo, studio, _) in launched.items():
        for job in studio.jobs.list():
            if job.active:
                studio.jobs.stop(job.id, timeout=30)
        demo.close()


def raw_call(url: str, api: str, data: list, timeout: float = 120.0) -> tuple[str, object]:
    """POST /gradio_api/call/API with raw JSON, then read its event stream: ('complete', data) or
    ('error', message) - exactly what any HTTP client can send, no gradio_client checks."""
    with httpx.Client(base_url=url, timeout=timeout) as http:
        started = http.post(f"gradio_api/call/{api.lstrip('/')}", json={"data": data})
        if started.status_code != 200:
            return "refused", started.text[:300]
        event_id = started.json()["event_id"]
        kind, payload = "error", None
        with http.stream("GET", f"gradio_api/call/{api.lstrip('/')}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    text = line.split(":", 1)[1].strip()
                    try:
                        payload = json.loads(text)
                    except json.JSONDecodeError:
                        payload = text
                    if kind in ("complete", "error"):
                        break
        return kind, payload
