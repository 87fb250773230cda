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


BOMB_FIELDS = (
    "orig_instruction",
    "orig_response",
    "orig_reference_answer",
    "orig_criteria",
    *(f"orig_score{k}_description" for k in range(1, 6)),
)


def under_cap_bomb(path, rows=1150, size=99_000):
    """A few kilobytes on disk that decode to about a gigabyte with every field and every row under
    its cap (raft.limits: 100,000 characters a field, 1 MiB a row): nine dictionary-encoded text
    fields of `size` characters, repeated on each of `rows` rows, with a gold score, and the
    columns a scored file has (expected_score, probs), so that every reader takes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {}
    for i, name in enumerate(BOMB_FIELDS):
        text = pa.array([chr(ord("a") + i) * size]).dictionary_encode()
        columns[name] = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), text.dictionary)
    columns["orig_score"] = [1 + i % 5 for i in range(rows)]
    columns["expected_score"] = [1.0 + (i % 5) for i in range(rows)]
    columns["probs"] = [[0.2] * 5 for _ in range(rows)]
    pq.write_table(pa.table(columns), path, compression="zstd")
    return path
