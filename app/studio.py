"""The studio's shared state: settings, the data root's folders, the job manager and loaded judges."""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from app.judge_cache import DEFAULT_CHOICE, JudgeCache
from app.messages import guarded
from app.previews import PreviewStore
from app.uploads import UPLOAD_AGE_S, UploadBudget, gradio_cache
from app.workspace import (
    SWEEP_EVERY_S,
    Disk,
    Workspace,
    WorkspaceError,
    staging_root,
    sweep,
    visitor_key,
    workspace_for,
)
from raft.calibration import Calibration
from raft.data import list_datasets
from raft.engines import ENGINES, available_engines
from raft.jobs import QUEUED, JobManager
from raft.judge import Judge
from raft.limits import Budget, using, within
from raft.models import (
    read_manifest,
)
from raft.paths import safe_child
from raft.prompts import check_judge_mode
from raft.runs import run_weights
from raft.scores import check_scale

try:  # ZeroGPU Spaces: functions that need the GPU ask for it; elsewhere this is a no-op
    import spaces
except ImportError:
    spaces = None

GPU_MAX_S = 300
"""The longest single GPU lease asked for on ZeroGPU; longer batches resume on the next click."""


def gpu(duration: Callable[..., float] | float = 60) -> Callable[[Callable], Callable]:
    """`spaces.GPU(duration=...)` where the `spaces` package is present (ZeroGPU), else nothing.

    `duration` may be a function of the call's arguments, so a batch asks for time by its size."""

    def wrap(fn: Callable) -> Callable:
        return spaces.GPU(duration=duration)(fn) if spaces is not None else fn

    return wrap


ENGINE_CHOICES = [(ENGINES[name].label, name) for name in available_engines()]
"""The engines offered here (their package is installed): (label, name) pairs from raft.engines."""
SEVERAL_ENGINES = len(ENGINE_CHOICES) > 1
"""Whether there is an engine choice to show (vLLM installed beside transformers)."""

RUN_PREFIX = "run: "
MODE_CHOICES = [("score only (RAIL)", "score_only"), ("feedback, then score (CoT-RAIL)", "feedback")]
"""The judge modes as the Score and Batch tabs show them: (label, mode) pairs, values of JUDGE_MODES."""
MODE_INFO = (
    "RAIL: the expected score over the score tokens' probabilities, in one forward pass; CoT-RAIL: the judge "
    "writes feedback first (slower; needs a judge trained for feedback)"
)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def login_from(cli_auth: str | None) -> tuple[str, str] | None:
    """The one login in force: `--auth` when it was given on the command line (an empty `--auth ""`
    turns the login off), else `RAFT_AUTH`; None when neither gives one. Both must read USER:PASSWORD
    with a user and a password: anything else stops the studio at start, so that a typo never
    leaves a studio open while its owner believes it asks for a login."""
    text = cli_auth if cli_auth is not None else os.environ.get("RAFT_AUTH", "")
    if not text:
        return None
    user, colon, password = text.partition(":")
    if not colon or not user.strip() or not password:
        where = "--auth" if cli_auth is not None else "RAFT_AUTH"
        raise ValueError(f"{where} must read USER:PASSWORD (a user name, a colon, a password)")
    return user.strip(), password


def training_rule(public: bool, login: bool, allowed: bool) -> tuple[bool, str]:
    """The one access rule for training: (on, why in words). Locally training is on; on a public
    studio only where a login is in force (`--auth` or `RAFT_AUTH`) and RAFT_ALLOW_TRAINING=1."""
    if not public:
        return True, "Training is on (a local studio)."
    if login and allowed:
        return True, "Training is on: this public studio asks every visitor to sign in, and RAFT_ALLOW_TRAINING=1."
    missing = " and ".join(
        [*([] if login else ["a login is not in force"]), *([] if allowed else ["RAFT_ALLOW_TRAINING is not 1"])]
    )
    return False, (
        f"Training is **off** on this public studio: {missing}. A public studio trains only where a login is in "
        "force (`--auth USER:PASS` or the secret `RAFT_AUTH`) and `RAFT_ALLOW_TRAINING=1`; anonymous visitors "
        "never train. Past runs stay visible."
    )


