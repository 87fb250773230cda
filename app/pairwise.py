"""Handlers of the studio's pairwise judging (issue 25): one pair scored in both orders, a pairs file
scored in the visitor's workspace, a pairwise dataset built from a pairs file or from an absolute
file's gold scores, and the pair report card. Thin over raft.pairwise, raft.pair_batch, raft.pairs
and raft.pair_report; every value that came from a visitor is escaped where it is shown."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from app import pair_plots, plots
from app.own_files import check_upload
from app.studio import DEFAULT_CHOICE, GPU_MAX_S, Studio, gpu, spaces
from app.workspace import Workspace, WorkspaceError
from raft.batch import done_rows
from raft.columns import PAIR_FIELDS, guess_pair_mapping
from raft.data import check_mapping, parse_columns, read_jsonl, write_dataset
from raft.files import DataError, peek_columns, read_records, write_csv_download
from raft.limits import LIMITS, too_long
from raft.pair_batch import file_position_bias, score_pairs_file
from raft.pair_report import pair_markdown, pair_report
from raft.pairs import DEFAULT_CRITERION, TIES, build_pair_dataset, pairs_from_scores
from raft.pairwise import PairJudgment
from raft.paths import safe_child
from raft.report import load_scored
from raft.rubrics import Rubric
from raft.text import md_text

FROM_SCORES = "pairs from scores (an absolute file)"
PAIRS_FILE = "a pairs file (response A, response B, preference)"
SOURCES = [FROM_SCORES, PAIRS_FILE]
TIE_CHOICES = [("leave ties out", "drop"), ("keep ties as 0.5", "half")]
PAIRS_FOLDER = "pairs"
"""Scored pairs files live in this folder of the workspace's batch folder, apart from absolute results."""
TABLE_COLUMNS = ["row", "p_a", "p_ab", "p_ba", "position_gap", "orig_preference", "error"]
PREVIEW_ROWS = 20
CELL_CHARS = 200
PREVIEW_CHARS = 100
EVEN = 0.005
"""A P(A) this close to 0.5 reads 0.5 at three digits: the pair is called even, not won."""


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3g}"


def _check_lengths(fields: dict[str, str]) -> None:
    for field, text in fields.items():
        if len(text or "") > LIMITS.field_chars:
            raise gr.Error(f"the {field} is {too_long(len(text), LIMITS)}")


def pair_markdown_view(name: str, j: PairJudgment) -> str:
    """One pair's verdict in words: the order-free P(A), each order, this pair's position gap, the
    raw mass on A and B, and the feedback of each order (the model's text, escaped)."""
    lines = []
    if j.p_a is not None:
        verdict = (
            "the two are judged about even"
            if abs(j.p_a - 0.5) < EVEN
            else f"**{'A' if j.p_a > 0.5 else 'B'}** is judged better"
        )
        lines.append(
            f"**{md_text(name)}**: P(A is better) **{j.p_a:.3g}**, P(B is better) **{1 - j.p_a:.3g}**"
            + (" (both orders combined)" if j.p_ba is not None else " (A shown first only)")
            + f": {verdict}."
        )
    reads = []
    if j.p_ab is not None:
        reads.append(f"A shown first: P(A) {j.p_ab:.3g} (mass on A/B {j.mass_ab:.3g})")
    if j.p_ba is not None:
        reads.append(f"B shown first: P(A) {1 - j.p_ba:.3g} (mass on A/B {j.mass_ba:.3g})")
    if reads:
        lines.append(" · ".join(reads))
    if j.gap is not None:
        lean = "the first" if j.gap > 0 else "the second" if j.gap < 0 else "neither"
        agree = "the two orders pick the same response" if j.consistent else "the two orders disagree"
        lines.append(
            f"Position bias of this pair: **{_signed(j.gap)}** (P_AB(A) − (1 − P_BA(A))): the judge leans to "
            f"{lean} position shown; {agree}."
        )
    if j.flag:
        lines.append(f"⚠️ {md_text(j.flag)}")
    for order, text in (("A shown first", j.feedback_ab), ("B shown first", j.feedback_ba)):
        if text:  # the model's words, often the pair's own: text, never markup
            lines.append(f"Feedback ({order}):\n\n> " + md_text(text, newline="<br>"))
        elif text is not None:  # feedback mode, and the judge went straight to its verdict
            lines.append(f"Feedback ({order}): none written before the verdict.")
    return "\n\n".join(lines)


