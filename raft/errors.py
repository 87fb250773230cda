"""The library's one error contract: a `RaftError` is written for people (the reason, then the fix,
naming the file, row and field where there is one), so the CLI prints it as one line and the studio
shows it as it is; any other exception is a bug, reported by its kind only."""

from __future__ import annotations


class RaftError(Exception):
    """An error whose message is meant for the person who ran the command or clicked the button."""
