"""The system-estimate panel: the Evaluate tab's (a scored file with some rows labelled, looked up
among the visitor's own files) and the Align tab's (the project's held-out labels, saying how many
more would halve the interval, training labels left out)."""

from types import SimpleNamespace

import gradio as gr
import pytest

from app import align_tab, estimate_panel
from app.own_files import scored_file
from app.studio import Settings, Studio
from raft.files import write_rows
from raft.labels import LabelProject


def visitor(name):
    return SimpleNamespace(username=None, session_hash=name, request=None)


def _scored_rows(n=60, labelled=20):
    rows = []
    for i in range(n):
        human = 1 + (i * 7) % 5
        system = "<b>sys-a</b>" if i % 2 else "sys-b"
        rows.append(
            {
                "orig_score": human if i < labelled else None,
                "expected_score": 0.7 * human + 1.2 + 0.1 * (i % 3),
                "probs": [0.2] * 5,
                "mode_score": 1,
                "system": system,
                "row": i + 1,
            }
        )
    return rows


@pytest.fixture
def public(tmp_path, tiny_model):
    studio = Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model), public=True))
    return studio, write_rows(tmp_path / "scored.jsonl", _scored_rows())


def test_evaluate_panel_estimates_with_groups_escaped(public):
    studio, path = public
    text, fig = estimate_panel.evaluate_estimate(
        studio, scored_file, None, str(path), "", "expected_score", "system", "", visitor("ada")
    )
    assert "from 20 labelled and 40 judged-only rows" in text
    assert "labels + judge (PPI++" in text and "labels alone (n = 20)" in text and "judge alone (n = 60)" in text
    assert "worth" in text and "halve the interval" in text
    assert "&lt;b&gt;sys-a&lt;/b&gt;" in text and "<b>sys-a" not in text  # the visitor's text shown as text
    assert str(path.parent) not in text
    names = {trace.name for trace in fig.data}
    assert {"labels + judge (PPI++)", "labels alone", "judge alone (biased)"} <= names


def test_evaluate_panel_refusals_name_the_fix(public):
    studio, path = public
    with pytest.raises(gr.Error, match="Choose a batch result"):
        estimate_panel.evaluate_estimate(studio, scored_file, None, None, "", "", "", "", visitor("ada"))
    with pytest.raises(gr.Error, match="not one of your batch results"):
        estimate_panel.evaluate_estimate(studio, scored_file, "../x.jsonl", None, "", "", "", "", visitor("ada"))
    with pytest.raises(gr.Error, match="two values"):
        estimate_panel.evaluate_estimate(studio, scored_file, None, str(path), "", "", "system", "a", visitor("a"))
    with pytest.raises(gr.Error, match="no gold column 'nope'") as err:
        estimate_panel.evaluate_estimate(studio, scored_file, None, str(path), "nope", "", "", "", visitor("a"))
    assert str(path.parent) not in str(err.value)


def test_align_panel_uses_heldout_labels_and_says_how_many_more(tmp_path):
    from raft.rubrics import presets

    rows = [  # whole judge items: an Align project refuses rows it could not show
        {**r, "orig_score": None, "orig_instruction": f"q{i}", "orig_response": f"a{i}"}
        for i, r in enumerate(_scored_rows(80))
    ]
    project = LabelProject.create(tmp_path / "p", rows, heldout=0.5, seed=0, rubric=presets()["Helpfulness"])
    assert estimate_panel.align_estimate(None) == ""
    assert "Label at least 2 rows" in estimate_panel.align_estimate(project)
    held = sorted(project.heldout)
    for k in held[:10]:
        project.label(k, 1 + (k * 7) % 5)
    train = [k for k in project.keys if k not in project.heldout][:3]
    for k in train:
        project.label(k, 5)
    text = estimate_panel.align_estimate(project)
    assert "(10 held-out labels, 70 rows judged only)" in text
    assert "more held-out labels would halve the interval" in text
    assert "Your 3 training labels are left out of the estimate" in text


def test_the_align_tab_holds_the_panel_refreshed_with_the_agreement(tmp_path, tiny_model):
    from app.main import build_app

    demo, _ = build_app(Settings(data_root=tmp_path / "root", default_model=str(tiny_model)))
    names = {dep.get("api_name") for dep in demo.config["dependencies"]}
    assert {"estimate", "align_estimate"} <= names
    assert align_tab.align_block is estimate_panel.align_block
