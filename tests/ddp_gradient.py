"""Gradient of the TRACT loss on one global batch of 8, alone or split over torchrun processes.

Run plainly: one process, whole batch. Under torchrun (gloo): each rank takes its share, the
item counts are summed over ranks, the loss is scaled by the world size as transformers' Trainer
does, and DDP averages the gradients. Rank 0 saves the gradients to the path given."""

import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from raft.loss import make_loss  # noqa: E402
from tests.test_loss import SIDS, SVALS, _counts, _model_and_batch, _pad  # noqa: E402


def main(out):
    model, seqs, labels = _model_and_batch()
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    loss = make_loss("cot_raft", SIDS, SVALS, lam=0.5)
    if world > 1:
        dist.init_process_group("gloo")
        model = torch.nn.parallel.DistributedDataParallel(model)
    share = slice(rank * 8 // world, (rank + 1) * 8 // world)
    counts = _counts([labels[share]]).float()
    if world > 1:
        dist.all_reduce(counts)
    ids, lab = _pad(seqs[share], labels[share], "right")
    (loss({"logits": model(ids)}, lab, counts) * world).backward()
    if rank == 0:
        inner = model.module if world > 1 else model
        torch.save({n: p.grad for n, p in inner.named_parameters()}, out)
    if world > 1:
        dist.barrier()  # let both ranks finish before the process group is torn down
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
