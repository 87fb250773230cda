"""The launched studio driven through its API with gradio_client, as a script would."""

import time

from gradio_client import Client, handle_file

from raft.files import write_rows
from raft.synthetic import generate_rows

DEFAULT = "default model"


def test_build_dataset_train_stop_score_and_batch(launched, tmp_path):
    url, studio = launched
    client = Client(url, verbose=False)

    out = client.predict(
        "synthetic sample", None, "", 40, "", "score_only", "", DEFAULT, 0, 0.2, 0, api_name="/dataset_preview"
    )
    assert out[0]["train"] == 32 and out[0]["validation"] == 8
    stats, files = client.predict("client-ds", DEFAULT, api_name="/dataset_write")
    assert stats["name"] == "client-ds" and studio.datasets() == ["client-ds"]

    text, command = client.predict(
        "client-ds",
        "client-run",
        "",
        "raft",
        1.0,
        False,
        8,
        1e-3,
        500,
        1.0,
        2,
        1,
        2048,
        1000,
        False,
        api_name="/train_config",
    )
    assert "--max_steps 500" in command
    job = client.predict(text, api_name="/train_start")
    deadline = time.time() + 120
    while time.time() < deadline:
        status = client.predict(job, False, api_name="/train_watch")[0]
        if "loss" in status:
            break
        time.sleep(1)
    assert status.startswith("**running** · training: ")
    started = time.time()
    assert client.predict(job, api_name="/train_stop") == job
    assert time.time() - started < 10, "Stop holds a worker until the job has stopped"
    deadline = time.time() + 120
    while not (status := client.predict(job, False, api_name="/train_watch")[0]).startswith("**stopped**"):
        assert time.time() < deadline and status.startswith("**stopping**"), status
        time.sleep(0.5)

    example = client.predict(api_name="/random_example")
    markdown, plot, details = client.predict(DEFAULT, "score_only", *example, False, DEFAULT, api_name="/score")
    assert "expected score" in markdown and plot["type"] == "plotly"
    assert abs(sum(details[DEFAULT]["probs"]) - 1) < 1e-6

    rows = generate_rows(8, seed=9)
    rows[5]["orig_score"] = "7"
    path = write_rows(tmp_path / "batch.jsonl", rows)
    table, summary, scatter, matrix, downloads = client.predict(
        handle_file(str(path)), "", DEFAULT, "score_only", 4, "orig_score", api_name="/score_batch"
    )
    assert len(table["data"]) == 8 and "Scored 8 rows" in summary
    assert len(downloads) == 2