def judge_pair(
    studio: Studio,
    model: str,
    mode: str,
    instruction: str,
    response_a: str,
    response_b: str,
    reference: str,
    criterion: str,
    both_orders: bool = True,
    max_new_tokens: int = 256,
    progress: gr.Progress = gr.Progress(),
) -> tuple[str, Any, dict]:
    """Compare two responses to one instruction: markdown, the P(A) bar per order and combined, details."""
    fields = {
        "instruction": instruction,
        "response A": response_a,
        "response B": response_b,
        "reference": reference,
        "criterion": criterion,
    }
    _check_lengths(fields)
    if mode not in ("score_only", "feedback"):
        raise gr.Error("pairs are judged in score-only or feedback mode")
    name = (model or "").strip() or DEFAULT_CHOICE
    progress(0.1, desc=studio.loading_note(model) or f"{name} is loaded")
    judge = studio.judge(model)
    item = {
        "orig_instruction": instruction,
        "orig_response_A": response_a,
        "orig_response_B": response_b,
        "orig_reference_answer": reference,
        "orig_criteria": (criterion or "").strip() or DEFAULT_CRITERION,
    }
    progress(0.5, desc=f"comparing with {name}")
    tokens = max(16, min(1024, int(max_new_tokens)))
    [j] = judge.compare([item], mode=mode, both_orders=bool(both_orders), max_new_tokens=tokens)
    if j.error:
        raise gr.Error(f"{name}: {j.error}")
    passes = 2 if both_orders else 1
    return pair_markdown_view(name, j), pair_plots.pair_bars(j, passes), j.to_dict()


score_pair = gpu(duration=lambda *args, **kwargs: 120)(judge_pair)


