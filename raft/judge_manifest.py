"""A judge's settings read from its folder's manifest (judge.json): template, scale, score cue,
mode and calibration as trained, with a caller's `template` or `scale` that differs refused.

`Judge.from_manifest` builds the judge from `judge_settings`; apart so the judge holds no
loading rules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from raft.calibration import Calibration
from raft.data import DATASET_MANIFEST
from raft.prompts import SCORE_CUE, JudgePrompt, TemplateError
from raft.runs import CONFIG_FILE
from raft.scores import ScaleError


def manifest_calibration(manifest: dict[str, Any]) -> Calibration | None:
    """The calibration a judge folder carries in its judge.json (a calibrated judge), else None."""
    found = manifest.get("calibration")
    return Calibration.from_dict(found) if isinstance(found, dict) else None


def judge_settings(
    manifest: dict[str, Any],
    model: str | Path | None = None,
    template: str | Path | None = None,
    scale: tuple[int, int] | None = None,
    calibration: str | Path | Calibration | None = None,
) -> dict[str, Any]:
    """The `Judge` arguments after the engine (prompt, scale, name, mode, cue, calibration) for a
    manifest (a plain model's is nearly empty) and what the caller asked for."""
    prompt = _trained_prompt(manifest, model, template)
    trained_scale = tuple(manifest["scale"]) if "scale" in manifest else None
    if scale and trained_scale and tuple(scale) != trained_scale:
        raise ScaleError(f"{model} was trained on the scale {trained_scale}, not {tuple(scale)}")
    return {
        "prompt": prompt if isinstance(prompt, JudgePrompt) else template or prompt,
        "scale": scale or trained_scale or (1, 5),
        "name": str(model or manifest.get("base_model", "")),
        "mode": manifest.get("mode", "score_only"),
        "cue": manifest.get("score_cue", SCORE_CUE),
        "calibration": Calibration.load(calibration)
        if isinstance(calibration, (str, Path))
        else calibration or manifest_calibration(manifest),
    }


def _trained_prompt(
    manifest: dict[str, Any], model: str | Path | None, template: str | Path | None
) -> JudgePrompt | str | None:
    """The manifest's prompt (templates, or an older manifest's template path); a `template` whose
    text differs from the trained templates is refused."""
    prompt = JudgePrompt.from_dict(manifest["prompt"]) if "prompt" in manifest else manifest.get("template")
    if template and isinstance(prompt, JudgePrompt):
        mode = manifest.get("mode", "score_only")
        diff = JudgePrompt.resolve(template, mode, prompt.pairwise).differs_from(prompt)
        if diff:
            raise TemplateError(f"{model} was trained with other prompt text: {diff}; leave the template out")
    return prompt


def trained_rubric(run: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The whole-file rubric the judge was trained with: the run's own record, else its dataset's
    (`dataset.json`); None when the rows carried their own rubrics."""
    if manifest.get("rubric"):
        return manifest["rubric"]
    data = run_config(run).get("data")
    path = Path(str(data)) / DATASET_MANIFEST if data else None
    if not path or not path.is_file():
        return None
    try:
        rubric = json.loads(path.read_text(encoding="utf-8")).get("rubric")
    except (OSError, ValueError):
        return None
    return rubric if isinstance(rubric, dict) else None


def run_config(run: Path) -> dict[str, Any]:
    """The training config a run folder keeps (config.yaml), {} when it has none or it is unreadable."""
    path = run / CONFIG_FILE
    try:
        found = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return {}
    return found if isinstance(found, dict) else {}
