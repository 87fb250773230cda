"""Aligning a judge to a team's labels: agreement on the held-out labels (the report card's
intervals, quadratic-weighted kappa, a confusion table, the largest disagreements), the labelled
training rows as a dataset folder to fine-tune on, and the judge before and after compared on
the held-out labels (paired interval and p-value, as `report --compare`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from raft.align_findings import MIN_DECIDE
from raft.data import BuiltDataset, build_example, dataset_manifest, write_dataset
from raft.files import DataError
from raft.labels import LabelProject, judge_fields
from raft.levels import binary_lines, binary_rates, kappa_interval
from raft.metrics import confusion
from raft.output import open_output
from raft.report import build_report
from raft.stats import bootstrap

LABEL = "label"
"""The column that holds a grader's label in the files this module writes."""


def agreement(project: LabelProject, n_boot: int = 1000, seed: int = 0, top: int = 10) -> dict[str, Any]:
    """The judge against the labels on the held-out rows: every metric with its interval, weighted
    kappa with its interval, the confusion table (rows: label, columns: judge) and the `top` rows
    of largest disagreement. `n` is the number of held-out labels."""
    labels = project.labels()
    keys = [k for k in project.keys if k in labels and k in project.heldout]
    scale = project.scale
    out: dict[str, Any] = {"n": len(keys), "counts": project.counts(), "scale": list(scale)}
    gold = np.asarray([labels[k] for k in keys], dtype=np.float64)
    pred = np.asarray([float(project.rows[k]["expected_score"]) for k in keys], dtype=np.float64)
    out["confusion"] = confusion(gold, pred, scale)
    out["metrics"] = bootstrap(gold, pred, n_boot, seed) if len(keys) else {}
    out["kappa"] = kappa_interval(gold, pred, scale, n_boot, seed)
    if scale[1] - scale[0] == 1:
        out["binary"] = binary_rates(gold, pred, scale, n_boot, seed)
    gaps = np.abs(gold - pred)
    out["disagreements"] = [
        {
            "key": keys[i],
            "label": int(gold[i]),
            "expected_score": round(float(pred[i]), 3),
            "gap": round(float(gaps[i]), 3),
            "instruction": str(project.item(keys[i])["orig_instruction"])[:200],
        }
        for i in np.argsort(-gaps, kind="stable")[:top]
    ]
    return out


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def agreement_markdown(result: dict[str, Any]) -> str:
    """The agreement as a short Markdown card (the CLI prints it, the studio shows it)."""
    c = result["counts"]
    lines = [
        f"Labelled: {c['train_labelled']} of {c['train_rows']} training rows, {c['heldout_labelled']} of "
        f"{c['heldout_rows']} held-out rows ({c['skipped']} skipped).",
        "",
    ]
    if result["n"] < 2:
        return "\n".join(lines + [f"Agreement needs at least 2 held-out labels (n = {result['n']})."]) + "\n"
    m, k = result["metrics"], result["kappa"]
    if result["n"] < MIN_DECIDE:  # intervals on a handful of rows mislead more than they tell
        return "\n".join(
            lines
            + [
                f"Judge vs your labels on the held-out rows (n = {result['n']}): **too few to decide** (intervals "
                f"from {MIN_DECIDE} held-out labels on).",
                "",
                "| metric | value |",
                "|---|---|",
                f"| weighted kappa | {_fmt(k['value'])} |",
                *(f"| {name} | {_fmt(m[name]['value'])} |" for name in ("pearson", "spearman", "mae", "exact")),
            ]
        ) + "\n"
    lines += [
        f"Judge vs your labels on the held-out rows (n = {result['n']}), 95% bootstrap intervals:",
        "",
        "| metric | value [95% CI] |",
        "|---|---|",
        f"| weighted kappa | {_fmt(k['value'])} [{_fmt(k['lo'])}, {_fmt(k['hi'])}] |",
        *(
            f"| {name} | {_fmt(m[name]['value'])} [{_fmt(m[name]['lo'])}, {_fmt(m[name]['hi'])}] |"
            for name in ("pearson", "spearman", "mae", "exact")
        ),
    ]
    if "binary" in result:
        lines += binary_lines(result["binary"], "labelled")
    return "\n".join(lines) + "\n"


def training_rows(project: LabelProject) -> list[tuple[int, dict[str, Any]]]:
    """(key, judge item with the label as `orig_score`) of every labelled training row; held-out rows never."""
    labels, held = project.labels(), project.heldout
    return [(k, {**project.item(k), "orig_score": labels[k]}) for k in project.keys if k in labels and k not in held]


