"""The Fine-tune form follows the job chosen: its dataset, base model and settings fill the form
(with a fresh run name, so Start makes a new run), looked up by the job's id."""

import gradio as gr

from app import dataset_tab, finetune_tab
from raft.train.config import TrainConfig


def test_choosing_a_job_fills_the_form_from_its_config(studio):
    out = dataset_tab.preview(studio, "synthetic sample", None, "", 20, "", "score_only", "", "none", 0, 0.25, 0)
    dataset_tab.write(studio, out[0], "ds-a", "none")
    config = TrainConfig(
        data=str(studio.workspace().datasets / "ds-a"), output_dir=str(studio.runs_dir / "run-7"),
        base_model=studio.settings.default_model, loss="ce", lora_r=4, learning_rate=3e-4, max_steps=9,
        batch_size=2, eval_steps=3,
    )  # fmt: skip
    job_id = "20260101-000000-abcdef"
    folder = studio.jobs.registry.folder(job_id)
    folder.mkdir(parents=True)
    config.to_yaml(folder / "config.yaml")
    values = dict(zip(finetune_tab.FORM, finetune_tab.job_form(studio, job_id)))
    assert values["dataset"] == "ds-a" and values["base_model"] == "" and values["loss"] == "ce"
    assert values["lora_r"] == 4 and values["learning_rate"] == 3e-4 and values["max_steps"] == 9
    assert values["batch_size"] == 2 and values["eval_steps"] == 3
    assert values["run_name"] == studio.fresh_run_name() and values["run_name"] != "run-7"
    for bad in ("../../etc", "", None):
        assert finetune_tab.job_form(studio, bad) == (gr.skip(),) * len(finetune_tab.FORM)
