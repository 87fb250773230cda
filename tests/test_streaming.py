import threading
import time

import pytest

from raft.streaming import Cancelled, follow


def test_updates_then_the_result():
    def work(emit, cancelled):
        for k in range(3):
            emit(k)
            time.sleep(0.05)
        return "result"

    seen = [step for step in follow(work) if step[0] != "idle"]
    assert seen[-1] == ("done", "result")
    assert [v for kind, v in seen[:-1]] == [0, 1, 2]


def test_an_error_in_the_call_reaches_the_follower():
    def work(emit, cancelled):
        raise ValueError("bad item")

    with pytest.raises(ValueError, match="bad item"):
        list(follow(work))


def test_closing_the_follower_cancels_the_call_at_its_next_check():
    ended = threading.Event()

    def work(emit, cancelled):
        try:
            for k in range(10_000):
                if cancelled.is_set():
                    raise Cancelled
                emit(k)
                time.sleep(0.01)
            return "finished"
        finally:
            ended.set()

    steps = follow(work)
    assert next(steps)[0] in ("update", "idle")
    steps.close()
    assert ended.wait(5)


def test_a_quiet_call_still_lets_the_follower_be_closed():
    def work(emit, cancelled):
        cancelled.wait(30)
        raise Cancelled

    steps = follow(work, idle_s=0.05)
    assert next(steps) == ("idle", None)
    steps.close()
