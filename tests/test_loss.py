"""The RAFT losses against hand-computed values, finite differences, padding, row order,
gradient accumulation and two processes (torchrun, gloo)."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from raft.loss import (
    IGNORE,
    ce_loss,
    cot_raft_loss,
    emd_loss,
    expected_score,
    make_loss,
    raft_loss,
    score_positions,
    target_distribution,
)
from tests.helpers import torchrun

IDS = [3, 4, 5]  # score tokens for scores 1, 2, 3 in a vocabulary of 6
VALUES = [1, 2, 3]


def test_hand_computed_raft_loss():
    logits = torch.zeros(1, 3, 6)
    logits[0, 1, 3:6] = torch.log(torch.tensor([1.0, 2.0, 1.0]))  # predicts position 2
    labels = torch.tensor([[IGNORE, IGNORE, 5]])  # gold score 3 at position 2
    # softmax over 6 tokens: exp(0)=1 for ids 0..2 and [1, 2, 1] for ids 3..5: Z = 7
    expected = (1 * 1 + 2 * 2 + 3 * 1) / 7
    assert raft_loss(logits, labels, IDS, VALUES).item() == pytest.approx((3 - expected) ** 2, rel=1e-6)


def test_logits_are_read_one_position_before_the_label():
    logits = torch.full((1, 4, 6), -20.0)
    logits[0, 2, 4] = 20.0  # position 2 predicts label 3: score 2
    logits[0, 3, 5] = 20.0  # position 3 (the label's own position) says score 3: must be ignored
    labels = torch.tensor([[IGNORE, IGNORE, IGNORE, 4]])
    assert raft_loss(logits, labels, IDS, VALUES).item() == pytest.approx(0.0, abs=1e-6)


def test_the_last_score_label_of_the_row_is_the_score():
    labels = torch.tensor([[IGNORE, 3, 0, 5, 1, IGNORE], [IGNORE, IGNORE, 4, IGNORE, IGNORE, IGNORE]])
    rows, pos = score_positions(labels, IDS)
    assert rows.tolist() == [0, 1] and pos.tolist() == [3, 2]


def test_rows_without_a_score_label_are_skipped_and_no_broadcast():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 6)
    labels = torch.full((3, 5), IGNORE)
    labels[0, 4], labels[2, 2] = 3, 5
    loss = raft_loss(logits, labels, IDS, VALUES)
    e0 = expected_score(logits[0, 3:4], IDS, VALUES)
    e2 = expected_score(logits[2, 1:2], IDS, VALUES)
    assert loss.shape == ()
    assert loss.item() == pytest.approx((((1 - e0) ** 2 + (3 - e2) ** 2) / 2).item(), rel=1e-6)


def test_finite_difference_gradient():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[IGNORE, IGNORE, 0, 4], [IGNORE, 1, 5, IGNORE]])

    def f(x):
        return cot_raft_loss(x, labels, IDS, VALUES, lam=0.7)

    f(logits).backward()
    eps = 1e-6
    for idx in [(0, 2, 4), (0, 2, 0), (1, 1, 5), (1, 0, 1), (0, 1, 0)]:
        plus, minus = logits.detach().clone(), logits.detach().clone()
        plus[idx] += eps
        minus[idx] -= eps
        numeric = (f(plus) - f(minus)).item() / (2 * eps)
        assert logits.grad[idx].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def _model_and_batch(seed=0):
    torch.manual_seed(seed)
    emb = torch.nn.Sequential(torch.nn.Embedding(12, 8), torch.nn.Linear(8, 12))
    lengths = [6, 7, 6, 9, 6, 8, 7, 7]
    seqs, labels = [], []
    for i, n in enumerate(lengths):
        ids = torch.randint(0, 12, (n,))
        lab = torch.full((n,), IGNORE)
        lab[n - 3] = 6 + (i % 3)  # feedback-ish tokens then the score, then one more token
        lab[n - 5 : n - 3] = torch.randint(0, 6, (2,))
        lab[n - 1] = 1
        seqs.append(ids)
        labels.append(lab)
    return emb, seqs, labels


def _pad(seqs, labels, side):
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    lab = torch.full((len(seqs), width), IGNORE)
    for i, (s, a) in enumerate(zip(seqs, labels)):
        if side == "right":
            ids[i, : len(s)], lab[i, : len(a)] = s, a
        else:
            ids[i, width - len(s) :], lab[i, width - len(a) :] = s, a
    return ids, lab


SIDS, SVALS = [6, 7, 8], [1, 2, 3]


@pytest.mark.parametrize("kind", ["raft", "cot_raft", "ce"])
def test_padding_side_and_row_order_do_not_change_the_loss(kind):
    model, seqs, labels = _model_and_batch()
    loss = make_loss(kind, SIDS, SVALS)
    values = []
    for side in ("right", "left"):
        for order in (range(8), reversed(range(8))):
            order = list(order)
            ids, lab = _pad([seqs[i] for i in order], [labels[i] for i in order], side)
            values.append(loss({"logits": model(ids)}, lab, None).item())
    assert values == pytest.approx([values[0]] * 4, rel=1e-6)


def _counts(labels_list):
    """(CE tokens, score items) over a list of label tensors, as raft.train counts them."""
    from raft.train.trainer import count_items

    return count_items(
        [
            {"labels": _pad([torch.zeros(len(a), dtype=torch.long) for a in lab], lab, "right")[1]}
            for lab in labels_list
        ],
        SIDS,
    )


@pytest.mark.parametrize("kind", ["raft", "cot_raft", "ce"])
def test_one_batch_of_8_equals_two_accumulated_batches_of_4(kind):
    model, seqs, labels = _model_and_batch()
    loss = make_loss(kind, SIDS, SVALS)
    n_all = _counts([labels])
    ids, lab = _pad(seqs, labels, "right")
    full = loss({"logits": model(ids)}, lab, n_all)
    full.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    total = 0.0
    for half in (slice(0, 4), slice(4, 8)):
        ids, lab = _pad(seqs[half], labels[half], "right")
        part = loss({"logits": model(ids)}, lab, n_all)
        part.backward()
        total += part.item()
    assert total == pytest.approx(full.item(), rel=1e-6)
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)


def test_without_num_items_the_raft_term_is_the_mean_over_rows():
    model, seqs, labels = _model_and_batch()
    ids, lab = _pad(seqs, labels, "right")
    logits = model(ids)
    mean = raft_loss(logits, lab, SIDS, SVALS)
    assert mean.item() == pytest.approx(raft_loss(logits, lab, SIDS, SVALS, num_items_in_batch=8).item())
    assert ce_loss(logits, lab).item() == pytest.approx(
        ce_loss(logits, lab, num_items_in_batch=int((lab[:, 1:] != IGNORE).sum())).item()
    )


def test_cot_is_ce_without_the_score_token_plus_lambda_raft():
    model, seqs, labels = _model_and_batch()
    ids, lab = _pad(seqs, labels, "right")
    logits = model(ids)
    parts = {}
    total = cot_raft_loss(logits, lab, SIDS, SVALS, lam=2.0, parts=parts)
    no_score = lab.clone()
    no_score[torch.isin(no_score, torch.tensor(SIDS))] = IGNORE
    assert parts["ce_loss"] == pytest.approx(ce_loss(logits, no_score).item(), rel=1e-6)
    assert parts["score_loss"] == pytest.approx(raft_loss(logits, lab, SIDS, SVALS).item(), rel=1e-6)
    assert total.item() == pytest.approx(parts["ce_loss"] + 2.0 * parts["score_loss"], rel=1e-6)
    assert not math.isnan(total.item())


def test_two_processes_give_the_gradient_of_one(tmp_path):
    script = Path(__file__).with_name("ddp_gradient.py")
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "single.pt")], capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        torchrun(script, tmp_path / "ddp.pt"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a, b = torch.load(tmp_path / "single.pt"), torch.load(tmp_path / "ddp.pt")
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-7)


def test_hand_computed_emd_loss():
    logits = torch.zeros(1, 3, 6)
    logits[0, 1, 3:6] = torch.log(torch.tensor([1.0, 2.0, 1.0]))  # Z = 3 + 4 = 7: P = [1, 2, 1] / 7
    labels = torch.tensor([[IGNORE, IGNORE, 4]])
    target = torch.tensor([[0.0, 0.5, 0.5]])  # two raters, a 2 and a 3
    # CDFs: P(<=k) = 1/7, 3/7, 4/7; Q(<=k) = 0, 0.5, 1
    hand = (1 / 7) ** 2 + (3 / 7 - 0.5) ** 2 + (4 / 7 - 1) ** 2
    assert emd_loss(logits, labels, IDS, VALUES, target).item() == pytest.approx(hand, rel=1e-6)


def test_emd_is_zero_only_where_the_judge_gives_the_raters_distribution():
    logits = torch.full((1, 3, 6), -30.0)
    logits[0, 1, 3:6] = torch.log(torch.tensor([0.25, 0.25, 0.5]))
    labels = torch.tensor([[IGNORE, IGNORE, 5]])
    assert emd_loss(logits, labels, IDS, VALUES, torch.tensor([[0.25, 0.25, 0.5]])).item() == pytest.approx(0, abs=1e-9)
    assert emd_loss(logits, labels, IDS, VALUES, torch.tensor([[0.0, 0.0, 1.0]])).item() > 0.1


def test_emd_finite_difference_gradient():
    torch.manual_seed(2)
    logits = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[IGNORE, IGNORE, 0, 4], [IGNORE, 1, 5, IGNORE]])
    target = torch.tensor([[0.2, 0.8, 0.0], [0.0, 1 / 3, 2 / 3]], dtype=torch.float64)

    def f(x):
        return emd_loss(x, labels, IDS, VALUES, target)

    f(logits).backward()
    eps = 1e-6
    for idx in [(0, 2, 4), (0, 2, 0), (1, 1, 5), (1, 1, 3), (1, 0, 1)]:
        plus, minus = logits.detach().clone(), logits.detach().clone()
        plus[idx] += eps
        minus[idx] -= eps
        numeric = (f(plus) - f(minus)).item() / (2 * eps)
        assert logits.grad[idx].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize(
    ("gold", "raters", "expected"),
    [
        (3, None, [0, 0, 1, 0, 0]),
        (4.333, [4, 4, 5], [0, 0, 0, 2 / 3, 1 / 3]),
        (2.25, None, [0, 0.75, 0.25, 0, 0]),
        (1, None, [1, 0, 0, 0, 0]),
        (5, None, [0, 0, 0, 0, 1]),
    ],
)
def test_target_distribution(gold, raters, expected):
    assert target_distribution(gold, [1, 2, 3, 4, 5], raters) == pytest.approx(expected)


def test_emd_padding_order_and_accumulation_do_not_change_it():
    model, seqs, labels = _model_and_batch()
    targets = torch.softmax(torch.randn(8, 3, generator=torch.Generator().manual_seed(4)), -1)
    loss = make_loss("emd", SIDS, SVALS)
    values = []
    for side in ("right", "left"):
        for order in (list(range(8)), list(reversed(range(8)))):
            ids, lab = _pad([seqs[i] for i in order], [labels[i] for i in order], side)
            values.append(loss({"logits": model(ids)}, lab, None, target=targets[order]).item())
    assert values == pytest.approx([values[0]] * 4, rel=1e-6)
    n_all = _counts([labels])
    ids, lab = _pad(seqs, labels, "right")
    full = loss({"logits": model(ids)}, lab, n_all, target=targets)
    full.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for half in (slice(0, 4), slice(4, 8)):
        ids, lab = _pad(seqs[half], labels[half], "right")
        loss({"logits": model(ids)}, lab, n_all, target=targets[half]).backward()
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
