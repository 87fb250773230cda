"""Helpers for tests that start processes: the repository on PYTHONPATH, torchrun on a free port."""

import os
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def repo_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def torchrun(*args: object, nproc: int = 2) -> list[str]:
    """`python -m torch.distributed.run` with nproc processes on a free rendezvous port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_port",
        str(port),
        *map(str, args),
    ]


def parquet_bomb(path, rows=1024, size=1 << 20):
    """About a kilobyte on disk: `rows` references to one `size`-byte string (dictionary-encoded, zstd)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    big = pa.array(["x" * size]).dictionary_encode()
    column = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), big.dictionary)
    pq.write_table(pa.table({"orig_response": column, "n": list(range(rows))}), path, compression="zstd")
    return path
