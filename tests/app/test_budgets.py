"""Budgets charged on cost, at the handlers: a preview is kept on the server under an id good for
its visitor only, in a bounded store; labels and Align's outputs are charged to the quota; Align's
"continue" names the run, not its folder; a formula column name is neutralised in the Batch CSV;
Gradio's own refusal of a path that was not uploaded names no server folder."""

import csv
import json
import os
from types import SimpleNamespace

import gradio as gr
import pytest

from app import align_tab, dataset_tab
from app.messages import NOT_UPLOADED, gradio_error_text
from app.previews import PreviewStore
from app.studio import RUN_PREFIX, Settings, Studio
from raft.files import write_csv_download
from raft.labels import LabelProject
from raft.models import JUDGE_MANIFEST
from raft.synthetic import generate_rows


def visitor(name):
    return SimpleNamespace(username=None, session_hash=name, request=None)


@pytest.fixture
def public(tmp_path, tiny_model):
    return Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model), public=True, workspace_mb=1))


def test_a_preview_is_an_id_good_for_its_visitor_only(public):
    ada, bob = visitor("ada"), visitor("bob")
    args = ("synthetic sample", None, "", 40, "", "score_only", "", "none", 0, 0.2, 0)
    token = dataset_tab.preview(public, *args, request=ada)[0]
    assert isinstance(token, str) and len(token) >= 20
    assert dataset_tab.example(public, token, "none", 1, request=ada)[0].startswith("###Task Description:")
    assert dataset_tab.example(public, token, "none", 1, request=bob) == ("", "")
    with pytest.raises(gr.Error, match="Preview the dataset first"):
        dataset_tab.write(public, token, "stolen", "none", request=bob)
    stats, _ = dataset_tab.write(public, token, "mine", "none", request=ada)
    assert stats["train"] == 32


def test_the_preview_store_is_bounded_in_bytes_count_and_age():
    store = PreviewStore(max_bytes=1000, max_items=3, ttl_s=60)
    keys = [store.put(f"v{i}", f"value-{i}", 400) for i in range(3)]
    assert store.get("v0", keys[0]) is None and store.get("v2", keys[2]) == "value-2", "1,200 bytes > 1,000"
    assert store.held_bytes() <= 1000
    again = store.put("v2", "newer", 10)
    assert store.get("v2", keys[2]) is None and store.get("v2", again) == "newer", "one preview per visitor"
    store.ttl_s = -1
    assert store.get("v2", again) is None and store.held_bytes() == 0


def _project(studio, who, n=12):
    rows = [{**r, "row": i + 1, "expected_score": 3.0, "probs": [0.2] * 5} for i, r in enumerate(generate_rows(n))]
    folder = studio.workspace(who).root / "labels" / "p"
    with studio.workspace(who).writing():
        return LabelProject.create(folder, rows, judge="default model", heldout=0.5)


def test_labels_and_notes_are_charged_to_the_quota(public):
    ada = visitor("ada")
    project = _project(public, ada)
    root = public.workspace(ada).root
    used = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    (root / "batch" / "filler").write_bytes(b"x" * (2**20 - 3000 - used))
    key = align_tab.view(public, "p", "uncertain", True, request=ada)[-1]
    note = "\x01" * 1000  # six bytes each as JSON: 6 KB of label for 1,000 characters
    with pytest.raises(gr.Error, match="workspace is full"):
        align_tab.submit(public, "p", key, "4", note, request=ada)
    assert project.labels() == {} and os.path.getsize(project.labels_path) == 0
    key = align_tab.view(public, "p", "uncertain", True, request=ada)[-1]
    align_tab.submit(public, "p", key, "4", "short", request=ada)
    assert project.labels() == {key: 4}


def test_continue_names_the_run_and_never_its_folder(public, tmp_path):
    run = public.runs_dir / "run-7"
    (run / "model").mkdir(parents=True)
    (run / JUDGE_MANIFEST).write_text(json.dumps({"scale": [1, 5], "mode": "score_only"}))
    ada = visitor("ada")
    project = _project(public, ada)
    project.meta["judge"] = "run: run-7"
    (project.folder / "project.json").write_text(json.dumps(project.meta))
    for key in project.keys:
        project.label(key, 3)
    public.settings.workspace_mb = 200
    base = align_tab.finetune(public, "p", "continue", request=ada)[3]
    assert base == RUN_PREFIX + "run-7" and str(public.root) not in base
    assert public.resolve_model(base) == str(run), "the form's value resolves on the server"
    (run / "model").rmdir()
    with pytest.raises(gr.Error, match="has no judge yet"):
        align_tab.finetune(public, "p", "continue", request=ada)


def test_a_formula_column_name_is_neutralised_in_the_csv_header(tmp_path):
    rows = [{"row": 1, '=HYPERLINK("http://x","y")': "a", "@SUM(A1)": 2, "'@SUM(A1)": 3, "-2": 4}]
    path = write_csv_download(tmp_path / "out.csv", rows)
    header = next(csv.reader(path.open(encoding="utf-8")))
    assert header == ["row", '\'=HYPERLINK("http://x","y")', "'@SUM(A1)", "'@SUM(A1) (2)", "-2"]


def test_gradio_refusing_a_path_that_was_not_uploaded_names_no_server_folder():
    from gradio.exceptions import InvalidPathError

    said = gradio_error_text(InvalidPathError(f"Cannot move {os.getcwd()}/data/x.csv to the gradio cache dir"))
    assert said == NOT_UPLOADED and os.getcwd() not in said
    assert "/srv/x" not in gradio_error_text(ValueError("bad payload at /srv/x/y.json"))