def write_label_dataset(
    project: LabelProject, out_dir: str | Path, validation_ratio: float = 0.0, seed: int = 0, tokenizer: Any = None
) -> dict[str, Any]:
    """The labelled training rows as a dataset folder (train.jsonl, manifest with the project's
    template text, scale, mode and the whole-file rubric; each example's item holds its rubric). Held-out rows are left
    out by construction; `validation_ratio` keeps a share of the training labels for validation."""
    pairs = training_rows(project)
    if not pairs:
        raise DataError("no labelled training rows yet: label some rows first (held-out labels only measure)")
    if project.meta["mode"] != "score_only":
        raise DataError("labels are scores: a project's dataset is score-only")
    prompt, scale = project.prompt, project.scale
    examples = []
    for key, item in pairs:
        example = build_example(item, "score_only", prompt, scale)
        example["row"] = key
        examples.append(example)
    order = np.random.default_rng(seed).permutation(len(examples))
    examples = [examples[i] for i in order]
    n_val = int(round(len(examples) * validation_ratio)) if len(examples) > 1 else 0
    n_val = min(n_val, len(examples) - 1)
    info = {
        "source": f"labels of {project.meta.get('source') or project.folder.name}",
        "mode": "score_only",
        "templates": sorted({e["template"] for e in examples}),
        "scale": list(scale),
        "seed": seed,
        "rows_read": len(examples),
        "rows_kept": len(examples),
        "rows_rejected": 0,
        "rejected_reasons": {},
        "heldout_left_out": len(project.heldout),
    }
    manifest = dataset_manifest("score_only", prompt, scale, {}, info["source"], project.rubric)
    manifest["labels"] = {"judge": project.meta.get("judge"), "project_created": project.meta["created"]}
    built = BuiltDataset(examples[n_val:], examples[:n_val], [], info, manifest)
    return write_dataset(out_dir, built, tokenizer, exclusive=True)


def write_heldout(project: LabelProject, path: str | Path) -> int:
    """The labelled held-out rows as they were before scoring, with `label` and the row `key`
    (input for scoring them again with another judge); returns the rows written."""
    labels = project.labels()
    keys = [k for k in project.keys if k in labels and k in project.heldout]
    with open_output(path, "w") as f:
        for k in keys:
            f.write(
                json.dumps({**judge_fields(project.rows[k]), LABEL: labels[k], "key": k}, ensure_ascii=False) + "\n"
            )
    return len(keys)


def compare_judges(
    project: LabelProject, after: list[dict[str, Any]], n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """The judge after fine-tuning (`after`: held-out rows scored again, each with its `key`) against
    the project's judge (before) on the held-out labels: the report card with `--compare`'s paired
    intervals and p-values (A = after, B = before), plus weighted kappa of each with its interval."""
    labels = project.labels()
    before = [
        {LABEL: labels[k], "expected_score": project.rows[k]["expected_score"], "row": k}
        for k in project.keys
        if k in labels and k in project.heldout
    ]
    after_rows = [
        {
            LABEL: labels[int(r["key"])],
            "expected_score": r.get("expected_score"),
            "error": r.get("error"),
            "row": int(r["key"]),
        }
        for r in after
        if r.get("key") is not None and int(r["key"]) in labels and int(r["key"]) in project.heldout
    ]
    report = build_report(after_rows, gold=LABEL, other=before, names=("after", "before"), n_boot=n_boot, seed=seed)
    scale = project.scale
    for name, rows in (("after", after_rows), ("before", before)):
        good = [r for r in rows if r.get("expected_score") is not None and not r.get("error")]
        report[f"kappa_{name}"] = kappa_interval(
            np.array([r[LABEL] for r in good]), np.array([r["expected_score"] for r in good]), scale, n_boot, seed
        )
    return report


def rescore_heldout(
    project: LabelProject, judge: Any, out: str | Path, batch_size: int = 8, **kwargs: Any
) -> list[dict[str, Any]]:
    """Score the labelled held-out rows again with another judge (resumable, into `out`) and
    return the scored rows, each with its `key`."""
    from raft.batch import score_file
    from raft.data import read_jsonl

    out = Path(out)
    source = out.with_name(out.stem + "-input.jsonl")
    write_heldout(project, source)
    score_file(
        judge,
        source,
        out,
        mode="score_only",
        columns=project.meta.get("columns") or {},
        rubric=project.rubric,  # rows without their own rubric are scored with the one they were scored with before
        batch_size=batch_size,
        **kwargs,
    )
    return read_jsonl(out)
