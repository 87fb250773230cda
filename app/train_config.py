"""A visitor's training config names things, never paths: `data` is a dataset of the visitor's
workspace, `output_dir` a run of the studio, `template` a built-in template or the dataset's own
(its text is in the manifest), `base_model` the default model, an allowed model or a run. The
studio resolves each name on the server; no value of a config is read as a path, so a config
cannot read a server file. The CLI, run by the machine's owner, keeps paths.
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import yaml

from app.studio import DEFAULT_CHOICE, RUN_PREFIX, Studio
from app.workspace import Workspace
from raft.data import read_dataset_manifest
from raft.files import DataError
from raft.loss import pair_losses
from raft.paths import is_name, safe_child
from raft.prompts import JudgePrompt, builtin_templates
from raft.train.config import ConfigError, TrainConfig

NO_DATASET = "Choose a dataset above (write one in the Dataset tab first): a run trains on a dataset."
OFF_IN_STUDIO = {
    "trust_remote_code": "trust_remote_code is not allowed from the studio; use the CLI",
    "deepspeed": "deepspeed and fsdp runs are started with the CLI under a launcher, not the studio",
    "fsdp": "deepspeed and fsdp runs are started with the CLI under a launcher, not the studio",
    "fsdp_config": "deepspeed and fsdp runs are started with the CLI under a launcher, not the studio",
}


def _name(field: str, value: str, what: str) -> str:
    """A plain name (letters, digits, '.', '_', '-'); a path is refused naming the field."""
    if not is_name(value):
        raise ConfigError(f"config: field '{field}' names {what} (letters, digits, '.', '_', '-'), not a path")
    return value.strip()


def resolve(studio: Studio, named: TrainConfig, workspace: Workspace) -> TrainConfig:
    """The named config as the trainer takes it (folders on this server), every name checked."""
    for field, reason in OFF_IN_STUDIO.items():
        if getattr(named, field) not in (None, False, ""):
            raise ConfigError(f"config: {reason}")
    if str(named.data or "").strip() in ("", "."):
        raise ConfigError(NO_DATASET)
    data = safe_child(workspace.datasets, _name("data", named.data, "a dataset of your workspace"))
    output = safe_child(studio.runs_dir, _name("output_dir", named.output_dir, "a run"))
    if not (data / "train.jsonl").is_file():
        raise ConfigError(f"config: no dataset named '{data.name}' in your workspace: write one in the Dataset tab")
    try:
        manifest = read_dataset_manifest(data)
    except DataError as exc:
        raise ConfigError(f"config: dataset '{data.name}': {exc.reason}") from None
    if manifest.get("task") == "pairwise" and named.loss not in pair_losses():
        raise ConfigError(
            f"config: field 'loss': {named.loss} does not train on pairs, and '{data.name}' is a pairwise dataset; "
            f"choose one of {', '.join(pair_losses())}"
        )
    return dataclasses.replace(
        named,
        data=str(data),
        output_dir=str(output),
        template=_template(named.template, manifest),
        base_model=_base_model(studio, named.base_model),
    )


def _template(template: str | None, manifest: dict) -> str | None:
    """None (the dataset's own template), the dataset's own by name, or a built-in that reads the same."""
    if template is None or not str(template).strip():
        return None
    own = {manifest["prompt"].with_reference.name, manifest["prompt"].without_reference.name}
    if template in own:
        return None
    pairwise = manifest.get("task") == "pairwise"
    if template not in builtin_templates(pairwise):
        shown = f"'{template}'" if is_name(template) else "a path"
        raise ConfigError(
            f"config: field 'template': {shown} is not a template here; use the dataset's own "
            f"({', '.join(sorted(own))}) or a built-in one ({', '.join(builtin_templates(pairwise))})"
        )
    diff = JudgePrompt.resolve(template, manifest["mode"], pairwise).differs_from(manifest["prompt"])
    if diff:
        raise ConfigError(f"config: field 'template': '{template}' differs from the dataset's: {diff}")
    return template


def _base_model(studio: Studio, choice: str | None) -> str | None:
    """The default, an allowed model, a run ('run: NAME'), or (where the owner allows any) a hub id or folder."""
    try:
        return studio.resolve_model(choice)
    except ValueError as exc:
        raise ConfigError(f"config: field 'base_model': {exc}") from None


def from_yaml(studio: Studio, text: str, workspace: Workspace) -> TrainConfig:
    """The (possibly edited) YAML of the form, parsed and resolved."""
    return resolve(studio, TrainConfig.from_text(text or ""), workspace)


def cli_command(studio: Studio, named: TrainConfig) -> str:
    """The equivalent `python -m raft train` command, run from the data root: every value that
    differs from the defaults, with the dataset and run as folders relative to it."""
    shown = dataclasses.replace(
        named,
        data=f"datasets/{named.data}" if named.data else "",
        output_dir=f"runs/{named.output_dir}",
        base_model=_shown_model(studio, named.base_model),
    )
    default = TrainConfig()
    parts = ["python", "-m", "raft", "train"]
    for f in dataclasses.fields(shown):
        value = getattr(shown, f.name)
        if value != getattr(default, f.name):
            text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
            parts += [f"--{f.name}", str(text).removesuffix("\n...")]
    return shlex.join(parts)


def _shown_model(studio: Studio, choice: str | None) -> str | None:
    """A base model as the command names it: a run's folder under the data root, a hub id; the
    studio's default model only where it is not a folder of this server."""
    choice = (choice or "").strip()
    if choice.startswith(RUN_PREFIX):
        return f"runs/{choice[len(RUN_PREFIX) :].strip()}"
    if choice and choice != DEFAULT_CHOICE:
        return choice
    default = studio.settings.default_model
    return None if default is None or Path(default).exists() else default
