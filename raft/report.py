"""The judge report card: every agreement metric with its bootstrap interval, overall and per
group, calibration of the score distribution, and two judges compared on the rows both scored.

`build_report` returns plain data (written as JSON); `to_markdown` (`raft.report_markdown`) and
`raft.report_html.to_html` render it. `python -m raft report SCORED.jsonl` is the command-line twin.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from raft import calibration as cal
from raft.files import DataError, read_records
from raft.gold import GOLD_CANDIDATES
from raft.insample import training_mask
from raft.levels import level_agreement
from raft.passfail import gold_levels, has_words
from raft.prometheus import mean_gold
from raft.report_markdown import to_markdown
from raft.stats import bootstrap, compare


def load_scored(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a scored jsonl (or any row file), a malformed line refused with its row number."""
    rows = []
    for rec in read_records(path):
        if rec.error is not None:
            raise rec.error
        rows.append(rec.data)
    return rows


def find_gold(rows: list[dict[str, Any]], gold: str | None = None) -> str:
    """The gold column: the one named, else the first of GOLD_CANDIDATES that the rows hold."""
    if gold:
        if not any(gold in r for r in rows):
            raise DataError(f"no gold column '{gold}' in the scored rows")
        return gold
    for name in GOLD_CANDIDATES:
        if any(mean_gold(r.get(name)) is not None for r in rows) or has_words(rows, name):
            return name
    raise DataError(f"no gold column found (tried {', '.join(GOLD_CANDIDATES)}); name one with --gold")


def _key(row: dict[str, Any], i: int) -> Any:
    return row.get("row", i + 1)


def paired(rows: list[dict[str, Any]], gold: str, pred: str) -> tuple[list[Any], np.ndarray, np.ndarray, list[int]]:
    """(keys, gold, pred, indices) of the rows with both a gold and a prediction."""
    keys, g, p, idx = [], [], [], []
    for i, r in enumerate(rows):
        gv, pv = mean_gold(r.get(gold)), mean_gold(r.get(pred))
        if gv is not None and pv is not None and not r.get("error"):
            keys.append(_key(r, i))
            g.append(gv)
            p.append(pv)
            idx.append(i)
    return keys, np.asarray(g), np.asarray(p), idx


def fit_calibration(
    rows: list[dict[str, Any]],
    gold: str | None = None,
    coverage: float = 0.9,
    fit_fraction: float = 0.5,
    seed: int = 0,
    scale: tuple[int, int] | None = None,
) -> cal.Calibration:
    """A calibration fitted on the scored rows that have a gold score and a score distribution
    (`python -m raft calibrate` and the studio's *Fit calibration*)."""
    gold = find_gold(rows, gold)
    keys, g, _, idx = paired(rows, gold, "expected_score")
    keep = [j for j, i in enumerate(idx) if isinstance(rows[i].get("probs"), list)]
    if not keep:
        raise DataError(f"no row has both a gold '{gold}' and a score distribution 'probs'")
    probs = np.asarray([rows[idx[j]]["probs"] for j in keep], dtype=np.float64)
    rows_used = [int(keys[j]) for j in keep]
    scale = scale or scale_of_rows([rows[idx[j]] for j in keep])
    return cal.fit(probs, g[keep], rows_used, scale, coverage, fit_fraction, seed)


