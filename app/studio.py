"""The studio's shared state: settings, the data root's folders, the job manager and loaded judges."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from raft.data import list_datasets
from raft.jobs import JobManager
from raft.judge import Judge
from raft.models import ModelError, read_manifest
from raft.paths import safe_child
from raft.scores import ScaleError

try:  # ZeroGPU Spaces: functions that need the GPU ask for it; elsewhere this is a no-op
    import spaces

    gpu = spaces.GPU
except ImportError:

    def gpu(fn):  # noqa: D103
        return fn


DEFAULT_CHOICE = "default model"
RUN_PREFIX = "run: "


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Settings:
    """What the studio may do and where it keeps its files."""

    data_root: Path
    default_model: str | None = None
    allow_training: bool = True
    allow_any_model: bool = True
    max_upload_mb: int = 50
    device: str | None = None

    @classmethod
    def from_env(cls, data_root: str | None = None, default_model: str | None = None) -> Settings:
        """On a public Space (SPACE_ID set) training and arbitrary models are off unless the owner
        sets RAFT_ALLOW_TRAINING=1 / RAFT_ALLOW_ANY_MODEL=1."""
        on_space = bool(os.environ.get("SPACE_ID"))
        root = data_root or os.environ.get("RAFT_DATA_ROOT") or "data"
        return cls(
            data_root=Path(root).resolve(),
            default_model=default_model or os.environ.get("RAFT_DEFAULT_MODEL") or None,
            allow_training=_flag("RAFT_ALLOW_TRAINING") or not on_space,
            allow_any_model=_flag("RAFT_ALLOW_ANY_MODEL") or not on_space,
            max_upload_mb=int(os.environ.get("RAFT_MAX_UPLOAD_MB", "50")),
            device=os.environ.get("RAFT_DEVICE") or None,
        )


class Studio:
    """Folders under the data root, the job manager, and a small cache of loaded judges."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = settings.data_root
        for sub in ("datasets", "runs", "batch", "uploads"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.jobs = JobManager(self.root)
        self._judges: dict[str, Judge] = {}
        self._lock = threading.Lock()

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def datasets(self) -> list[str]:
        return list_datasets(self.datasets_dir)

    def runs(self) -> list[str]:
        """Finished runs that hold a judge (newest first)."""
        found = [p for p in self.runs_dir.iterdir() if read_manifest(p)]
        return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]

    def model_choices(self) -> list[str]:
        return [DEFAULT_CHOICE, *(RUN_PREFIX + r for r in self.runs())]

    def resolve_model(self, choice: str | None) -> str | None:
        """A model choice (default, 'run: NAME', or a hub id / local path) -> what Judge.load takes."""
        choice = (choice or "").strip()
        if not choice or choice == DEFAULT_CHOICE:
            return self.settings.default_model
        if choice.startswith(RUN_PREFIX):
            run = safe_child(self.runs_dir, choice[len(RUN_PREFIX) :])
            if not read_manifest(run):
                raise ValueError(f"run '{run.name}' has no judge yet: it is still training, was stopped, or failed")
            return str(run)
        if not self.settings.allow_any_model:
            raise ValueError("this studio only serves its default model and its own runs (RAFT_ALLOW_ANY_MODEL is off)")
        return choice

    def judge(self, choice: str | None) -> Judge:
        """The judge for a model choice, loaded on first use and kept (two at most).

        A choice that cannot be served reaches the page as a readable error, not a stack trace."""
        try:
            model = self.resolve_model(choice)
            key = str(model)
            with self._lock:
                if key not in self._judges:
                    if len(self._judges) >= 2:
                        self._judges.pop(next(iter(self._judges)))
                    self._judges[key] = Judge.load(model, device=self.settings.device)
                return self._judges[key]
        except (ModelError, ScaleError, ValueError) as exc:
            raise gr.Error(str(exc)) from None


def model_dropdown(studio: Studio, label: str = "Judge model", **kwargs: object) -> gr.Dropdown:
    """A judge picker: the default model, the studio's runs, or (typed) a hub id or local path.

    Typed values are accepted here and checked by `Studio.resolve_model` when used."""
    return gr.Dropdown(studio.model_choices(), value=DEFAULT_CHOICE, label=label, allow_custom_value=True, **kwargs)
