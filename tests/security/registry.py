"""The registry of attacks replayed against the launched studios (conftest), and the checks each
shares: a refusal that says why, nothing written outside the data root."""

import hashlib
import json
from pathlib import Path

BOTH = ("space", "local")
PUBLIC = ("space", "public", "bucket")
"""The three public studios without training: a Space, RAFT_PUBLIC=1 alone, a Space on a bucket."""
EVERY = ("space", "public", "bucket", "owner", "local")
TRAP = Path("/tmp/raft-attack-trap")


def text_of(payload) -> str:
    return json.dumps(payload)[:2000] if not isinstance(payload, str) else payload[:2000]


def refused(kind: str, payload, *needles: str) -> str:
    """The call was answered with a refusal that says one of the needles."""
    text = text_of(payload)
    assert kind in ("error", "complete", "refused"), kind
    assert any(n.lower() in text.lower() for n in needles), text[:400]
    assert "root:x:0:0" not in text, "a server file leaked into the answer"
    return "refused: " + next(n for n in needles if n.lower() in text.lower())


def nothing_escaped(studio) -> None:
    assert not TRAP.exists(), f"{TRAP} was created"
    assert not list(Path("/tmp").glob("evil*")), "a file was written outside the data root"


def config_yaml(studio, **changes) -> str:
    """A valid config YAML for the studio, with some keys changed to hostile values."""
    from raft.train import TrainConfig

    config = TrainConfig(data="ds", output_dir="r")
    text = config.to_yaml()
    for key, value in changes.items():
        lines = [line for line in text.splitlines() if not line.startswith(f"{key}:")]
        text = "\n".join([*lines, f"{key}: {value}"]) + "\n"
    return text


ATTACKS = {}


def visitor_root(studio, client, mode) -> Path:
    """Where the server keeps this client's files: its private workspace, or the root locally."""
    if mode == "local":
        return studio.root
    return workspace_of(studio, f"session:{client.session_hash}")


def workspace_of(studio, key: str) -> Path:
    """The workspace folder of a visitor key ('session:HASH' or 'user:NAME') on a public studio."""
    return studio.root / "workspaces" / hashlib.sha256(key.encode()).hexdigest()[:32]


def attack(name: str, modes: tuple[str, ...] = BOTH):
    def register(fn):
        for mode in modes:
            ATTACKS[f"{name} [{mode}]"] = (name, mode, fn)
        return fn

    return register
