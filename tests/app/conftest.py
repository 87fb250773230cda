"""A Studio over a temporary data root whose default model is the tiny model."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.studio import Settings, Studio  # noqa: E402


@pytest.fixture
def studio(tmp_path, tiny_model):
    return Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model)))
