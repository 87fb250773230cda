"""`python -m raft label {create,next,import,agreement,dataset,compare}`: a labelling project from
the command line, for graders who work in a spreadsheet (the studio's Align tab is the twin)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from raft.files import DataError


def project_meta_from_judge(judge: str | None, template: str | None) -> dict[str, Any]:
    """The prompt, scale and mode a scored file was made with: a run folder's manifest, else the
    template named (default: the built-in score-only template)."""
    from raft.models import read_manifest
    from raft.prompts import JudgePrompt

    manifest = read_manifest(judge) if judge and Path(judge).is_dir() else None
    if manifest and "prompt" in manifest:
        if template:
            raise DataError("the judge is a run folder: its own template is used; leave --template out")
        return {
            "prompt": JudgePrompt.from_dict(manifest["prompt"]),
            "scale": tuple(manifest.get("scale", (1, 5))),
            "mode": "score_only",
        }
    return {"prompt": JudgePrompt.resolve(template, "score_only"), "scale": None, "mode": "score_only"}


def result_meta(scored: str | Path) -> dict[str, Any]:
    """What the studio's Batch wrote beside a result (`NAME.meta.json`: its rubric and mapping); {} without one."""
    from raft.batch import meta_path

    try:
        meta = json.loads(meta_path(Path(scored)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def rows_scale(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """1..K for the K levels of the first score distribution in scored rows (1..5 without one)."""
    width = next((len(r["probs"]) for r in rows if isinstance(r.get("probs"), list) and r["probs"]), 5)
    return (1, width)


def cmd_create(args: argparse.Namespace) -> int:
    from raft.data import parse_columns
    from raft.labels import LabelProject
    from raft.report import load_scored
    from raft.rubrics import Rubric, load_rubric

    made = project_meta_from_judge(args.judge, args.template)
    scale = args.scale or made["scale"]
    rows = load_scored(args.scored)
    beside = result_meta(args.scored)
    if args.rubric:
        rubric = load_rubric(args.rubric, tuple(scale or rows_scale(rows)))
    else:
        rubric = Rubric.from_dict(beside["rubric"]) if isinstance(beside.get("rubric"), dict) else None
    columns = parse_columns(args.columns, scale or (1, 5)) if args.columns else dict(beside.get("columns") or {})
    project = LabelProject.create(
        args.project,
        rows,
        judge=args.judge,
        prompt=made["prompt"],
        scale=scale,
        columns=columns,
        heldout=args.heldout,
        seed=args.seed,
        source=Path(args.scored).name,
        rubric=rubric,
    )
    print(json.dumps({"project": str(project.folder), **project.counts(), "scale": project.meta["scale"]}))
    return 0


def cmd_next(args: argparse.Namespace) -> int:
    from raft.label_files import export_rows
    from raft.labels import LabelProject
    from raft.selection import next_rows

    project = LabelProject.open(args.project)
    keys = next_rows(project, args.strategy, args.k, args.seed)
    export_rows(project, keys, args.out, show_judge=args.show_judge)
    held = sum(1 for k in keys if k in project.heldout)
    print(f"wrote {len(keys)} rows to {args.out} ({held} held-out, {len(keys) - held} by {args.strategy})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from raft.label_files import import_labels
    from raft.labels import LabelProject

    project = LabelProject.open(args.project)
    result = import_labels(project, args.file, labeller=args.labeller)
    print(json.dumps({**result, **project.counts()}, indent=2))
    return 2 if result["errors"] else 0


def cmd_agreement(args: argparse.Namespace) -> int:
    from raft.align import agreement, agreement_markdown
    from raft.labels import LabelProject

    result = agreement(LabelProject.open(args.project), top=args.top)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(agreement_markdown(result))
    if result["n"]:
        lo, hi = result["scale"]
        print("Confusion (rows: your label, columns: the judge's rounded expected score):\n")
        print("| label | " + " | ".join(f"judge {v}" for v in range(lo, hi + 1)) + " |")
        print("|---" * (hi - lo + 2) + "|")
        for v, counts in zip(range(lo, hi + 1), result["confusion"]):
            print(f"| {v} | " + " | ".join(map(str, counts)) + " |")
        print("\nLargest disagreements:\n")
        for d in result["disagreements"]:
            print(f"- row {d['key']}: label {d['label']}, judge {d['expected_score']:.2f}: {d['instruction'][:80]}")
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from raft.align import write_label_dataset
    from raft.labels import LabelProject

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise DataError("the folder already holds files; name a new one", str(out))
    stats = write_label_dataset(LabelProject.open(args.project), out, args.validation_ratio, args.seed)
    print(json.dumps(stats, indent=2))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from raft.align import compare_judges, rescore_heldout
    from raft.align_findings import findings, findings_markdown, save_findings  # numpy/scipy: not at --help
    from raft.judge import Judge
    from raft.labels import LabelProject
    from raft.report import to_markdown

    project = LabelProject.open(args.project)
    out = Path(args.out or Path(args.project) / f"heldout-{Path(args.model).name}.jsonl")
    judge = Judge.load(args.model, device=args.device)
    after = rescore_heldout(project, judge, out, batch_size=args.batch_size)
    report = compare_judges(project, after)
    print(to_markdown(report))
    for name in ("after", "before"):
        k = report[f"kappa_{name}"]
        fmt = ["n/a" if x is None else f"{x:.3f}" for x in (k["value"], k["lo"], k["hi"])]
        print(f"Weighted kappa, {name}: {fmt[0]} [{fmt[1]}, {fmt[2]}]")
    found = findings(project, report, after, Path(args.model).name, judge.calibration is not None)
    save_findings(project, found)
    print("\n" + findings_markdown(found))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from raft.align import compare_judges
    from raft.align_calibrate import calibrated_rows, fit_project_calibration
    from raft.align_findings import findings, findings_markdown, save_findings  # numpy/scipy: not at --help
    from raft.calibrated import write_calibrated_judge
    from raft.labels import LabelProject

    project = LabelProject.open(args.project)
    cal = fit_project_calibration(project)
    after = calibrated_rows(project, cal)
    report = compare_judges(project, after)
    base = args.judge or project.meta.get("judge") or None
    out = Path(args.out)
    write_calibrated_judge(
        out,
        base,
        cal,
        prompt=project.prompt,
        scale=project.scale,
        name=Path(str(base)).name if base else "default model",
        fitted_on={"project": Path(args.project).name, "training_labels": cal.n_fit},
    )
    found = findings(project, report, after, out.name, calibrated=True)
    found["levels"] = [round(v, 3) for v in cal.levels or []]
    save_findings(project, found)
    print(findings_markdown(found))
    print(f"Calibrated judge written to {out}: `python -m raft score --model {out} ...` serves it.")
    return 0


def add_parser(sub: Any, scale_type: Any) -> None:
    """The `label` command and its subcommands, on the main parser's subparsers."""
    parser = sub.add_parser("label", help="label rows yourself, measure the judge on them, fine-tune on them")
    lsub = parser.add_subparsers(dest="label_command", required=True)
    project = argparse.ArgumentParser(add_help=False)
    project.add_argument("--project", required=True, help="the project folder")
    _add_create(lsub, project, scale_type)
    _add_exchange(lsub, project)
    _add_measure(lsub, project)


def _add_create(lsub: Any, project: argparse.ArgumentParser, scale_type: Any) -> None:
    """`label create`, with `project` (the shared --project) as parent."""
    p = lsub.add_parser("create", parents=[project], help="a project from a scored file (held-out rows fixed now)")
    p.add_argument("scored", help="a file written by `python -m raft score`")
    p.add_argument("--judge", default=None, help="the model or run folder that scored it (its template and scale)")
    p.add_argument("--template", default=None, help="the template it was scored with (not with a run folder)")
    p.add_argument("--scale", type=scale_type, default=None, help="LOW,HIGH (default: from the judge or the rows)")
    p.add_argument("--columns", default=None, help="field=column,... as given to `score`")
    p.add_argument(
        "--rubric",
        default=None,
        help="the whole-file rubric the file was scored with, for rows that carry none: a preset name "
        "(Helpfulness, ...) or a .json/.yaml file (default: the one the studio's Batch recorded beside the file)",
    )
    p.add_argument("--heldout", type=float, default=0.3, help="share of rows kept to measure, never to train")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_create)


def _add_exchange(lsub: Any, project: argparse.ArgumentParser) -> None:
    """`label next` and `label import`: rows out to a spreadsheet and their labels back."""
    from raft.selection import STRATEGIES

    p = lsub.add_parser("next", parents=[project], help="export the next rows to label as a CSV")
    p.add_argument("--strategy", choices=STRATEGIES, default="uncertain")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--seed", type=int, default=None, help="default: the project's seed")
    p.add_argument("--out", required=True, help="the CSV to write (fill its label column)")
    p.add_argument("--show-judge", action="store_true", help="include the judge's score (labels are blind otherwise)")
    p.set_defaults(func=cmd_next)

    p = lsub.add_parser("import", parents=[project], help="read labels back (columns key, label, optional note)")
    p.add_argument("file")
    p.add_argument("--labeller", default="", help="who labelled them")
    p.set_defaults(func=cmd_import)


def _add_measure(lsub: Any, project: argparse.ArgumentParser) -> None:
    """`label agreement`, `dataset`, `compare` and `calibrate`: what the labels measure and train."""
    p = lsub.add_parser("agreement", parents=[project], help="the judge against your held-out labels")
    p.add_argument("--top", type=int, default=10, help="rows of largest disagreement to list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_agreement)

    p = lsub.add_parser("dataset", parents=[project], help="the labelled training rows as a dataset folder")
    p.add_argument("--out", required=True)
    p.add_argument("--validation-ratio", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_dataset)

    p = lsub.add_parser("compare", parents=[project], help="score the held-out rows with a new judge and compare")
    p.add_argument("--model", required=True, help="the new judge (a run folder)")
    p.add_argument("--out", default=None, help="its scores of the held-out rows (default: in the project)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_compare)

    p = lsub.add_parser(
        "calibrate", parents=[project], help="fit a level map to your training labels (seconds) and compare it"
    )
    p.add_argument("--out", required=True, help="the calibrated judge's folder (a new one)")
    p.add_argument("--judge", default=None, help="the judge that scored the project (default: the project's)")
    p.set_defaults(func=cmd_calibrate)
