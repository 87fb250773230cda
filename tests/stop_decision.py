"""Under torchrun (gloo): each rank has its own run folder and only rank 0's holds a STOP file.

The stop decision must be rank 0's, shared with every rank: each rank prints what it decided,
and exits 1 if it would not stop (a rank that keeps going waits for ever in a real run)."""

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from raft.runs import STOP_FILE  # noqa: E402
from raft.train.trainer import StopOnRequest  # noqa: E402


def main(root: str) -> int:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    folder = Path(root) / f"rank-{rank}"
    folder.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (folder / STOP_FILE).touch()
    callback = StopOnRequest(folder)
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    state = SimpleNamespace(is_world_process_zero=rank == 0, global_step=1, max_steps=10)
    args = SimpleNamespace(world_size=world, device="cpu")
    callback.on_step_end(args, state, control)
    print(f"rank {rank}: stop={control.should_training_stop} save={control.should_save}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return 0 if control.should_training_stop and control.should_save else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
