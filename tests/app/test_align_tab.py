"""Align tab handlers: projects live in the visitor's workspace and are looked up by name; labels,
skips and undos go to disk; the card is blind by default; fine-tuning is refused without labels."""

from types import SimpleNamespace

import gradio as gr
import pytest

from app import align_tab, own_files
from app.studio import Settings, Studio
from raft.batch import score_file
from raft.files import write_rows
from raft.synthetic import generate_rows


def visitor(name):
    return SimpleNamespace(username=None, session_hash=name, request=None)


@pytest.fixture
def public(tmp_path, tiny_model, tiny_judge):
    studio = Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model), public=True))
    rows = write_rows(tmp_path / "rows.jsonl", generate_rows(12, seed=4))
    scored = tmp_path / "scored.jsonl"
    score_file(tiny_judge, rows, scored)
    return studio, scored


def test_projects_are_private_and_looked_up_by_name(public):
    studio, scored = public
    ada, bob = visitor("ada"), visitor("bob")
    name = align_tab.create(studio, None, str(scored), None, 0.3, request=ada).value
    assert own_files.project_names(studio.workspace(ada)) == [name]
    assert own_files.project_names(studio.workspace(bob)) == []
    for attempt in (name, "../" + name, "/etc"):
        with pytest.raises(gr.Error, match="Choose a labelling project"):
            align_tab.open_project(studio, attempt, bob)
    with pytest.raises(gr.Error, match="not one of your batch results"):
        align_tab.create(studio, "../../scored.jsonl", None, None, 0.3, request=bob)


def test_label_skip_undo_and_the_blind_card(public):
    studio, scored = public
    ada = visitor("ada")
    name = align_tab.create(studio, None, str(scored), None, 0.3, request=ada).value
    card, judge, panel, *_, key = align_tab.view(studio, name, "uncertain", True, request=ada)
    assert f"Row {key} ·" in card and "hidden until you submit" in judge and "Labelled: 0 of" in panel
    shown = align_tab.view(studio, name, "uncertain", False, request=ada)[1]
    assert "expected score" in shown
    last, note = align_tab.submit(studio, name, key, "4", "clear answer", request=ada)
    assert f"Row {key} labelled 4; the judge said" in last and note == ""
    project = align_tab.open_project(studio, name, ada)
    assert project.labels() == {key: 4} and project.entries()[0]["note"] == "clear answer"
    nxt = align_tab.view(studio, name, "uncertain", True, request=ada)[-1]
    assert nxt != key
    assert "skipped" in align_tab.skip(studio, name, nxt, request=ada)
    assert "Undid the skip" in align_tab.undo(studio, name, request=ada)
    assert "Undid the label 4" in align_tab.undo(studio, name, request=ada)
    assert align_tab.undo(studio, name, request=ada) == "Nothing to undo."
    with pytest.raises(gr.Error, match="integer from 1 to 5"):
        align_tab.submit(studio, name, key, "7", "", request=ada)
    with pytest.raises(gr.Error, match="no labelled training rows"):
        align_tab.finetune(studio, name, "base", request=ada)


def test_a_batch_results_project_is_judged_by_the_judge_that_scored_it(studio, tmp_path, tiny_judge):
    """A project on a Batch result takes the judge its scores came from, whatever the judge picker
    says: calibrating wraps that judge and 'continue its adapter' trains it (a newcomer leaves the
    picker at the default model; the walk in test_loop_browser.py found the project judged by it)."""
    import json
    import time

    from app.batch_tab import meta_path

    scored = studio.workspace().batch / "rows-scored.jsonl"
    scored.parent.mkdir(parents=True, exist_ok=True)
    score_file(tiny_judge, write_rows(tmp_path / "rows.jsonl", generate_rows(12, seed=4)), scored)
    meta = {"file": "rows.jsonl", "judge": "run: gone", "time": time.time(), "rows": 12, "scored": 12}
    meta_path(scored).write_text(json.dumps(meta))
    assert align_tab.scored_by(studio, scored.name, "default model").value == "run: gone"
    with pytest.raises(gr.Error, match="run 'gone' has no judge"):
        align_tab.create(studio, scored.name, None, "default model", 0.3)
    meta_path(scored).write_text(json.dumps({**meta, "judge": "default model"}))
    name = align_tab.create(studio, scored.name, None, "run: other", 0.3).value
    assert align_tab.open_project(studio, name, None).meta["judge"] == "default model"
