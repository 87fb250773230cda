"""A Studio over a temporary data root whose default model is the tiny model."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.studio import Settings, Studio  # noqa: E402


@pytest.fixture
def studio(tmp_path, tiny_model):
    return Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model)))


@pytest.fixture(scope="module")
def launched(tmp_path_factory, tiny_model):
    """The studio served on a free local port (its data root and tiny default model), and its URL."""
    import socket

    from app.main import launch, parse_args

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path_factory.mktemp("studio")
    args = parse_args(["--port", str(port), "--data-root", str(root), "--model", str(tiny_model)])
    demo, studio = launch(args, prevent_thread_lock=True)
    yield f"http://127.0.0.1:{port}/", studio
    for job in studio.jobs.list():
        if job.active:
            studio.jobs.stop(job.id, timeout=30)
    demo.close()