def _stem(name: str) -> str:
    """A name for a file the server writes, from a visitor's: letters, digits, '.', '_', '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("run: ", ""))[:60].strip("._-") or "pairs"


def pairs_folder(workspace: Workspace) -> Path:
    return workspace.batch / PAIRS_FOLDER


def pair_columns(studio: Studio, path: str | None, text: str = "") -> tuple[Path, dict[str, str]]:
    """An upload whose columns hold two responses, and {pair field: column} as the library reads it:
    the columns named in `text` ('field=column, ...'), else those recognised by their names."""
    file = check_upload(studio, path)
    try:
        given = parse_columns(text, pair=True)
        columns = peek_columns(file)
        check_mapping(given, columns, file.name)
    except DataError as exc:
        raise gr.Error(str(exc).replace(str(file), file.name)) from None
    guessed = guess_pair_mapping(columns)
    used = {**{f: c for f, c in guessed.items() if c not in given.values()}, **given}
    found = {*used, *(c for c in columns if c in PAIR_FIELDS and c not in used.values())}
    if not {"orig_response_A", "orig_response_B"} <= found:
        shown = ", ".join(str(c)[:40] for c in columns[:12])  # the error is escaped once, where it is shown
        raise gr.Error(
            f"{file.name} does not hold pairs: its columns ({shown}) name no two responses; use "
            "orig_response_A/orig_response_B, chosen/rejected or response_a/response_b, or map them "
            "(orig_response_A=column, orig_response_B=column)"
        )
    return file, used


def mapping_note(used: dict[str, str]) -> str:
    """The columns read for each pair field, in words (escaped: column names are the file's)."""
    if not used:
        return "Columns: the pair fields' own names."
    return "Columns: " + ", ".join(f"{f} ← `{md_text(c, 60)}`" for f, c in used.items()) + "."


def table_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Scored pairs as the results table: rounded probabilities, errors cut short."""
    return pd.DataFrame(
        [
            {c: plots.rounded(r.get(c)) if c != "error" else str(r.get(c) or "")[:CELL_CHARS] for c in TABLE_COLUMNS}
            for r in rows
        ],
        columns=TABLE_COLUMNS,
    )


@gpu(duration=lambda *args, **kwargs: 300)
def score_pairs_batch(
    studio: Studio,
    path: str | None,
    model: str,
    mode: str,
    both_orders: bool = True,
    batch_size: int = 8,
    criterion: str = "",
    columns: str = "",
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),
) -> tuple[Any, ...]:
    """Score every pair of the upload with P(A) in each order and combined into the visitor's
    workspace (the same file, judge and settings resume the same output), and return the file's
    position bias, the table and the downloads (CSV, JSONL). `criterion` is the whole file's, for
    pairs that bring none of their own (else the library's default: overall quality); `columns`
    maps pair fields to columns where their names are not recognised."""
    file, used = pair_columns(studio, path, columns)
    _check_lengths({"criterion": criterion})
    criterion = (criterion or "").strip()
    if mode not in ("score_only", "feedback"):
        raise gr.Error("pairs are judged in score-only or feedback mode")
    workspace = studio.workspace(request)
    name = (model or "").strip() or DEFAULT_CHOICE
    total = _count(file)
    digest = hashlib.sha256(file.read_bytes() + f"|{name}|{mode}|{bool(both_orders)}|{criterion}|{used}".encode())
    out = pairs_folder(workspace) / f"{_stem(file.stem)}-{digest.hexdigest()[:12]}.jsonl"
    progress(0.0, desc=studio.loading_note(model) or f"{name} is loaded")
    judge = studio.judge(model)
    before = len(done_rows(out)) if out.is_file() else 0
    limit = time_budget(studio)
    on_rows = _pair_progress(progress, before, total, limit)
    try:
        with workspace.writing():  # the scored rows are charged to the visitor's quota as they are written
            summary = score_pairs_file(
                judge, file, out, mode=mode, batch_size=max(1, min(64, int(batch_size))), chunk_rows=32,
                progress=on_rows, both_orders=bool(both_orders), label=file.name, columns=used,
                rubric=Rubric(criterion, ()) if criterion else None,
            )  # fmt: skip
    except WorkspaceError as exc:  # the chunks written before it filled are kept: a click later resumes
        raise gr.Error(f"Scoring stopped: {exc}. The pairs scored so far are kept; free space to go on.") from None
    except _TimeUp:  # every chunk is on disk: the next click resumes after it
        summary = {"scored": len(done_rows(out)) - before, "skipped": before, **file_position_bias(out)}
        summary.update(paused=limit, errors=sum(1 for r in read_jsonl(out) if r.get("error")))
    except DataError as exc:
        raise gr.Error(str(exc).replace(str(file), file.name)) from None
    rows = _scored_rows(out, file)
    meta = {"file": file.name, "judge": name, "time": time.time(), "rows": len(rows), "mode": mode}
    meta.update(scored=sum(1 for r in rows if r.get("p_a") is not None), both_orders=bool(both_orders))
    offered = _downloads(workspace, out, rows, meta)
    return batch_summary(file.name, name, summary, rows) + "\n\n" + mapping_note(used), table_of(rows), offered


def _pair_progress(progress: Any, before: int, total: int, limit: float | None) -> Callable[[int], None]:
    """score_pairs_file's progress callback: pairs done (those of an earlier click included) on the
    bar, and `_TimeUp` once the click has scored for `limit` seconds (None: no limit)."""
    deadline = None if limit is None else time.monotonic() + limit

    def on_rows(n: int) -> None:
        progress(min((before + n) / total, 1.0), desc=f"{before + n} of {total} pairs")
        if deadline is not None and time.monotonic() > deadline:
            raise _TimeUp

    return on_rows


def _scored_rows(out: Path, file: Path) -> list[dict[str, Any]]:
    """A scored pairs file's rows in order, their errors naming the upload by its name, not its path."""
    rows = sorted(read_jsonl(out), key=lambda r: r["row"])
    for r in rows:
        if r.get("error"):
            r["error"] = str(r["error"]).replace(str(file), file.name)
    return rows


def _count(file: Path) -> int:
    """The upload's rows, read once within the request's budget before the judge loads."""
    try:
        return sum(1 for _ in read_records(file, label=file.name)) or 1
    except DataError as exc:
        raise gr.Error(str(exc).replace(str(file), file.name)) from None


def _downloads(workspace: Workspace, out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    """The result's description beside it (what Evaluate lists) and its CSV and JSONL to download,
    named by what they are (the file and the judge), charged to the visitor's quota."""
    stem = _stem(f"{Path(meta['file']).stem}-{meta['judge']}")
    try:
        with workspace.writing():
            workspace.write_text(out.with_name(out.stem + ".meta.json"), json.dumps(meta, ensure_ascii=False))
            csv_path = write_csv_download(out.with_suffix(".csv"), rows)
        return workspace.offer([csv_path, out], [f"{stem}-scored.csv", f"{stem}-scored.jsonl"])
    except WorkspaceError as exc:
        raise gr.Error(f"The pairs are scored, but their downloads do not fit: {exc}") from None


class _TimeUp(Exception):
    """A pairs file scored past its time on a shared studio: stopped after a chunk, resumed next click."""


def time_budget(studio: Studio) -> float | None:
    """Seconds one click may score pairs for: one GPU lease on a public studio or ZeroGPU (a click
    again resumes), no limit on a local studio."""
    return GPU_MAX_S if studio.settings.public or spaces is not None else None


def batch_summary(file: str, judge: str, summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """What a scored pairs file says about its judge: counts, and the position bias over the file."""
    bias, consistency = summary.get("position_bias"), summary.get("position_consistency")
    both = summary.get("pairs_both_orders") or 0
    lines = [
        f"**{md_text(file)}** scored by **{md_text(judge)}**: {len(rows)} pairs, {summary.get('errors', 0)} with "
        f"an error; {summary.get('skipped', 0)} reused from an earlier run of the same file and settings."
    ]
    if summary.get("paused") is not None:
        lines.append(
            f"⏸ Stopped after {summary['paused']:.0f} s, the most one click may score here: click **Score all "
            "pairs** again to go on from the last pair written."
        )
    if both:
        lines.append(
            f"Position bias of the judge over this file: **{_signed(bias)}** (the mean of P_AB(A) − (1 − P_BA(A)) "
            f"over n = {both} pairs; positive: it favours the response shown first). The two orders pick the same "
            f"response in **{consistency:.0%}** of them."
        )
    else:
        lines.append("One order was scored: the position bias needs both.")
    if any(r.get("orig_preference") is not None for r in rows):
        lines.append("The file has a preference: its report card (accuracy, AUC, Brier) is in the Evaluate tab.")
    return "\n\n".join(lines)


def pair_results(workspace: Workspace) -> list[tuple[str, str]]:
    """The visitor's scored pairs files, as (label, file name), newest first."""
    found = []
    for path in pairs_folder(workspace).glob("*.jsonl"):
        try:
            meta = json.loads(path.with_name(path.stem + ".meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("scored"):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(meta.get("time", 0))))
            label = f"{str(meta.get('file'))[:60]} · {str(meta.get('judge'))[:60]} · {when}"
            found.append((float(meta.get("time", 0)), label, path.name))
    return [(label, name) for _, label, name in sorted(found, reverse=True)]


def pair_result_choices(studio: Studio, request: gr.Request = None) -> Any:
    results = pair_results(studio.workspace(request))
    return gr.Dropdown(choices=results, value=results[0][1] if results else None)


def pair_card(
    studio: Studio, choice: str | None, upload: str | None, n_boot: int = 1000, request: gr.Request = None
) -> tuple[Any, ...]:
    """The report card of scored pairs (a pairs result of this workspace, looked up by name, or an
    upload): accuracy, AUC, Brier and position consistency with intervals, the reliability plot, and
    the card as JSON and Markdown to download."""
    workspace = studio.workspace(request)
    if upload:
        path = check_upload(studio, upload)
        shown, stem = path.name, _stem(path.stem)
    elif choice:
        labels = {name: label for label, name in pair_results(workspace)}
        if choice not in labels:
            raise gr.Error(f"'{str(choice)[:80]}' is not one of your scored pairs files")
        path, shown = pairs_folder(workspace) / choice, labels[choice]
        file, judge = shown.split(" · ")[:2]
        stem = _stem(f"{Path(file).stem}-{judge}")  # what it is: the file and the judge
    else:
        raise gr.Error("Score a pairs file in the Batch tab, or upload a scored pairs file, first.")
    try:
        rows = load_scored(path)
    except (DataError, ValueError) as exc:
        raise gr.Error(str(exc).replace(str(path), shown)) from None
    if not any("p_a" in r for r in rows):
        raise gr.Error(f"{shown} holds no P(A): score it as pairs in the Batch tab first")
    report = pair_report(rows, n_boot=max(0, min(5000, int(n_boot))))
    if not report["n"]:
        raise gr.Error(f"{shown}: no pair has both a P(A) and a preference (orig_preference) to compare with")
    card = pair_markdown(report)
    try:
        files = []
        for suffix, text in ((".pair-report.json", json.dumps(report, indent=2)), (".pair-report.md", card)):
            files.append(workspace.write_text(workspace.reports / f"{stem}{suffix}", text))
        offered = workspace.offer(files)
    except WorkspaceError as exc:
        raise gr.Error(str(exc)) from None
    return f"**{md_text(shown)}**\n\n" + card, pair_plots.reliability(report["reliability"]), offered


def build_pairs_dataset(
    studio: Studio,
    path: str | None,
    source: str,
    ties: str,
    group_by: str,
    mode: str,
    validation_ratio: float,
    seed: int,
    name: str,
    columns: str = "",
    request: gr.Request = None,
) -> tuple[Any, ...]:
    """Write a pairwise fine-tuning set into the visitor's workspace: from an absolute file (every two
    answers to one question with different gold; ties left out or kept at 0.5) or from a pairs file.
    Returns the counts in words, a preview of the first pairs, and the dataset's files."""
    file = check_upload(studio, path)
    if source not in SOURCES:
        raise gr.Error("choose where the pairs come from")
    if ties not in TIES:
        raise gr.Error(f"ties are one of {', '.join(TIES)}")
    workspace = studio.workspace(request)
    try:
        folder = safe_child(workspace.datasets, name)
        if folder.exists():
            raise ValueError(f"a dataset named '{folder.name}' exists already: choose another name")
        ratio = float(validation_ratio)
        if source == FROM_SCORES:
            question = (group_by or "").strip() or None
            pairs, counts = pairs_from_scores(file, columns or None, ties=ties, group_by=question)
            built = build_pair_dataset(pairs, mode, None, None, ratio, int(seed), source=file.name)
            built.info.update({"from_scores": counts, "rows_read": counts["rows_read"]})
        else:
            _, used = pair_columns(studio, path, columns)
            built = build_pair_dataset(file, mode, None, None, ratio, int(seed), used, source=file.name)
            counts = None
        with workspace.writing():
            stats = write_dataset(folder, built, None, exclusive=True)
        offered = workspace.offer(sorted(p for p in folder.iterdir() if p.is_file()))
    except (DataError, ValueError, WorkspaceError) as exc:
        raise gr.Error(str(exc).replace(str(file), file.name)) from None
    return dataset_note(folder.name, stats, counts), preview_table(built.train), offered


def dataset_note(name: str, stats: dict[str, Any], counts: dict[str, Any] | None) -> str:
    """What was written, in words: pairs, examples (each pair in both orders), and what was left out."""
    lines = [
        f"Pairwise dataset **{md_text(name)}** written: {stats.get('train', 0)} training and "
        f"{stats.get('validation', 0)} validation examples (each pair in both orders, targets p and 1 − p). "
        "Choose it in the Fine-tune tab; the losses raft, ce and cot_raft train on pairs."
    ]
    if counts:
        lines.append(
            f"From {counts['rows_read']} rows answering {counts['questions']} questions: {counts['pairs']} pairs, "
            f"{counts['ties']} with equal gold ({counts['ties_kept']} kept at 0.5), "
            f"{counts['rows_rejected']} rows rejected."
        )
    if stats.get("rows_rejected"):
        reasons = "; ".join(f"{md_text(k, 80)} ({v})" for k, v in list(stats.get("rejected_reasons", {}).items())[:5])
        lines.append(f"⚠️ {stats['rows_rejected']} pairs rejected: {reasons}")
    return "\n\n".join(lines)


def preview_table(examples: list[dict[str, Any]]) -> pd.DataFrame:
    """The first pairs as given (order AB): the target P(A), the two responses and the instruction, cut short."""
    shown = [e for e in examples if e.get("order") == "AB"][:PREVIEW_ROWS]
    return pd.DataFrame(
        [
            {
                "P(A) target": e["gold"],
                "response A": e["item"]["orig_response_A"][:PREVIEW_CHARS],
                "response B": e["item"]["orig_response_B"][:PREVIEW_CHARS],
                "instruction": e["item"]["orig_instruction"][:PREVIEW_CHARS],
            }
            for e in shown
        ],
        columns=["P(A) target", "response A", "response B", "instruction"],
    )
