"""Launched studios to attack, each on its own data root on a free loopback port: public mode on a
Space (SPACE_ID), public mode by RAFT_PUBLIC=1 alone, a Space whose data root lies outside the
working and temporary folders (a mounted bucket), a Space where a signed-in owner may train, and
local mode; raw HTTP and gradio_client helpers; and the table of attacks tried, printed at the end
of the run (the README's security table comes from it)."""

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

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


SPACE = {"SPACE_ID": "attacker-test/studio", "RAFT_MAX_UPLOAD_MB": "1", "RAFT_WORKSPACE_MB": "20"}
OWNER = ("owner", "a-long-secret")
MODES = {
    "space": SPACE,
    "public": {"RAFT_PUBLIC": "1", "RAFT_MAX_UPLOAD_MB": "1", "RAFT_WORKSPACE_MB": "20"},
    "bucket": SPACE,
    "owner": {**SPACE, "RAFT_ALLOW_TRAINING": "1", "RAFT_AUTH": ":".join(OWNER)},
    "local": {"RAFT_MAX_UPLOAD_MB": "1"},
}
"""Launched modes. 'bucket' keeps its data root outside the working and temporary folders; 'owner'
asks every client to sign in, and its URL carries the credentials that raw_call signs in with."""
SWITCHES = (
    "SPACE_ID",
    "RAFT_PUBLIC",
    "RAFT_ALLOW_TRAINING",
    "RAFT_AUTH",
    "RAFT_ALLOW_ANY_MODEL",
    "RAFT_ALLOWED_MODELS",
)


def bucket_root() -> Path:
    """A data root outside the working folder and the temporary folder, as a mounted bucket is."""
    parent = Path.home() / ".cache" / "raft-security-bucket"
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=parent))
    assert not root.is_relative_to(Path.cwd()) and not root.is_relative_to(tempfile.gettempdir())
    return root


@pytest.fixture(scope="session")
def studios(tmp_path_factory, tiny_model):
    """{mode: (url, studio)} for each of MODES. Gradio's cache is a folder of this run's own (named
    'gradio'), so that the cap on uploads is measured on what these studios hold alone."""
    saved_cache = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("cache") / "gradio")
    launched = {}
    for mode, env in MODES.items():
        root = bucket_root() if mode == "bucket" else tmp_path_factory.mktemp(f"root-{mode}")
        launched[mode] = _launch(root, tiny_model, {**dict.fromkeys(SWITCHES, ""), **env})
    yield {
        mode: (url.replace("://", "://{}:{}@".format(*OWNER)) if mode == "owner" else url, studio)
        for mode, (_, studio, url) in launched.items()
    }
    for mode, (demo, studio, _) in launched.items():
        for job in studio.jobs.list():
            if job.active:
                studio.jobs.stop(job.id, timeout=30)
        demo.close()
        if mode == "bucket":
            shutil.rmtree(studio.root, ignore_errors=True)
    if saved_cache is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = saved_cache


@contextlib.contextmanager
def signed_in(url: str, timeout: float):
    """An HTTP client on the studio; when the URL carries credentials, signed in with them."""
    parts = urlsplit(url)
    with httpx.Client(base_url=f"{parts.scheme}://{parts.hostname}:{parts.port}/", timeout=timeout) as http:
        if parts.username:
            answer = http.post("login", data={"username": parts.username, "password": parts.password})
            assert answer.status_code == 200, answer.text[:200]
        yield http


def raw_call(url: str, api: str, data: list, timeout: float = 120.0, session_hash: str | None = None):
    """POST /gradio_api/call/API with raw JSON (and, if given, a session hash of the caller's
    choosing), then read its event stream: ('complete', data) or ('error', message) - exactly what
    any HTTP client can send, no gradio_client checks."""
    session = {"session_hash": session_hash} if session_hash else {}
    with signed_in(url, timeout) as http:
        started = http.post(f"gradio_api/call/{api.lstrip('/')}", json={"data": data, **session})
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
