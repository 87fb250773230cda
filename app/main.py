"""Build and launch the studio: `python app/main.py [--host H] [--port P] [--model M] [--data-root D]`.

Also the Hugging Face Space entry point (app_file). Models load on first use, not here, so the
page is served at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from app import (  # noqa: E402
    align_state,
    align_tab,
    batch_tab,
    dataset_tab,
    evaluate_tab,
    export_tab,
    finetune_form,
    finetune_tab,
    own_files,
    score_state,
    score_tab,
)
from app.messages import guarded, install_gradio_error_filter  # noqa: E402
from app.studio import Settings, Studio, bind, login_from  # noqa: E402
from app.uploads import UPLOAD_AGE_S, UploadGuard  # noqa: E402

CSS = "#score-result {min-height: 2em} footer {display: none !important}"


def build_app(settings: Settings) -> tuple[gr.Blocks, Studio]:
    """The Blocks with its seven tabs, wired to one Studio (data root, jobs, judges)."""
    studio = Studio(settings)
    # Gradio's own copies (uploads, downloads) go after an hour on a public studio: disk stays bounded
    delete_cache = (600, int(UPLOAD_AGE_S)) if settings.public else None
    with gr.Blocks(title="RAFT Judge Studio", delete_cache=delete_cache) as demo:
        gr.Markdown(
            "# RAFT Judge Studio\nBuild judge datasets, fine-tune judges with regression-aware "
            "fine-tuning, and score responses by their expected score."
        )
        saved_form = finetune_form.browser_state(studio)  # outside the tabs: mounted, so read, as the page loads
        saved_align = align_state.browser_state(studio)  # Align's choices and labeller identity, likewise
        saved_score = score_state.browser_state(studio)  # the Score tab's last item and result, likewise
        with gr.Tabs() as tabs:
            data = dataset_tab.build(studio)
            tune = finetune_tab.build(studio, saved_form)
            score = score_tab.build(studio, saved_score)
            batch = batch_tab.build(studio)
            evaluate = evaluate_tab.build(studio)
            align = align_tab.build(studio, tabs, tune, saved_align)
            export = export_tab.build(studio)

        def scored_choices(request: gr.Request, kept: object = None):
            """Batch results for Evaluate, the newest chosen (the comparison left empty), and for Align,
            the one the visitor chose before a reload (`kept`, align_state) or else the newest."""
            results = own_files.batch_results(studio.workspace(request))
            choices = [own_files.NONE, *results]
            newest = results[0][1] if results else own_files.NONE
            evaluate_lists = (gr.Dropdown(choices=choices, value=newest), gr.Dropdown(choices=choices))
            chosen = align_state.kept_choice(kept, "result", results, newest)
            return (*evaluate_lists, *(gr.Dropdown(choices=choices, value=chosen) for _ in align["results"]))

        def dataset_choices(request: gr.Request, chosen: str | None = None):
            names = studio.datasets(request)
            return gr.Dropdown(choices=names, value=chosen if chosen in names else (names[0] if names else None))

        def refresh_choices(saved: object, kept: object, request: gr.Request):
            """Every server-side list, as the page loads: datasets, judges and batch results; and in the
            same update the Fine-tune form kept in the browser (its dataset among the choices just
            listed), so that no list refilled later overwrites it and the proposal sees the kept steps,
            and Align's kept choices (`kept`: its batch result and the judge to compare)."""
            models = studio.model_choices()
            form = dict(zip(finetune_form.FORM, tune["restore"](saved, request)))
            chosen = form.pop("dataset")
            after = align_state.kept_choice(kept, "after", models, None)
            judges = [gr.Dropdown(choices=models) for _ in [*score["models"], *batch["models"], *align["models"]]]
            if after is not None:
                judges[-1] = gr.Dropdown(choices=models, value=after)  # align["models"] ends with the after judge
            return (
                dataset_choices(request, chosen if isinstance(chosen, str) else None),
                *judges,
                *scored_choices(request, kept),
                *form.values(),
                finetune_form.restored_own_steps(saved),
            )

        model_dropdowns = [tune["dataset"], *score["models"], *batch["models"], *align["models"], *evaluate["results"]]
        model_dropdowns += align["results"]
        scored_choices, refresh_choices = guarded(scored_choices), guarded(refresh_choices)
        batch["scored"].then(scored_choices, None, [*evaluate["results"], *align["results"]], api_name="scored_refresh")

        def written(name: str, request: gr.Request):
            return dataset_choices(request, name)

        data["written"].success(
            guarded(written),
            data["name"],
            tune["dataset"],
            api_name="datasets_refresh",
        )
        data["pair"]["written"].success(guarded(written), data["pair"]["name"], tune["dataset"], api_name=False)
        pair_list = evaluate["pair"]
        batch["pair_scored"].then(pair_list["list"], None, pair_list["results"], api_name=False)
        demo.load(pair_list["list"], None, pair_list["results"], api_name=False)
        restored = [*tune["form"][1:], tune["steps_own"]]
        demo.load(refresh_choices, [saved_form, saved_align], model_dropdowns + restored, api_name="refresh_choices")
        demo.load(align["list"], saved_align, align["kept"], api_name="align_projects")
        demo.load(guarded(score["restore"]), score["saved"], score["kept"], api_name=False)
        demo.load(None, None, None, js=align_tab.KEYS_JS)
        demo.load(bind(finetune_tab.job_list, studio), None, tune["job"], api_name="latest_job")
        demo.load(batch["latest"], None, batch["job"], api_name="batch_latest")
        demo.load(export["list"], None, export["run"], api_name="export_runs")
        demo.load(studio.fresh_run_name, None, tune["run_name"], api_name="fresh_run_name")
        demo.load(tune["views"], tune["form"], [tune["yaml"], tune["command"]], api_name="initial_config")
        on_load, form_outputs = data["load"]
        sample_columns = gr.State([])

        def synthetic_columns(kind: str, upload, hub_id: str, n: int, seed: int, request: gr.Request):
            """The page opens on the synthetic sample: its columns fill the mapping at once (unless a file
            was uploaded meanwhile: dataset_tab.fill_on_load)."""
            if kind != "synthetic sample":
                return []
            return dataset_tab.columns_of(studio, kind, upload, hub_id, n, seed, request)

        demo.load(guarded(synthetic_columns), data["sources"], sample_columns, api_name=False).then(
            on_load, [data["sources"][0], data["sources"][1], sample_columns], form_outputs, api_name=False
        )
    return demo, studio


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="RAFT Judge Studio")
    parser.add_argument(
        "--host", default=os.environ.get("RAFT_HOST", "127.0.0.1" if not os.environ.get("SPACE_ID") else "0.0.0.0")
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("RAFT_PORT", os.environ.get("PORT", 7860))))
    parser.add_argument("--model", default=None, help="default judge model (hub id or folder); env RAFT_DEFAULT_MODEL")
    parser.add_argument("--data-root", default=None, help="where datasets, runs and jobs live; env RAFT_DATA_ROOT")
    parser.add_argument(
        "--auth",
        default=None,
        help='USER:PASSWORD to require a login; env RAFT_AUTH when not given, --auth "" for none (a public '
        "studio trains only where a login is in force and RAFT_ALLOW_TRAINING=1)",
    )
    return parser.parse_args(argv)


def launch(args: argparse.Namespace, prevent_thread_lock: bool = False) -> tuple[gr.Blocks, Studio]:
    try:
        auth = login_from(args.auth)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    settings = Settings.from_env(args.data_root, args.model, login=auth is not None)
    install_gradio_error_filter()
    demo, studio = build_app(settings)
    # on a public studio every upload is counted against a total cap on Gradio's cache (app.uploads)
    guard = [Middleware(UploadGuard, budget=studio.uploads)] if settings.public else []
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size).launch(
        app_kwargs={"middleware": guard},
        server_name=args.host,
        server_port=args.port,
        auth=auth,
        prevent_thread_lock=prevent_thread_lock,
        max_file_size=f"{settings.max_upload_mb}mb",
        allowed_paths=[],  # nothing under the data root is served: downloads are staged copies
        css=CSS,
        theme=gr.themes.Soft(),
        show_error=True,
        quiet=prevent_thread_lock,
    )
    return demo, studio


if __name__ == "__main__":
    launch(parse_args())