def public_from_env() -> bool:
    """The one switch: a Hugging Face Space (SPACE_ID) or RAFT_PUBLIC=1 makes the studio public, and
    every public rule (training, models, workspaces, what is shown) follows it."""
    return bool(os.environ.get("SPACE_ID", "").strip()) or _flag("RAFT_PUBLIC")


@dataclass
class Settings:
    """What the studio may do and where it keeps its files."""

    data_root: Path
    default_model: str | None = None
    allow_training: bool = True
    training_note: str = "Training is on (a local studio)."
    """Why training is on or off, in words (the Fine-tune tab shows it); see `training_rule`."""
    allow_any_model: bool = True
    max_upload_mb: int = 50
    device: str | None = None
    public: bool = False
    """A public studio: each visitor gets a private workspace, allowed models only, no server paths shown."""
    allowed_models: tuple[str, ...] = ()
    """Hub ids or folders any visitor may pick (RAFT_ALLOWED_MODELS, comma-separated)."""
    request_mb: int = 128
    """What one request may decode from the files it reads (RAFT_REQUEST_MB); see `raft.limits.within`."""
    request_rows: int = 250_000
    """How many rows one request may read from its files (RAFT_REQUEST_ROWS): a row held as Python
    objects costs about 1 KB whatever its decoded size, so rows are budgeted too."""
    workspace_mb: int = 200
    total_mb: int = 5000
    """All visitors' workspaces and staged downloads together (RAFT_TOTAL_MB)."""
    workspace_idle_h: float = 24.0
    upload_cache_mb: int = 2000
    """On a public studio, Gradio's upload and cache folder holds at most this (RAFT_UPLOAD_CACHE_MB)."""
    concurrency: int = 4
    queue_size: int = 64

    @classmethod
    def from_env(
        cls, data_root: str | None = None, default_model: str | None = None, login: bool | None = None
    ) -> Settings:
        """On a public studio (`public_from_env`) training and arbitrary models are off. The owner can
        allow other models with RAFT_ALLOWED_MODELS (a list) or RAFT_ALLOW_ANY_MODEL=1, and training
        with RAFT_ALLOW_TRAINING=1 where a login is in force (`training_rule`), never for anonymous
        visitors. `login` says whether one is (the launcher knows, from `login_from`); None reads
        RAFT_AUTH alone."""
        public = public_from_env()
        if login is None:
            login = login_from(None) is not None
        training, note = training_rule(public, login, _flag("RAFT_ALLOW_TRAINING"))
        root = data_root or os.environ.get("RAFT_DATA_ROOT") or "data"
        allowed = tuple(m.strip() for m in os.environ.get("RAFT_ALLOWED_MODELS", "").split(",") if m.strip())
        return cls(
            data_root=Path(root).resolve(),
            default_model=default_model or os.environ.get("RAFT_DEFAULT_MODEL") or None,
            allow_training=training,
            training_note=note,
            allow_any_model=not public or _flag("RAFT_ALLOW_ANY_MODEL"),
            max_upload_mb=int(os.environ.get("RAFT_MAX_UPLOAD_MB", "50")),
            device=os.environ.get("RAFT_DEVICE") or None,
            public=public,
            allowed_models=allowed,
            request_mb=int(os.environ.get("RAFT_REQUEST_MB", "128")),
            request_rows=int(os.environ.get("RAFT_REQUEST_ROWS", "250000")),
            workspace_mb=int(os.environ.get("RAFT_WORKSPACE_MB", "200")),
            total_mb=int(os.environ.get("RAFT_TOTAL_MB", "5000")),
            workspace_idle_h=float(os.environ.get("RAFT_WORKSPACE_IDLE_HOURS", "24")),
            upload_cache_mb=int(os.environ.get("RAFT_UPLOAD_CACHE_MB", "2000")),
            concurrency=int(os.environ.get("RAFT_CONCURRENCY", "4")),
            queue_size=int(os.environ.get("RAFT_QUEUE_SIZE", "64")),
        )


