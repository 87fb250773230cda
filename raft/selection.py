"""Which rows to label next: `random`, `uncertain` (entropy of the judge's score distribution),
`stratified` (spread over the judge's rounded expected scores so every level is seen) and
`disagree` (rows where the grader is most likely to differ from the judge, once labels exist).

The strategy orders the training rows only. Held-out rows are always drawn at random, and
interleaved so that the labelled held-out share follows the project's, keeping the measurement
unbiased. Every order is a function of the seed and the labels so far: deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: `label --help` lists the strategies without loading the data stack
    from raft.labels import LabelProject

STRATEGIES = ("random", "uncertain", "stratified", "disagree")


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of a (n, K) probability array."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def _tiebreak(keys: list[int], seed: int) -> dict[int, int]:
    """A seeded random rank of each key, fixed for the project's keys whatever is labelled."""
    order = np.random.default_rng(seed).permutation(len(keys))
    return {keys[i]: rank for rank, i in enumerate(order)}


def order_rows(
    keys: list[int],
    probs: np.ndarray,
    expected: np.ndarray,
    strategy: str,
    seed: int,
    scale: tuple[int, int],
    labelled: dict[int, tuple[int, float]] | None = None,
    rank: dict[int, int] | None = None,
) -> list[int]:
    """`keys` (unlabelled candidates, with their probs and expected scores) in the order to label.

    `labelled` maps already-labelled training keys to (label, judge's expected score); `rank` is
    the seeded tie-break of every key (default: of these keys)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{strategy}'; choose one of {', '.join(STRATEGIES)}")
    rank = rank or _tiebreak(sorted(keys), seed)
    tie = np.asarray([rank[k] for k in keys], dtype=np.float64)
    labelled = labelled or {}
    if strategy == "random" or not keys:
        return sorted(keys, key=rank.__getitem__)
    if strategy == "disagree" and len(labelled) >= 2:
        return [keys[i] for i in np.lexsort((tie, -_expected_disagreement(probs, expected, labelled, scale)))]
    if strategy in ("uncertain", "disagree"):  # disagree without labels: the judge's own doubt
        return [keys[i] for i in np.lexsort((tie, -entropy(probs)))]
    return _stratified(keys, expected, tie, scale, labelled)


def _expected_disagreement(
    probs: np.ndarray, expected: np.ndarray, labelled: dict[int, tuple[int, float]], scale: tuple[int, int]
) -> np.ndarray:
    """|label - judge| expected per row: the gap of a straight line fitted from the judge's expected
    score to the labels so far (its systematic error), plus the spread of the row's distribution."""
    y, x = (np.asarray(col, dtype=np.float64) for col in zip(*labelled.values()))
    if np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
    else:
        slope, intercept = 0.0, float(y.mean())
    values = np.arange(scale[0], scale[1] + 1, dtype=np.float64)
    spread = np.sqrt((probs * (values[None, :] - expected[:, None]) ** 2).sum(axis=1))
    return np.abs(intercept + slope * expected - expected) + spread


def _stratified(
    keys: list[int],
    expected: np.ndarray,
    tie: np.ndarray,
    scale: tuple[int, int],
    labelled: dict[int, tuple[int, float]],
) -> list[int]:
    """Round-robin over the judge's rounded levels, the least-labelled level first."""
    levels = np.clip(np.floor(expected + 0.5), scale[0], scale[1]).astype(int)
    queues = {
        int(level): [keys[i] for i in sorted(np.flatnonzero(levels == level), key=lambda i: tie[i])]
        for level in np.unique(levels)
    }
    seen = {level: 0 for level in queues}
    for _, judged in labelled.values():
        level = int(np.clip(np.floor(judged + 0.5), scale[0], scale[1]))
        if level in seen:
            seen[level] += 1
    out = []
    while any(queues.values()):
        level = min((lv for lv in queues if queues[lv]), key=lambda lv: (seen[lv], lv))
        out.append(queues[level].pop(0))
        seen[level] += 1
    return out


def next_rows(
    project: LabelProject,
    strategy: str = "uncertain",
    k: int = 1,
    seed: int | None = None,
    exclude: set[int] | frozenset[int] = frozenset(),
) -> list[int]:
    """The next k rows to label: training rows by `strategy`, held-out rows at random, interleaved
    so that the held-out share of the labels stays at the project's share. Labelled and skipped
    rows are never offered, nor the rows in `exclude` (on another grader's card just now)."""
    seed = project.meta["seed"] if seed is None else seed
    labels, skipped = project.state()
    done = set(labels) | skipped | set(exclude)
    held = project.heldout
    all_keys = project.keys
    rank = _tiebreak(all_keys, seed)
    held_pool = sorted((key for key in held if key not in done), key=rank.__getitem__)
    train_pool = [key for key in all_keys if key not in held and key not in done]
    rows = project.rows
    levels = project.scale[1] - project.scale[0] + 1  # (an empty pool has no row to tell the width from)
    probs = np.asarray([rows[key]["probs"] for key in train_pool], dtype=np.float64).reshape(len(train_pool), levels)
    expected = np.asarray([float(rows[key]["expected_score"]) for key in train_pool], dtype=np.float64)
    known = {key: (e["score"], float(rows[key]["expected_score"])) for key, e in labels.items() if key not in held}
    train_order = order_rows(train_pool, probs, expected, strategy, seed, project.scale, known, rank)
    n_held = sum(1 for key in labels if key in held)
    n_train = len(labels) - n_held
    share = float(project.meta["heldout_share"])
    out: list[int] = []
    while len(out) < k and (held_pool or train_order):
        want_held = n_held < share * (n_held + n_train + 1)
        if held_pool and (want_held or not train_order):
            out.append(held_pool.pop(0))
            n_held += 1
        else:
            out.append(train_order.pop(0))
            n_train += 1
    return out


def describe(strategy: str) -> str:
    """One line saying what a strategy picks (for the CLI's help and the studio)."""
    return {
        "random": "training rows in a seeded random order",
        "uncertain": "training rows whose score distribution has the highest entropy first",
        "stratified": "training rows spread over the judge's score levels, the least-seen level first",
        "disagree": "training rows where your labels so far say the judge is most likely off (entropy until 2 labels)",
    }[strategy]
