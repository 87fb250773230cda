"""Load on loopback only, bounded in count and time: 20 concurrent visitors of a public studio for
60 s (every answer equal to the sequential one), and an overloaded studio that says it is busy."""

import statistics
import tempfile
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client

from tests.security.conftest import _launch

CLIENTS, SECONDS = 20, 60


def _score(client, example):
    result = client.predict("default model", "score_only", *example, False, "default model", None, api_name="/score")
    return round(result[2]["default model"]["expected_score"], 6)


@pytest.mark.slow
def test_twenty_visitors_for_a_minute_are_all_answered_consistently(studios):
    url, _ = studios["space"]
    examples = [Client(url, verbose=False).predict(api_name="/random_example") for _ in range(3)]
    reference = [_score(Client(url, verbose=False), ex) for ex in examples]
    latencies, wrong, busy, failed = [], [], 0, []
    lock = threading.Lock()
    stop_at = time.time() + SECONDS

    def visitor(i):
        nonlocal busy
        client = Client(url, verbose=False)
        n = 0
        while time.time() < stop_at and n < 500:
            k = (i + n) % len(examples)
            started = time.time()
            try:
                value = _score(client, examples[k])
            except Exception as exc:  # noqa: BLE001 - counted and reported below
                with lock:
                    if "Queue is full" in str(exc):
                        busy += 1
                    else:
                        failed.append(str(exc)[:200])
            else:
                with lock:
                    latencies.append(time.time() - started)
                    if value != reference[k]:
                        wrong.append((k, value, reference[k]))
            n += 1

    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(CLIENTS)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 120)
    took = time.time() - started
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else [float("nan")] * 19
    print(
        f"\nload: {CLIENTS} clients x {SECONDS} s on a public studio: {len(latencies)} answered, {busy} told busy, "
        f"{len(failed)} failed, {len(wrong)} inconsistent; {len(latencies) / took:.1f} answers/s; "
        f"latency p50 {q[9]:.2f} s, p95 {q[18]:.2f} s, max {max(latencies):.2f} s"
    )
    assert not failed and not wrong and latencies


def test_an_overloaded_studio_says_busy_instead_of_timing_out(tiny_model):
    demo, _, url = _launch(Path(tempfile.mkdtemp()), tiny_model, {"RAFT_QUEUE_SIZE": "1", "RAFT_CONCURRENCY": "1"})
    try:
        example = Client(url, verbose=False).predict(api_name="/random_example")
        outcomes = []

        def visitor():
            try:
                _score(Client(url, verbose=False), example)
                outcomes.append("answered")
            except Exception as exc:  # noqa: BLE001
                outcomes.append("busy" if "Queue is full" in str(exc) and "try again" in str(exc) else str(exc))

        threads = [threading.Thread(target=visitor) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        print(f"\noverload: 8 simultaneous requests on a queue of 1: {outcomes.count('answered')} answered, "
              f"{outcomes.count('busy')} told 'Queue is full! Please try again.'")  # fmt: skip
        assert set(outcomes) <= {"answered", "busy"} and "busy" in outcomes and "answered" in outcomes
    finally:
        demo.close()