def scale_of_rows(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """The judge's scale read off its scored rows: K score probabilities and the most likely score
    (`mode_score`, the level of the largest probability) fix the lowest level, so a 0/1 judge is
    told from a 1/2 one. 1..K when no row says (or rows disagree)."""
    width = len(rows[0]["probs"])
    lows = {
        int(r["mode_score"]) - int(np.argmax(r["probs"]))
        for r in rows
        if isinstance(r.get("mode_score"), (int, float)) and isinstance(r.get("probs"), list) and r["probs"]
    }
    low = lows.pop() if len(lows) == 1 else 1
    return (low, low + width - 1)


def judge_scale(rows: list[dict[str, Any]], calibration: cal.Calibration | None = None) -> tuple[int, int]:
    """The scale of the judge that scored `rows`: the calibration's, else read off the rows that
    carry probabilities (`scale_of_rows`), else 0..1 (what pass/fail words mean with no judge)."""
    if calibration is not None:
        return tuple(calibration.scale)
    with_probs = [r for r in rows if isinstance(r.get("probs"), list) and r["probs"] and not r.get("error")]
    return scale_of_rows(with_probs) if with_probs else (0, 1)


def calibration_section(probs: np.ndarray, gold: np.ndarray, scale: tuple[int, int]) -> dict[str, Any]:
    """ECE, Brier, the reliability table and expected score against mean gold by bins of width 0.5."""
    classes = cal.gold_classes(gold, scale)
    value, table = cal.ece(probs, classes)
    expected = cal.expected_scores(probs, scale)
    edges = np.arange(scale[0], scale[1] + 0.5, 0.5)
    which = np.clip(np.digitize(expected, edges[1:-1]), 0, len(edges) - 2)
    by_bin = [
        {
            "lo": float(edges[b]),
            "hi": float(edges[b + 1]),
            "n": int((which == b).sum()),
            "expected": float(expected[which == b].mean()),
            "gold": float(gold[which == b].mean()),
        }
        for b in range(len(edges) - 1)
        if (which == b).any()
    ]
    return {"ece": value, "brier": cal.brier(probs, classes), "reliability": table, "expected_vs_gold": by_bin}


def build_report(
    rows: list[dict[str, Any]],
    gold: str | None = None,
    pred: str = "expected_score",
    by: list[str] | tuple[str, ...] = (),
    other: list[dict[str, Any]] | None = None,
    names: tuple[str, str] = ("A", "B"),
    calibration: cal.Calibration | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    scale: tuple[int, int] | None = None,
    trained: set[str] | None = None,
    trained_name: str = "the judge",
) -> dict[str, Any]:
    """The report card of scored rows (and, with `other`, judge A against judge B).

    `scale` is the judge's scale, by default the calibration's, else 1..K for K score probabilities.
    `trained` (the hashes of `raft.insample`, named `trained_name`): how many rows were the judge's
    training rows, and the metrics on the others on their own.
    """
    if n_boot < 1000:
        raise ValueError(f"n_boot {n_boot}: at least 1,000 resamples are needed for a 95% interval")
    gold = find_gold(rows, gold)
    rows = gold_levels(rows, gold, scale or judge_scale(rows, calibration))
    keys, g, p, idx = paired(rows, gold, pred)
    if len(g) < 2:
        raise DataError(f"only {len(g)} rows have both a gold '{gold}' and a prediction '{pred}'")
    report: dict[str, Any] = {
        "gold": gold,
        "pred": pred,
        "names": list(names),
        "n_rows": len(rows),
        "n": len(g),
        "n_errors": sum(1 for r in rows if r.get("error")),
        "n_boot": n_boot,
        "seed": seed,
        "level": level,
        "metrics": bootstrap(g, p, n_boot, seed, level),
        "points": {"gold": g.tolist(), "pred": p.tolist()},
    }
    intervals = intervals_section(rows, idx, g)
    if intervals is not None:
        report["intervals"] = intervals
    report["groups"] = {column: groups_section(rows, idx, column, g, p, n_boot, seed, level) for column in by}
    scale = _add_calibration(report, rows, idx, g, calibration, scale)
    report["levels"] = level_agreement(g, p, scale, n_boot, seed, level)
    if trained is not None:
        scored = [rows[i] for i in idx]
        report["in_sample"] = in_sample_section(scored, g, p, trained, trained_name, n_boot, seed, level)
    if other is not None:
        report["compare"] = compare_section(keys, g, p, other, gold, pred, n_boot, seed, level)
    return report


def intervals_section(rows: list[dict[str, Any]], idx: list[int], g: np.ndarray) -> dict[str, Any] | None:
    """How often the scored rows' own intervals cover the gold (None unless every row has one)."""
    intervals = [rows[i].get("interval") for i in idx]
    if not all(isinstance(v, list) and len(v) == 2 for v in intervals):
        return None
    lo, hi = np.array(intervals).T
    return {"coverage": float(((lo <= g) & (g <= hi)).mean()), "lo": lo.tolist(), "hi": hi.tolist()}


def groups_section(
    rows: list[dict[str, Any]],
    idx: list[int],
    column: str,
    g: np.ndarray,
    p: np.ndarray,
    n_boot: int,
    seed: int,
    level: float,
) -> dict[str, Any]:
    """The metrics of each value of `column` on its own, values in sorted order."""
    members: dict[str, list[int]] = defaultdict(list)
    for j, i in enumerate(idx):
        members[str(rows[i].get(column))].append(j)
    return {
        value: {"n": len(js), "metrics": bootstrap(g[js], p[js], n_boot, seed, level)}
        for value, js in sorted(members.items())
    }


def _add_calibration(
    report: dict[str, Any],
    rows: list[dict[str, Any]],
    idx: list[int],
    g: np.ndarray,
    calibration: cal.Calibration | None,
    scale: tuple[int, int] | None,
) -> tuple[int, int] | None:
    """The scale, calibration and calibration-file sections when every row has a score distribution
    of one width; returns the scale the levels are read on (the one given where there are none)."""
    probs = [rows[i].get("probs") for i in idx]
    if not (all(isinstance(q, list) for q in probs) and len({len(q) for q in probs}) == 1):
        return scale
    probs_arr = np.asarray(probs, dtype=np.float64)
    if calibration is not None:
        check_calibration_scale(calibration, probs_arr.shape[1])
    scale = scale or (tuple(calibration.scale) if calibration else scale_of_rows([rows[i] for i in idx]))
    report["scale"] = list(scale)
    report["calibration"] = calibration_section(probs_arr, g, scale)
    if calibration is not None:
        held = [j for j, i in enumerate(idx) if int(_key(rows[i], i)) not in set(calibration.fit_rows)]
        report["calibration_file"] = {
            "temperature": calibration.temperature,
            "coverage_target": calibration.coverage,
            "halfwidth": calibration.halfwidth,
            "rows_not_used_to_fit": cal.evaluate(calibration, probs_arr[held], g[held]),
        }
    return scale


def in_sample_section(
    rows: list[dict[str, Any]],
    g: np.ndarray,
    p: np.ndarray,
    trained: set[str],
    name: str,
    n_boot: int,
    seed: int,
    level: float,
) -> dict[str, Any]:
    """How many of the rows with gold the judge trained on, and the metrics on the rest alone."""
    mask = np.asarray(training_mask(rows, trained), dtype=bool)
    rest = np.flatnonzero(~mask)
    return {
        "judge": name,
        "n_training": int(mask.sum()),
        "n_rest": int(len(rest)),
        "metrics_rest": bootstrap(g[rest], p[rest], n_boot, seed, level) if len(rest) >= 2 else None,
    }


def check_calibration_scale(calibration: cal.Calibration, levels: int) -> None:
    """Refuse a calibration fitted on another scale than the rows' score distributions, saying both."""
    lo, hi = (int(v) for v in calibration.scale)
    if hi - lo + 1 != levels:
        raise DataError(
            f"the calibration is for the scale {lo}..{hi} ({hi - lo + 1} levels), but the rows' score distributions "
            f"have {levels} levels: fit a calibration on this judge's scored rows (Fit calibration, `raft calibrate`)"
        )


def compare_section(
    keys: list[Any],
    g: np.ndarray,
    p: np.ndarray,
    other: list[dict[str, Any]],
    gold: str,
    pred: str,
    n_boot: int,
    seed: int,
    level: float,
) -> dict[str, Any]:
    """Judge A (these rows) against judge B (`other`) on the rows both scored, matched by row."""
    other_keys, _, other_p, _ = paired(other, gold, pred)
    theirs = dict(zip(other_keys, other_p))
    both = [j for j, k in enumerate(keys) if k in theirs]
    if len(both) < 2:
        raise DataError(f"the two scored files share {len(both)} rows with gold; nothing to compare")
    b = np.asarray([theirs[keys[j]] for j in both])
    return {"n": len(both), "metrics": compare(g[both], p[both], b, n_boot, seed, level)}


def write_report(report: dict[str, Any], out: str | Path) -> Path:
    """Write the report as .json, .md or .html (one self-contained file) by the suffix of `out`."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".json":
        out.write_text(json.dumps(report, indent=2))
    elif suffix == ".md":
        out.write_text(to_markdown(report))
    elif suffix == ".html":
        from raft.report_html import to_html

        out.write_text(to_html(report, to_markdown(report)), encoding="utf-8")
    else:
        raise DataError(f"unsupported report type '{suffix}'; use .json, .md or .html", str(out))
    return out
