"""Fine-tune tab: a config form with its YAML and CLI twins, jobs started and watched by a timer,
stop and resume, and every past run's curves. All job state lives on disk (raft.jobs), so closing
or reloading the page loses nothing."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import yaml

from app import finetune_form, plots, train_config
from app.finetune_form import FORM, FinetuneForm, form_handler
from app.messages import for_visitor, without_paths
from app.studio import Studio, bind
from raft.data import read_dataset_manifest
from raft.files import DataError
from raft.jobs import QUEUED, Job, JobError, summarize
from raft.loss import LOSSES, pair_losses
from raft.paths import safe_child
from raft.runs import PROGRESS_FILE
from raft.text import md_text
from raft.train.config import TrainConfig
from raft.train.plan import memory_plan

INFO = {
    "loss": "; ".join(f"{row.name}: {row.summary}" for row in LOSSES.values()),
    "lam": "cot_raft only: the weight of the RAFT score loss added to the feedback cross-entropy",
    "lora": "train small low-rank adapters instead of every weight: faster, less memory",
    "lora_r": "the adapters' rank: larger learns more, uses more memory",
    "gradient_checkpointing": "recompute activations to save memory, about 30% slower",
    "max_steps": "optimizer steps; -1 trains by epochs",
    "eval_steps": "validate on the validation split every this many steps (and at step 0)",
    "grad_accum": "batches added up per optimizer step",
    "max_length": "tokens per example; longer examples are cut",
}


@form_handler
def update_views(studio: Studio, form: FinetuneForm, request: gr.Request = None) -> tuple[str, str]:
    """The form as YAML and as the equivalent command (or the reason it is not a valid config)."""
    try:
        config = form.to_config()
    except (ValueError, TypeError) as exc:
        return f"# {for_visitor(str(exc))}", ""
    return config.to_yaml(), train_config.cli_command(studio, config)


def config_from_yaml(studio: Studio, text: str, request: gr.Request = None) -> TrainConfig:
    """Parse the (possibly edited) YAML and resolve its names: unknown keys, bad values and paths are refused."""
    try:
        return train_config.from_yaml(studio, text, studio.workspace(request))
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise gr.Error(str(exc)) from None


def dataset_summary(studio: Studio, dataset: str | None, request: gr.Request = None) -> str:
    """What a run on this dataset trains with: its mode, scale and template, from the dataset's manifest."""
    if not dataset:
        return "⚠️ " + train_config.NO_DATASET
    try:
        manifest = read_dataset_manifest(safe_child(studio.workspace(request).datasets, dataset))
    except (DataError, ValueError, KeyError) as exc:
        return f"⚠️ {md_text(without_paths(str(exc)), 300)}"  # the name sent is user text: no markup, no image
    prompt = manifest["prompt"]
    if manifest.get("task") == "pairwise":
        return (
            f"Trains a **pairwise** judge (A or B, each pair in both orders) in mode **{manifest['mode']}** with the "
            f"templates `{prompt.with_reference.name}` / `{prompt.without_reference.name}`; losses: "
            f"{', '.join(pair_losses())}."
        )
    return (
        f"Trains in mode **{manifest['mode']}** on the scale {manifest['scale'][0]}..{manifest['scale'][1]} "
        f"with the dataset's templates `{prompt.with_reference.name}` / `{prompt.without_reference.name}` "
        "(their text travels with the run)."
    )


@form_handler
def memory_note(studio: Studio, form: FinetuneForm, request: gr.Request = None) -> str:
    """The dataset's summary, then the run's estimated peak memory on its longest batch and a
    warning when it exceeds the free memory (raft.train.plan); the summary alone without an estimate."""
    summary = dataset_summary(studio, form.dataset, request)
    try:
        config = train_config.resolve(studio, form.to_config(), studio.workspace(request))
        plan = memory_plan(config)
    except (ValueError, TypeError, OSError, KeyError, DataError):
        return summary
    if plan is None:
        return summary
    note = f"Memory: {plan['text']}."
    if plan["warning"]:
        note = f"⚠️ **{for_visitor(plan['warning'])}**\n\n{note}"
    return f"{summary}\n\n{note}"


