"""Process control for training jobs: launch `python -m raft train` in its own process group (no
shell, output to a log), tell whether a recorded pid is still that process, and kill its group."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def start_ticks(pid: int) -> int | None:
    """The process start time from /proc (guards against a reused pid); None when unavailable."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int, ticks: int | None) -> bool:
    """Whether pid runs and is the process started at `ticks` (a zombie counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{pid}/stat")
    if state.exists():
        fields = state.read_text().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return False
    return ticks is None or start_ticks(pid) == ticks


def is_trainer(pid: int) -> bool:
    """Whether pid runs `python -m raft train` or `score` (so that a stop never signals another program)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"raft" in argv and (b"train" in argv or b"score" in argv)


def launch(command: list[str], log: Path) -> subprocess.Popen:
    """Start `command` from the repository root in a new session, stdout and stderr appended to `log`."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            env=env,
            start_new_session=True,
        )


def kill_trainer(pid: int | None, ticks: int | None) -> None:
    """SIGKILL the process group of a trainer that is still the recorded process; anything else is left alone."""
    if pid and alive(pid, ticks) and is_trainer(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def why_ended(code: int | None, what: str = "training") -> str:
    """A sentence for a process that ended without a result (`what`: training or scoring)."""
    if code is None:
        return f"the {what} process ended without a result (killed, or the machine restarted)"
    if code < 0:
        return f"the {what} process was killed by signal {signal.Signals(-code).name}"
    return f"the {what} process exited with code {code}"
