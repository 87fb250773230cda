"""The training queue advances on the server: a second Start waits its turn, and starts when the
first job ends with no page open to poll for it."""

import dataclasses
import time

from app.studio import Settings, Studio
from raft.data import prepare_dataset
from raft.files import write_rows
from raft.synthetic import generate_rows
from raft.train import TrainConfig


def test_a_queued_job_starts_on_the_server_with_no_page_open(tmp_path, tiny_model):
    rows = write_rows(tmp_path / "rows.jsonl", generate_rows(40, seed=2))
    prepare_dataset(rows, tmp_path / "ds", validation_ratio=0.1)
    config = TrainConfig(
        data=str(tmp_path / "ds"), output_dir=str(tmp_path / "runs" / "r1"), base_model=str(tiny_model),
        max_steps=2, batch_size=2, eval_steps=1000, eval_rows=2, save_steps=1000, lora=False, device="cpu",
    )  # fmt: skip
    studio = Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model)))
    first = studio.jobs.start(config, queue=True)
    second = studio.jobs.start(dataclasses.replace(config, output_dir=str(tmp_path / "runs" / "r2")), queue=True)
    assert first.status == "running" and second.status == "queued"
    # nothing here calls promote (no page polls the job list): the studio's own queue thread starts it
    deadline = time.time() + 180
    while studio.jobs.get(second.id).status == "queued" and time.time() < deadline:
        time.sleep(0.5)
    assert studio.jobs.get(first.id).status == "completed"
    assert studio.jobs.get(second.id).status in ("running", "completed")
    studio.jobs.stop(second.id, timeout=60)
    studio.jobs.stop_queue()
