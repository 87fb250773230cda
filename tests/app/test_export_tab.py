"""The Export tab: a finished judge written as the Hub-ready folder (a zip named after the run) that
names no server folder, and a push that says why it cannot happen instead of raising a traceback
(offline here), asking for the visitor's own token on a public studio."""

import json
import zipfile
from pathlib import Path

import gradio as gr
import pytest

from app import export_tab
from app.studio import Settings, Studio
from raft.data import prepare_dataset
from raft.files import write_rows
from raft.rubrics import presets
from raft.synthetic import generate_rows
from raft.train import TrainConfig, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("studio-root")
    studio = Studio(Settings(data_root=root, default_model=str(tiny_model)))
    data = studio.workspace().datasets / "mine"
    prepare_dataset(write_rows(root / "rows.jsonl", generate_rows(16, seed=9)), data, validation_ratio=0.25,
                    rubric=presets()["Helpfulness"])  # fmt: skip
    config = TrainConfig(
        data=str(data), output_dir=str(studio.runs_dir / "run-1"), base_model=str(tiny_model), max_steps=1,
        eval_steps=1, eval_rows=2, batch_size=4, lora_r=4, save_steps=1000, device="cpu",
    )  # fmt: skip
    train(config)
    return studio, root


def test_the_export_tab_offers_the_judge_as_a_zip_that_names_no_server_folder(trained):
    studio, root = trained
    assert export_tab.finished_runs(studio) == ["run-1"]
    [download], said = export_tab.export_run(studio, "run-1")
    assert download.endswith("run-1-judge.zip") and "run-1-judge.zip" in said
    zipped_mb = Path(download).stat().st_size / 2**20
    assert f"({zipped_mb:.1f} MB zipped, " in said  # the size the download shows, not the unzipped files'
    with zipfile.ZipFile(download) as z:
        names = set(z.namelist())
        assert {"judge.json", "README.md", "adapter_config.json"} <= names
        for name in names:
            if name.endswith((".json", ".md")):
                assert str(root) not in z.read(name).decode(), f"{name} names the data root"
        assert json.loads(z.read("judge.json"))["rubric"]["criteria"] == presets()["Helpfulness"].criteria
    assert str(root) not in said


def test_a_run_name_is_looked_up_never_joined_into_a_path(trained):
    studio, _ = trained
    for name in ("../run-1", "run-1/../../x", "/etc", "nope"):
        with pytest.raises(gr.Error, match="not a finished run"):
            export_tab.export_run(studio, name)


def test_pushing_offline_says_the_hub_cannot_be_reached(trained):
    studio, root = trained
    with pytest.raises(gr.Error) as caught:
        export_tab.push_run(studio, "run-1", "me/demo-judge", "hf_not_a_real_token", True)
    message = str(caught.value.message)
    assert "cannot be reached" in message and "Traceback" not in message and str(root) not in message
    with pytest.raises(gr.Error, match="not a repository id"):
        export_tab.push_run(studio, "run-1", "no slash here", "", True)


def test_a_public_studio_pushes_only_with_the_visitors_own_token(trained, tiny_model, monkeypatch):
    studio, root = trained
    public = Studio(Settings(data_root=root, default_model=str(tiny_model), public=True))
    monkeypatch.setenv("HF_TOKEN", "hf_the_studios_own")
    with pytest.raises(gr.Error, match="your own Hugging Face token"):
        export_tab.push_run(public, "run-1", "me/demo-judge", "  ", True)


def test_the_export_is_charged_as_written_and_a_refused_one_keeps_nothing(trained, tiny_model, monkeypatch):
    """The folder, its zip and the staged download are each charged to the visitor's quota as they
    are written (the tab used to reserve an estimate and then write uncharged), and an export that
    does not fit stops at the quota leaving nothing of itself."""
    from types import SimpleNamespace

    from app.workspace import Disk, Workspace, WorkspaceError, staging_root

    studio, root = trained
    public = Studio(Settings(data_root=root, default_model=str(tiny_model), public=True, workspace_mb=100))
    visitor = SimpleNamespace(username=None, session_hash="exporter", request=None)
    charged = []
    real_charge = Workspace.charge
    monkeypatch.setattr(Workspace, "charge", lambda self, path, n: (charged.append(n), real_charge(self, path, n)))
    [download], _ = export_tab.export_run(public, "run-1", visitor)
    workspace = public.workspace(visitor)
    zipped = Path(download).stat().st_size
    with zipfile.ZipFile(download) as z:
        unzipped = sum(info.file_size for info in z.infolist())
    assert sum(charged) >= unzipped + 2 * zipped, (sum(charged), unzipped, zipped)
    assert not list(workspace.staging.glob("export-*")), "the folder and zip outlive the request"

    tight = Workspace(workspace.root, workspace.staging, workspace.used_bytes() + unzipped // 2,
                      Disk(root / "workspaces", staging_root(root), 10**12))  # fmt: skip
    held = tight.used_bytes()
    monkeypatch.setattr(Studio, "workspace", lambda self, request=None: tight)
    with pytest.raises(WorkspaceError, match="workspace is full"):
        export_tab.export_run(public, "run-1", visitor)
    assert tight.used_bytes() == held, "a refused export left files"