class Studio:
    """Folders under the data root, the job manager, visitors' workspaces and loaded judges."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = settings.data_root
        for sub in ("datasets", "runs", "batch", "samples"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.jobs = JobManager(self.root)
        if settings.allow_training:
            self.jobs.advance_queue()  # queued jobs start on the server, with or without a page open
        self.judges = JudgeCache(self.resolve_model, settings.device)
        self._swept = 0.0
        idle_s = settings.workspace_idle_h * 3600
        self.disk = Disk(self.root / "workspaces", staging_root(self.root), settings.total_mb * 2**20, idle_s)
        self.previews = PreviewStore(2 * settings.request_mb * 2**20)
        self.uploads = UploadBudget(gradio_cache(), settings.upload_cache_mb * 2**20, UPLOAD_AGE_S)
        """Previewed datasets by id (the page holds the id): at most twice one request's budget."""

    def workspace(self, request: gr.Request | None = None) -> Workspace:
        """The visitor's workspace (private on a public studio), clearing idle ones and old staged
        downloads now and then."""
        if time.time() - self._swept > SWEEP_EVERY_S:
            self._swept = time.time()
            sweep(self.root, self.settings.workspace_idle_h * 3600)
        try:
            return workspace_for(
                self.root, visitor_key(request), self.settings.public, self.settings.workspace_mb * 2**20, self.disk
            )
        except WorkspaceError as exc:
            raise gr.Error(str(exc)) from None

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def datasets(self, request: gr.Request | None = None) -> list[str]:
        return list_datasets(self.workspace(request).datasets)

    def runs(self) -> list[str]:
        """Runs that hold a judge (newest first): finished, or stopped, failed or training with a checkpoint."""
        return [name for name, _ in self.run_steps()]

    def run_steps(self) -> list[tuple[str, int | None]]:
        """(name, checkpoint step, None for a finished judge) of each servable run, newest first."""
        found = []
        for run in self.runs_dir.iterdir():
            manifest = read_manifest(run) if run.is_dir() else None
            weights = run_weights(run, manifest) if manifest else None
            if weights:
                found.append((run, weights.step))
        return [(run.name, step) for run, step in sorted(found, key=lambda f: f[0].stat().st_mtime, reverse=True)]

    def fresh_run_name(self) -> str:
        """The first 'run-N' with no folder yet: the form never proposes a run that exists."""
        queued = {Path(j.run_dir).name for j in self.jobs.list() if j.status == QUEUED}
        n = 1
        while (self.runs_dir / f"run-{n}").exists() or f"run-{n}" in queued:
            n += 1
        return f"run-{n}"

    def model_choices(self) -> list[str | tuple[str, str]]:
        """The picker's choices; a run served from a checkpoint is labelled with its step."""
        runs = [
            RUN_PREFIX + name if step is None else (f"{RUN_PREFIX}{name} (checkpoint, step {step})", RUN_PREFIX + name)
            for name, step in self.run_steps()
        ]
        return [DEFAULT_CHOICE, *self.settings.allowed_models, *runs]

    def resolve_model(self, choice: str | None) -> str | None:
        """A model choice (default, 'run: NAME', or a hub id / local path) -> what Judge.load takes."""
        choice = (choice or "").strip()
        if not choice or choice == DEFAULT_CHOICE:
            return self.settings.default_model
        if choice.startswith(RUN_PREFIX):
            run = safe_child(self.runs_dir, choice[len(RUN_PREFIX) :])
            manifest = read_manifest(run)
            if not manifest or not run_weights(run, manifest):
                raise ValueError(
                    f"run '{run.name}' has no judge yet: it saves its first checkpoint after save_steps steps"
                )
            return str(run)
        if choice in self.settings.allowed_models:
            return choice
        if not self.settings.allow_any_model:
            raise ValueError(
                "this studio serves its default model, its own runs and the models its owner allowed "
                "(RAFT_ALLOWED_MODELS); other models are off"
            )
        return choice

    def calibration(self, path: str | None) -> Calibration | None:
        """An uploaded calibration file (a small .json), validated; None when none was given."""
        if not path:
            return None
        file = Path(path)
        if file.suffix.lower() != ".json" or file.stat().st_size > 1_000_000:
            raise gr.Error(f"{file.name}: a calibration is the .json file written by `python -m raft calibrate`")
        try:
            return Calibration.load(file)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    def _manifest(self, choice: str | None) -> dict:
        """A choice's run manifest, read without loading the model; empty for a plain model or a bad choice."""
        try:
            model = self.resolve_model(choice)
        except ValueError:
            return {}
        return (read_manifest(model) if model and Path(model).is_dir() else None) or {}

    def model_scale(self, choice: str | None) -> tuple[int, int]:
        """The scale a choice's judge was trained on, else 1..5."""
        return check_scale(self._manifest(choice).get("scale", (1, 5)))

    def model_mode(self, choice: str | None) -> str:
        """The mode a choice's judge was trained in, else score-only."""
        return check_judge_mode(self._manifest(choice).get("mode", "score_only"))

    def model_loss(self, choice: str | None) -> str | None:
        """The loss a choice's judge was fine-tuned with (raft, cot_raft, ce), None for a plain model."""
        return self._manifest(choice).get("loss")

    def loading_note(self, choice: str | None, engine: str = "hf") -> str:
        """What getting this judge involves now, for a progress line (see `JudgeCache.loading_note`)."""
        return self.judges.loading_note(choice, engine)

    def tokenizer(self, choice: str | None) -> object:
        """The tokenizer of a model choice, without loading weights (see `JudgeCache.tokenizer`)."""
        return self.judges.tokenizer(choice)

    def judge(self, choice: str | None, engine: str = "hf") -> Judge:
        """The judge for a model choice, loaded on first use and kept (see `JudgeCache.judge`)."""
        return self.judges.judge(choice, engine)