def job_form(studio: Studio, job_id: str | None) -> tuple[Any, ...]:
    """The form filled from a chosen job's config (the job's own copy, looked up by its id), with a
    fresh run name: the form follows the job, ready to run it again or vary it."""
    try:
        folder = studio.jobs.registry.folder(str(job_id or ""))
        config = TrainConfig.from_yaml(folder / "config.yaml")
    except (JobError, OSError, ValueError):
        return (gr.skip(),) * len(FORM)
    base = config.base_model
    if not base or base == studio.settings.default_model:
        shown = ""
    elif Path(base).parent == studio.runs_dir:
        shown = f"run: {Path(base).name}"
    else:
        shown = base if not Path(base).is_absolute() else Path(base).name
    values = {
        "dataset": Path(config.data).name if config.data else None,
        "run_name": studio.fresh_run_name(),
        "base_model": shown,
        **{k: getattr(config, k) for k in FORM if k not in ("dataset", "run_name", "base_model")},
    }
    return tuple(values[k] for k in FORM)


def job_form_owned(studio: Studio, job_id: str | None) -> tuple[Any, ...]:
    """job_form, then the job's Max steps marked as the visitor's own in the same update (the dataset
    it sets proposes no steps over them)."""
    values = job_form(studio, job_id)
    return (*values, gr.skip() if all(isinstance(v, type(gr.skip())) for v in values) else True)


def job_choices(studio: Studio) -> list[tuple[str, str]]:
    return [(f"{j.id} · {Path(j.run_dir).name} · {j.status}", j.id) for j in studio.jobs.list("train")]


def start(studio: Studio, text: str, request: gr.Request = None) -> str:
    """Start a job from the YAML; returns its id."""
    if not studio.settings.allow_training:
        raise gr.Error(studio.settings.training_note.replace("**", ""))
    config = config_from_yaml(studio, text, request)
    try:
        return studio.jobs.start(config, queue=True).id  # a second Start waits its turn in the job list
    except JobError as exc:
        raise gr.Error(str(exc)) from None


def stop(studio: Studio, job_id: str | None) -> str:
    """Ask a job to stop (checkpoint first, killed after a timeout in the background); returns at once."""
    if not studio.settings.allow_training:
        raise gr.Error("Training is off on this studio.")
    if not job_id:
        raise gr.Error("Choose a job first.")
    try:
        return studio.jobs.stop(job_id, timeout=120, wait=False).id
    except JobError as exc:
        raise gr.Error(str(exc)) from None


