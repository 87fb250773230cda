"""Export tab: a finished judge as the Hub-ready folder (downloaded as a zip) and, where the Hub is
reachable, pushed to it with a token and a private switch. Runs are chosen by name (looked up among
the studio's runs, never joined into a path); what is written names no server folder
(raft.export). On a public studio a push needs the visitor's own token, never the studio's."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from app import manage
from app.studio import Studio, bind
from raft.export import HubError, export_judge, push_judge, zip_folder
from raft.files import DataError


def finished_runs(studio: Studio) -> list[str]:
    """Runs with a final judge (newest first): what can be exported."""
    return [name for name, step in studio.run_steps() if step is None]


def run_list(studio: Studio, selected: str | None = None) -> Any:
    """The finished runs, keeping the selection (else the newest): filled on load and on opening the list."""
    runs = finished_runs(studio)
    return gr.Dropdown(choices=runs, value=selected if selected in runs else (runs[0] if runs else None))


def _run(studio: Studio, name: str | None) -> Path:
    if not name:
        raise gr.Error("Choose a finished run first (train one in the Fine-tune tab).")
    if name not in finished_runs(studio):
        raise gr.Error(f"'{str(name)[:80]}' is not a finished run here; choose one from the list")
    return studio.runs_dir / name


def _exported(studio: Studio, name: str | None, into: Path) -> Path:
    """The run's Hub-ready folder written under `into` (a fresh temporary folder)."""
    run = _run(studio, name)
    try:
        return export_judge(run, into / run.name)
    except DataError as exc:
        raise gr.Error(str(exc).replace(str(run), run.name)) from None


def export_run(studio: Studio, name: str | None, request: gr.Request = None) -> tuple[list[str], str]:
    """Write the run's Hub-ready folder and offer it as `<run>-judge.zip`; a line saying what it holds.

    The folder and its zip are written in the visitor's staging area, charged to the quota as they
    are written (a refusal keeps nothing of them); the folder goes as soon as it is zipped, and the
    zip as soon as its download copy is staged (charged too)."""
    workspace = studio.workspace(request)
    workspace.staging.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="export-", dir=workspace.staging) as tmp:
        with workspace.writing():
            folder = _exported(studio, name, Path(tmp))
            zipped = zip_folder(folder, Path(tmp) / f"{folder.name}-judge.zip")
        zip_size = zipped.stat().st_size  # what the download says (the newcomer saw 22.1 MB beside 17.8 MB)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        files = sorted(p.name for p in folder.iterdir())
        shutil.rmtree(folder)
        offered = workspace.offer([zipped])
    return offered, (
        f"Wrote **{zipped.name}** ({zip_size / 2**20:.1f} MB zipped, {size / 2**20:.1f} MB unzipped): "
        f"{', '.join(files)}. Unzip it and push it with "
        "`huggingface_hub.upload_folder`, or push it from here below."
    )


def push_run(
    studio: Studio, name: str | None, repo_id: str, token: str, private: bool, request: gr.Request = None
) -> str:
    """Export the run and upload it to the Hub repository `repo_id` (created private by default)."""
    token = (token or "").strip()
    if studio.settings.public and not token:
        raise gr.Error(
            "Paste your own Hugging Face token with write access (huggingface.co/settings/tokens): "
            "this public studio never pushes with its own."
        )
    workspace = studio.workspace(request)
    workspace.staging.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="push-", dir=workspace.staging))
    try:
        with workspace.writing():  # the folder pushed, charged to the quota as written
            folder = _exported(studio, name, tmp)
        url = push_judge(folder, repo_id, token or None, private)
    except HubError as exc:
        raise gr.Error(str(exc)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return f"Pushed **{name}** to [{repo_id}]({url}) ({'private' if private else 'public'})."


def build(studio: Studio) -> dict[str, Any]:
    with gr.Tab("Export", id="export"):
        gr.Markdown(
            "Take a finished judge home: the Hub-ready folder (adapter or weights, tokenizer, `judge.json` with "
            "the template and rubric it was trained with, and a model card) as a zip, or pushed to the Hugging "
            "Face Hub. Nothing in it names a folder of this machine; the base model is named by its hub id."
        )
        with gr.Row():
            run = gr.Dropdown([], label="Finished run", elem_id="export-run", allow_custom_value=True)
            write = gr.Button("Write the folder (zip)", variant="primary", elem_id="export-write")
        written = gr.Markdown(elem_id="export-written")
        download = gr.File(label="Download", file_count="multiple", interactive=False, elem_id="export-file")
        with gr.Accordion("Push to the Hugging Face Hub", open=False):
            with gr.Row():
                repo = gr.Textbox(label="Repository (user/name)", elem_id="export-repo")
                token = gr.Textbox(
                    label="Your Hugging Face token (write access)",
                    type="password",
                    elem_id="export-token",
                    info="used for this push only, never stored"
                    + ("; required on this public studio" if studio.settings.public else "; empty: your saved login"),
                )
                private = gr.Checkbox(True, label="Private repository", elem_id="export-private")
            push = gr.Button("Push", elem_id="export-push")
            pushed = gr.Markdown(elem_id="export-pushed")
        with gr.Accordion("Rename or delete: datasets, runs, Align projects, batch results", open=False):
            with gr.Row():
                kind = gr.Radio(manage.KINDS, value="dataset", label="What", elem_id="manage-kind")
                item = gr.Dropdown([], label="Name", elem_id="manage-name", allow_custom_value=True)
                new_name = gr.Textbox(label="New name", elem_id="manage-new")
            with gr.Row():
                rename_btn = gr.Button("Rename", elem_id="manage-rename")
                delete_btn = gr.Button("Delete", variant="stop", elem_id="manage-delete")
            managed = gr.Markdown(elem_id="manage-said")
    listing = bind(manage.name_list, studio)
    kind.change(listing, kind, item, api_name="manage_names", show_progress="hidden")
    item.focus(listing, kind, item, api_name="manage_names_now", show_progress="hidden")
    rename_btn.click(bind(manage.rename, studio), [kind, item, new_name], [managed, item], api_name="manage_rename")
    delete_btn.click(bind(manage.delete, studio), [kind, item], [managed, item], api_name="manage_delete")
    run.focus(bind(run_list, studio), run, run, api_name="export_runs_now", show_progress="hidden")
    write.click(bind(export_run, studio), run, [download, written], api_name="export_write")
    push.click(bind(push_run, studio), [run, repo, token, private], pushed, api_name="export_push")
    return {"run": run, "list": bind(run_list, studio)}