TRIM_AFTER_BYTES = 16 << 20
"""A request that decoded more than this hands its freed memory back to the system when it ends."""


def _release_memory(budget: Budget) -> None:
    """After a request that read a lot, give the memory it freed back to the system: glibc keeps freed
    blocks in its per-thread arenas otherwise, and a studio that answered a few large requests would
    keep their peak resident for good. Linux/glibc only; elsewhere nothing is done."""
    if budget.used_bytes < TRIM_AFTER_BYTES:
        return
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def bind(fn: Callable, studio: Studio) -> Callable:
    """`fn` with its first argument (the studio) bound, keeping the signature and type hints that
    Gradio reads (`functools.partial` hides them, and with them the `gr.Request` a handler asks
    for), and its errors shown to visitors through app.messages (no server paths, no markup).

    Every file the handler reads shares one budget of decoded bytes (`Settings.request_mb`,
    `raft.limits.within`): a request stops at it with the file named, whatever the file's size."""
    budget, rows = studio.settings.request_mb * 2**20, studio.settings.request_rows

    if inspect.isgeneratorfunction(fn):  # Gradio streams only what it sees is a generator

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            yield from fn(studio, *args, **kwargs)

        safe = guarded(inner)

        @functools.wraps(fn)
        def handler(*args, **kwargs):
            # Gradio resumes a generator in a new context each time: the budget is put in force per step
            spent = Budget(budget, rows)
            steps = safe(*args, **kwargs)
            try:
                while True:
                    with using(spent):
                        try:
                            item = next(steps)
                        except StopIteration:
                            return
                    yield item
            finally:  # the visitor's error holds no frame of the failed call (app.messages.guarded)
                steps.close()
                _release_memory(spent)

    else:

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            return fn(studio, *args, **kwargs)

        safe = guarded(inner)

        @functools.wraps(fn)
        def handler(*args, **kwargs):
            with within(budget, rows) as spent:
                try:
                    return safe(*args, **kwargs)
                finally:
                    _release_memory(spent)

    signature = inspect.signature(fn)
    handler.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    return handler


def model_dropdown(studio: Studio, label: str = "Judge model", **kwargs: object) -> gr.Dropdown:
    """A judge picker: the default model, the studio's runs, or (typed) a hub id or local path.

    Typed values are accepted here and checked by `Studio.resolve_model` when used."""
    return gr.Dropdown(studio.model_choices(), value=DEFAULT_CHOICE, label=label, allow_custom_value=True, **kwargs)