def resume(studio: Studio, job_id: str | None) -> str:
    """Relaunch a stopped, failed or killed job as the same job: from its last checkpoint, or from
    step 0 when it has none (the status line says which); returns its id."""
    if not studio.settings.allow_training:
        raise gr.Error("Training is off on this studio.")
    if not job_id:
        raise gr.Error("Choose a stopped or failed job first.")
    try:
        return studio.jobs.resume(job_id).id
    except JobError as exc:
        raise gr.Error(str(exc)) from None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _since(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return (datetime.now(timezone.utc) - datetime.fromisoformat(stamp)).total_seconds()


def elapsed_s(job: Job, s: dict[str, Any]) -> float | None:
    """Seconds since this attempt's process started, read on every tick: it never freezes between
    training steps, and never jumps back when training begins (the trainer's own clock starts after
    loading). An ended job: its launch to its end, else the trainer's figure."""
    start = job.launched or job.started
    if job.active:
        return _since(start)
    if start and job.ended:
        return (datetime.fromisoformat(job.ended) - datetime.fromisoformat(start)).total_seconds()
    return s["elapsed_s"]


def remaining_s(job: Job, s: dict[str, Any]) -> float | None:
    """The trainer's last estimate of the time left, counted down since it was written."""
    if not job.active or s["remaining_s"] is None:
        return None
    try:
        written = (Path(job.run_dir) / PROGRESS_FILE).stat().st_mtime
    except OSError:
        return s["remaining_s"]
    return max(0.0, s["remaining_s"] - (datetime.now(timezone.utc).timestamp() - written))


def status_line(studio: Studio, job: Job, progress: list[dict[str, Any]]) -> str:
    """One job's state in words: status, what it is doing now (phase k/n, or what a stop waits
    for), elapsed and remaining time, last loss; the attempt when a Resume relaunched it."""
    s = summarize(progress)
    phase = studio.jobs.phase(job) if job.active else None
    parts = [f"**{job.status}**"]
    activity = studio.jobs.activity(job)
    if phase and phase["phase"] == "training" and phase.get("total"):
        # steps done, the count the log's last line gives: the phase names the step under way, and
        # between a step's log line and the next step's start it still names the step just logged
        done = max(int(phase["done"] or 1) - 1, int(s["step"] or 0))
        activity = f"training: {done}/{phase['total']} steps done ({100 * done / phase['total']:.0f}%)"
    elif not job.active and s["total_steps"]:
        activity = ", ".join(filter(None, [activity, f"step {s['step']} / {s['total_steps']}"]))
    if activity:
        parts.append(activity)
    if job.status != QUEUED:
        parts.append(f"elapsed {_duration(elapsed_s(job, s))}")
    remaining = remaining_s(job, s)
    if remaining is not None:
        parts.append(f"remaining {_duration(remaining)}")
    if s["loss"] is not None:
        parts.append(f"loss {s['loss']:.3g}")
    line = " · ".join(parts)
    if job.active and job.attempt > 1 and job.note:
        line += f"\n\nAttempt {job.attempt}: {job.note}."
    return line


def watch(studio: Studio, job_id: str | None, log_scale: bool) -> tuple[Any, ...]:
    """Status line, loss and validation plots, and log tail of one job (called by the timer)."""
    if not job_id:
        return "No job selected.", plots.loss_curve([]), plots.eval_curve([]), ""
    try:
        job = studio.jobs.get(job_id)
    except JobError as exc:
        return str(exc), plots.loss_curve([]), plots.eval_curve([]), ""
    hidden = studio.settings.public and not studio.settings.allow_training
    shown = without_paths  # local too: the log names site-packages and the data root, which no visitor needs
    # the log is read first: the status, read after it, is never behind the log's last step
    log = "(the log is not shown on a public studio)" if hidden else shown(studio.jobs.log_tail(job, 30))
    progress = studio.jobs.progress(job)
    status = status_line(studio, job, progress)
    if job.status in ("failed", "killed"):
        why = "see the server log" if hidden else shown(job.error or "")
        status += f"\n\n**Why:** exit code {job.exit_code}\n\n```\n{why}\n```"
    return status, plots.loss_curve(progress, log_scale), plots.eval_curve(progress), log


def refresh_jobs(studio: Studio, selected: str | None, shown: list | None) -> tuple[Any, list]:
    """The job dropdown's labels (they carry each job's status) when they changed since `shown`,
    else no update, so that a job list never keeps saying "stopping" after the job ended."""
    choices = [list(c) for c in job_choices(studio)]
    if choices == shown:
        return gr.skip(), shown
    value = selected if selected in {c[1] for c in choices} else (choices[0][1] if choices else None)
    return gr.Dropdown(choices=[tuple(c) for c in choices], value=value), choices


RUNS_COLUMNS = ["job", "run", "status", "started", "step", "loss", "val_pearson", "val_rmse"]


def pearson_cell(summary: dict[str, Any]) -> Any:
    """The last validation Pearson, rounded; on fewer rows than the Validation plot draws (it swings
    from -1 to 1 by chance there) the reason instead, as the plot's legend says."""
    n = summary.get("val_n")
    if n is not None and n < plots.MIN_N:
        return f"not computed, n < {plots.MIN_N}"
    return plots.rounded(summary.get("val_pearson"))


def runs_table(studio: Studio) -> pd.DataFrame:
    rows = []
    for job in studio.jobs.list("train"):
        s = summarize(studio.jobs.progress(job))
        rows.append(
            {
                "job": job.id,
                "run": Path(job.run_dir).name,
                "status": job.status,
                "started": job.started,
                "step": s["step"],
                "loss": plots.rounded(s["loss"]),
                "val_pearson": pearson_cell(s),
                "val_rmse": plots.rounded(s.get("val_rmse")),
            }
        )
    return pd.DataFrame(rows, columns=RUNS_COLUMNS)


def job_list(studio: Studio, selected: str | None = None) -> Any:
    """The job dropdown's choices, keeping the selection (or the newest job when none)."""
    choices = job_choices(studio)
    return gr.Dropdown(choices=choices, value=selected or (choices[0][1] if choices else None))


def build(studio: Studio, saved_form: gr.BrowserState | None = None) -> dict[str, Any]:
    """The tab; `saved_form` (finetune_form.browser_state) is made by the caller outside the tabs."""
    defaults = TrainConfig()
    with gr.Tab("Fine-tune", id="finetune"):
        if studio.settings.public:
            gr.Markdown(studio.settings.training_note, elem_id="ft-access")
        with gr.Row():
            with gr.Column():
                dataset = gr.Dropdown(
                    [],
                    value=None,
                    label="Dataset",
                    info="filled from the server: your datasets, newest first",
                    allow_custom_value=True,
                    elem_id="ft-dataset",
                )
                about = gr.Markdown(dataset_summary(studio, None), elem_id="ft-about")
                steps_note = gr.Markdown("", elem_id="ft-steps")
                run_name = gr.Textbox(studio.fresh_run_name(), label="Run name (a new folder)", elem_id="ft-run-name")
                base_model = gr.Textbox(
                    "", label="Base model (empty: default model)", interactive=studio.settings.allow_any_model
                )
                with gr.Row():
                    loss = gr.Radio(list(LOSSES), value="raft", label="Loss", info=INFO["loss"])
                    lam = gr.Number(1.0, label="lambda (cot_raft)", info=INFO["lam"])
                with gr.Row():
                    lora = gr.Checkbox(True, label="LoRA", info=INFO["lora"])
                    lora_r = gr.Number(defaults.lora_r, label="LoRA rank", precision=0, info=INFO["lora_r"])
                    gradient_checkpointing = gr.Checkbox(
                        False, label="Gradient checkpointing", info=INFO["gradient_checkpointing"]
                    )
                with gr.Row():
                    learning_rate = gr.Number(defaults.learning_rate, label="Learning rate")
                    max_steps = gr.Number(100, label="Max steps (-1: by epochs)", precision=0, info=INFO["max_steps"])
                    epochs = gr.Number(defaults.epochs, label="Epochs")
                with gr.Row():
                    batch_size = gr.Number(defaults.batch_size, label="Batch size", precision=0)
                    grad_accum = gr.Number(
                        defaults.grad_accum, label="Gradient accumulation", precision=0, info=INFO["grad_accum"]
                    )
                    max_length = gr.Number(
                        defaults.max_length, label="Max length", precision=0, info=INFO["max_length"]
                    )
                    eval_steps = gr.Number(25, label="Evaluate every", precision=0, info=INFO["eval_steps"])
            with gr.Column():
                config_yaml = gr.Code(
                    label="Config (YAML, editable: this is what Start runs)", language="yaml", elem_id="ft-yaml"
                )
                command = gr.Textbox(label="Equivalent command", interactive=False)
                with gr.Row():
                    start_btn = gr.Button(
                        "Start", variant="primary", elem_id="ft-start", interactive=studio.settings.allow_training
                    )
                    stop_btn = gr.Button("Stop", elem_id="ft-stop", interactive=studio.settings.allow_training)
                    resume_btn = gr.Button("Resume", elem_id="ft-resume", interactive=studio.settings.allow_training)
        with gr.Row():
            job = gr.Dropdown(job_choices(studio), label="Job", elem_id="ft-job", allow_custom_value=True)
            log_scale = gr.Checkbox(False, label="Log-scale loss")
        status = gr.Markdown(elem_id="ft-status")
        with gr.Row():
            loss_plot = gr.Plot(label="Training loss")
            eval_plot = gr.Plot(label="Validation")
        log = gr.Textbox(label="Log (tail)", lines=10, interactive=False, autoscroll=True)
        runs = gr.Dataframe(headers=RUNS_COLUMNS, label="Runs", interactive=False)
        timer = gr.Timer(2.0)
        shown_jobs = gr.State(None)
        steps_own = gr.State(False)  # Max steps typed by the visitor (or a job's): no proposal replaces it
        proposed = gr.Number(None, visible=False)  # the dataset's proposal on its way to Max steps
        proposal_saw = gr.Number(None, visible=False)  # Max steps when the proposal was asked for
        if saved_form is None:
            saved_form = finetune_form.browser_state(studio)

    form = finetune_form.in_order(
        dataset=dataset,
        run_name=run_name,
        base_model=base_model,
        loss=loss,
        lam=lam,
        lora=lora,
        lora_r=lora_r,
        learning_rate=learning_rate,
        max_steps=max_steps,
        epochs=epochs,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_length=max_length,
        eval_steps=eval_steps,
        gradient_checkpointing=gradient_checkpointing,
    )
    views = bind(update_views, studio)
    gr.on(
        [f.change for f in form], views, form, [config_yaml, command], api_name="train_config", show_progress="hidden"
    )
    watched = [status, loss_plot, eval_plot, log]
    polled = {"show_progress": "hidden"}  # reads of state on disk: no "processing" overlay, ever
    listing = bind(job_list, studio)
    note = bind(memory_note, studio)
    dataset.change(bind(dataset_summary, studio), dataset, about, api_name="train_dataset_summary").then(
        note, form, about, api_name="train_memory_note_for_dataset", show_progress="hidden"
    )
    others = [f.change for f in form if f is not dataset]
    gr.on(others, note, form, about, api_name="train_memory_note", show_progress="hidden")
    kept = [*form, steps_own]
    keep = {"api_name": "train_form_save", "show_progress": "hidden"}
    dataset.change(  # any dataset chosen (picked, written, from Align, restored): a few epochs over its rows
        bind(finetune_form.propose_pending, studio),
        [dataset, batch_size, grad_accum, steps_own, steps_note, max_steps],
        [proposed, proposal_saw, steps_note],
        api_name="train_propose_steps",
        show_progress="hidden",
    ).then(  # applied in the browser as it lands: steps typed meanwhile are kept
        None, [proposed, proposal_saw, max_steps], max_steps, js=finetune_form.APPLY_JS, show_progress="hidden"
    ).then(finetune_form.save, kept, saved_form, **keep)
    max_steps.input(finetune_form.own_steps, None, steps_own, api_name="train_own_steps").then(
        finetune_form.save, kept, saved_form, **keep
    )
    gr.on(  # what the visitor types or picks is kept in the browser; a reload restores it
        [f.input for f in form if f is not max_steps],
        finetune_form.save,
        kept,
        saved_form,
        **keep,
    )
    started = start_btn.click(bind(start, studio), config_yaml, job, api_name="train_start")
    started.then(listing, job, job, api_name="train_jobs", **polled)
    started.success(studio.fresh_run_name, None, run_name, api_name="train_fresh_name")
    stop_btn.click(bind(stop, studio), job, job, api_name="train_stop").then(
        listing, job, job, api_name="train_jobs_after_stop", **polled
    )
    resume_btn.click(bind(resume, studio), job, job, api_name="train_resume").then(
        listing, job, job, api_name="train_jobs_after_resume", **polled
    )
    job.change(bind(watch, studio), [job, log_scale], watched, api_name="train_watch", **polled)
    job.select(bind(job_form_owned, studio), job, kept, api_name="train_job_form").then(  # the form follows the job
        finetune_form.save, kept, saved_form, **keep
    )
    log_scale.change(bind(watch, studio), [job, log_scale], watched, api_name="train_log_scale", **polled)
    timer.tick(bind(watch, studio), [job, log_scale], watched, api_name="train_tick", **polled)
    timer.tick(bind(runs_table, studio), None, runs, api_name="train_runs", **polled)
    timer.tick(bind(refresh_jobs, studio), [job, shown_jobs], [job, shown_jobs], api_name="train_job_list", **polled)
    return {
        "dataset": dataset,
        "job": job,
        "form": form,
        "views": views,
        "yaml": config_yaml,
        "command": command,
        "runs": runs,
        "run_name": run_name,
        "max_steps": max_steps,
        "steps_note": steps_note,
        "saved_form": saved_form,
        "steps_own": steps_own,
        "restore": bind(finetune_form.restore, studio),
    }
