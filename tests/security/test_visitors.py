"""Two visitors of a public Space, and the races the studio must win: simultaneous Starts, two
identical batches at once, a cold model load beside a visitor scoring on a loaded judge."""

import hashlib
import threading
import time

import pytest
from gradio_client import Client, handle_file

from raft.data import prepare_dataset, read_jsonl
from raft.files import write_rows
from raft.synthetic import generate_rows
from tests.security.conftest import raw_call


def _workspace(studio, client):
    key = hashlib.sha256(f"session:{client.session_hash}".encode()).hexdigest()[:32]
    return studio.root / "workspaces" / key


def test_visitor_b_cannot_list_read_overwrite_or_stop_anything_of_a(studios, tmp_path):
    url, studio = studios["space"]
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    assert a.session_hash != b.session_hash

    a.predict("synthetic sample", None, "", 40, "", "score_only", "", "none", 0, 0.2, 0, api_name="/dataset_preview")
    a.predict("secret-data", "none", api_name="/dataset_write")
    rows = generate_rows(6, seed=1)
    a.predict(handle_file(str(write_rows(tmp_path / "a.jsonl", rows))), "", "default model", "score_only", 4,
              "orig_score", None, api_name="/score_batch")  # fmt: skip
    a_root = _workspace(studio, a)
    a_dataset = a_root / "datasets" / "secret-data" / "train.jsonl"
    [a_result] = [p.name for p in (a_root / "batch").glob("*.jsonl")]
    before = a_dataset.read_bytes()

    # B lists: nothing of A's
    b.predict("synthetic sample", None, "", 20, "", "score_only", "", "none", 0, 0.2, 1, api_name="/dataset_preview")
    summary = b.predict("secret-data", api_name="/train_dataset_summary")
    assert "no dataset.json" in summary or "not" in summary.lower()
    assert not (_workspace(studio, b) / "datasets" / "secret-data").exists()
    # B reads A's batch result by its name: refused
    kind, payload = raw_call(url, "evaluate", [a_result, None, "(none)", None, "", "expected_score", "", None])
    assert kind == "error" and ("not in the list of choices" in str(payload) or "not one of your" in str(payload))
    # B writes a dataset of the same name: its own; A's is untouched
    b.predict("secret-data", "none", api_name="/dataset_write")
    assert (_workspace(studio, b) / "datasets" / "secret-data" / "train.jsonl").is_file()
    assert a_dataset.read_bytes() == before
    # B stops a job: nobody may on a public Space
    kind, payload = raw_call(url, "train_stop", ["20990101-000000-abcdef"])
    assert kind == "error" and "Training is off" in str(payload)
    # and the server never named its own folders to either
    assert str(studio.root) not in str(b.predict("", api_name="/train_dataset_summary"))


def _yaml(studio, run):
    from raft.train import TrainConfig

    config = TrainConfig(
        data="race-ds",
        output_dir=run,
        max_steps=400,
        batch_size=2,
        eval_steps=10_000,
        eval_rows=2,
        save_steps=10_000,
        lora=False,
        device="cpu",
    )
    return config.to_yaml()


def test_four_simultaneous_starts_run_one_job_and_queue_the_rest(studios, tmp_path):
    url, studio = studios["local"]
    rows = write_rows(tmp_path / "rows.jsonl", generate_rows(40, seed=3))
    prepare_dataset(rows, studio.root / "datasets" / "race-ds")
    answers = [None] * 4
    barrier = threading.Barrier(4)

    def click(i):
        barrier.wait()
        answers[i] = raw_call(url, "train_start", [_yaml(studio, f"race-{i}")])

    threads = [threading.Thread(target=click, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    started = [p for kind, p in answers if kind == "complete"]
    try:
        assert len(started) == 4, answers  # one runs, the others wait their turn
        statuses = sorted(j.status for j in studio.jobs.list("train"))
        assert sum(1 for j in studio.jobs.list("train") if j.active) == 1 and statuses.count("queued") == 3, statuses
    finally:
        for job in studio.jobs.list("train"):
            if job.active or job.status == "queued":
                studio.jobs.stop(job.id, timeout=60)


def test_two_identical_batches_at_once_write_each_row_once(studios, tmp_path):
    url, studio = studios["local"]
    path = write_rows(tmp_path / "same.jsonl", generate_rows(24, seed=5))
    results = []

    def run():
        client = Client(url, verbose=False)
        args = [handle_file(str(path)), "", "default model", "score_only", 4, "orig_score", None]
        results.append(client.predict(*args, api_name="/score_batch"))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert len(results) == 2
    [out] = [p for p in (studio.root / "batch").glob("same-*.jsonl")]
    rows = [r["row"] for r in read_jsonl(out)]
    assert sorted(rows) == list(range(1, 25)), f"{len(rows)} lines for 24 rows"


def test_a_cold_load_does_not_delay_scoring_on_a_loaded_judge(studios, tmp_path, monkeypatch):
    from raft.judge import Judge
    from raft.models import build_tiny_model

    url, studio = studios["local"]
    slow_model = build_tiny_model(tmp_path / "slow", seed=4)
    original = Judge.load.__func__

    def slow_load(cls, model=None, *args, **kwargs):
        if str(model) == str(slow_model):
            time.sleep(6)  # a cold load of a large judge, holding whatever lock it takes
        return original(cls, model, *args, **kwargs)

    monkeypatch.setattr(Judge, "load", classmethod(slow_load))
    client = Client(url, verbose=False)
    example = client.predict(api_name="/random_example")

    def score(model):
        started = time.time()
        client_ = Client(url, verbose=False)
        client_.predict(model, "score_only", *example, False, "default model", None, api_name="/score")
        return time.time() - started

    score("default model")  # loaded
    baseline = sorted(score("default model") for _ in range(3))[1]
    cold = threading.Thread(target=score, args=(str(slow_model),))
    cold.start()
    time.sleep(1.0)  # the cold load is under way
    during = score("default model")
    cold.join(60)
    print(f"scoring on a loaded judge: {baseline:.2f} s alone, {during:.2f} s during a 6 s cold load")
    assert during - baseline < 1.0


@pytest.mark.parametrize("mode", ["space"])
def test_uploads_of_other_visitors_are_not_reachable_by_name(studios, mode, tmp_path):
    url, studio = studios[mode]
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    path = write_rows(tmp_path / "mine.jsonl", generate_rows(4, seed=9))
    a.predict(handle_file(str(path)), "", "default model", "score_only", 4, "orig_score", None, api_name="/score_batch")
    [name] = [p.name for p in (_workspace(studio, a) / "batch").glob("mine-*.jsonl")]
    with pytest.raises(Exception, match="not in the list of choices|not one of your"):
        b.predict(name, None, "(none)", None, "", "expected_score", "", None, api_name="/evaluate")
