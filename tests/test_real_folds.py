"""bench/real.py --folds K: every row is in exactly one test fold, and no question is on both sides."""

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("real", Path(__file__).resolve().parent.parent / "bench" / "real.py")
real = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(real)


@pytest.mark.parametrize("k", [2, 5])
def test_each_row_is_predicted_once_by_a_fold_that_never_saw_its_question(k):
    rows = [{"idx": q, "n": i} for i, q in enumerate(q for q in range(80) for _ in range(4))]
    pairs = real.folds(rows, k, seed=0)
    assert len(pairs) == k
    tested = sorted(r["n"] for _, test in pairs for r in test)
    assert tested == list(range(320))
    for train, test in pairs:
        assert not {r["idx"] for r in train} & {r["idx"] for r in test}
        assert len(train) + len(test) == 320 and abs(len(test) - 320 / k) <= 4
