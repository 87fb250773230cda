"""Fine-tune on my labels (issue 21, item 5): steps proposed from the rows (a few epochs, not 100
steps for 21 rows), the page saying what was written, the project's judge continued by its run
name (never a server path; issue 22, item 8), and the filled form restored after a reload."""

import json
from types import SimpleNamespace

import gradio as gr
import pytest

from app import align_tab, finetune_form, own_files
from app.finetune_form import FORM
from app.studio import Settings, Studio
from raft.labels import LabelProject
from raft.train.sizing import MAX_PROPOSED, describe_proposal, propose_steps


def visitor(name="ada"):
    return SimpleNamespace(username=None, session_hash=name, request=None)


def test_steps_are_a_few_epochs_over_the_rows():
    assert propose_steps(21, 4) == 18  # 6 steps an epoch, 3 epochs
    assert propose_steps(21, 2, grad_accum=2) == 18
    assert propose_steps(1, 8) == 3
    assert propose_steps(100_000, 4) == MAX_PROPOSED
    assert describe_proposal(21, 4) == "21 training rows: 18 steps proposed (3 epochs at 4 rows a step)"
    assert "raise it to see every row" in describe_proposal(100_000, 4)


@pytest.fixture
def studio(tmp_path, tiny_model):
    return Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model)))


def _run(studio, name="run-1"):
    """A run folder the studio serves (a manifest and a final weights folder)."""
    run = studio.runs_dir / name
    (run / "model").mkdir(parents=True)
    (run / "judge.json").write_text(json.dumps({"weights": "model", "scale": [1, 5], "mode": "score_only"}))
    return run


def _labelled_project(studio, request, judge):
    rows = [
        {
            "orig_instruction": f"q{i}",
            "orig_response": f"a{i}",
            "orig_criteria": "helpful",
            **{f"orig_score{k}_description": f"d{k}" for k in range(1, 6)},
            "probs": [0.2] * 5,
            "expected_score": 3.0,
        }
        for i in range(30)
    ]
    folder = own_files.projects_dir(studio.workspace(request)) / "mine"
    project = LabelProject.create(folder, rows, judge=judge, heldout=0.3, seed=0)
    for key in project.keys:
        project.label(key, 1 + key % 5)
    return project


def test_finetune_on_my_labels_proposes_steps_says_what_was_written_and_continues_by_run_name(studio):
    ada = visitor()
    _run(studio)
    project = _labelled_project(studio, ada, "run: run-1")
    rows = project.counts()["train_labelled"]
    tabs, dataset, run_name, base, steps, note = align_tab.finetune(studio, "mine", "continue", 4, 1, request=ada)
    assert base == "run: run-1" and str(studio.root) not in base
    assert steps == propose_steps(rows, 4) and steps < 100
    assert f"Wrote the dataset **{dataset.value}** from your labels: {rows} training rows" in note
    assert f"{steps} steps proposed" in note
    assert finetune_form.propose(studio, dataset.value, 4, 1, request=ada) == (
        steps,
        describe_proposal(rows, 4, 1) + " (edit Max steps to change it).",
    )


def test_continue_is_refused_when_the_projects_judge_is_no_run(studio):
    ada = visitor()
    _labelled_project(studio, ada, "default model")
    with pytest.raises(gr.Error, match="not a fine-tuned run"):
        align_tab.finetune(studio, "mine", "continue", 4, 1, request=ada)


def test_the_form_kept_in_the_browser_is_restored_and_hostile_values_are_dropped(studio):
    ada, bob = visitor("ada"), visitor("bob")
    _labelled_project(studio, ada, None)
    dataset = align_tab.finetune(studio, "mine", "base", 4, 1, request=ada)[1].value
    values = ["x"] * len(FORM)
    kept = finetune_form.save(*values)
    assert list(kept) == FORM
    saved = {
        "dataset": dataset,
        "run_name": "run-9",
        "base_model": "run: run-1",
        "loss": "raft",
        "max_steps": 18,
        "batch_size": "4",
        "lora": 1,
        "learning_rate": "nan",
        "epochs": {"$": 1},
    }
    restored = dict(zip(FORM, finetune_form.restore(studio, saved, request=ada)))
    assert restored["dataset"] == dataset and restored["max_steps"] == 18.0 and restored["batch_size"] == 4.0
    assert restored["lora"] is True and restored["base_model"] == "run: run-1"
    skipped = [name for name, v in restored.items() if not isinstance(v, (str, float, bool))]
    assert {"run_name", "learning_rate", "epochs", "lam"} <= set(skipped)  # fresh name; nan and a dict dropped
    other = dict(zip(FORM, finetune_form.restore(studio, {**saved, "dataset": "../../etc"}, request=bob)))
    assert not isinstance(other["dataset"], str)  # not one of the visitor's datasets: not restored
    assert all(not isinstance(v, (str, float, bool)) for v in finetune_form.restore(studio, "junk", request=ada))


def test_the_kept_forms_key_outlives_a_server_restart_and_the_kept_state_is_outside_the_tabs(studio, tiny_model):
    key = finetune_form.browser_secret(studio)
    again = Studio(Settings(data_root=studio.root, default_model=str(tiny_model)))
    assert finetune_form.browser_secret(again) == key and len(key) >= 16  # a restart reads the same key
    assert (studio.root / finetune_form.SECRET_FILE).stat().st_mode & 0o077 == 0

    from app.main import build_app

    demo, _ = build_app(again.settings)
    tabs = {c["id"] for c in demo.config["components"] if c["type"] == "tabitem"}
    layout = demo.config["layout"]

    def parents(node, above=()):
        yield node["id"], above
        for child in node.get("children", []):
            yield from parents(child, (*above, node["id"]))

    state = next(
        c["id"] for c in demo.config["components"] if c.get("props", {}).get("storage_key") == "raft-finetune-form"
    )
    where = dict(parents(layout))
    assert not tabs & set(where[state])  # in a tab not opened yet it is read only when that tab opens


def test_a_dataset_chosen_proposes_steps_unless_the_visitor_typed_their_own(studio):
    ada = visitor()
    _labelled_project(studio, ada, None)
    dataset = align_tab.finetune(studio, "mine", "base", 4, 1, request=ada)[1].value
    steps, note = finetune_form.propose(studio, dataset, 4, 1, False, request=ada)
    assert steps < 100 and "steps proposed" in note
    assert all(isinstance(v, type(gr.skip())) for v in finetune_form.propose(studio, dataset, 4, 1, True, request=ada))
    # Align has just written this dataset and proposed its steps: no second proposal over its note
    rows = finetune_form.dataset_rows(studio, dataset, ada)
    align_note = finetune_form.written_note(dataset, rows, 4, 1)
    skipped = finetune_form.propose(studio, dataset, 4, 1, False, align_note, request=ada)
    assert all(isinstance(v, type(gr.skip())) for v in skipped)
    kept = finetune_form.save(*([1] * len(FORM)), True)
    assert kept[finetune_form.OWN_STEPS] is True and finetune_form.restored_own_steps(kept)
    assert not finetune_form.restored_own_steps({**kept, finetune_form.OWN_STEPS: "yes"})
    assert not finetune_form.restored_own_steps(None)
