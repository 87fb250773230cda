"""What your graders would say about your system: the mean human score (or pass rate, on a 0/1
scale) of every scored row, estimated from the few rows a person labelled plus the judge's scores
of all rows, by prediction-powered inference (PPI++, Angelopoulos, Duchi and Zrnic 2024).

With n labelled rows (label y, judge score f) and N rows the judge scored but nobody labelled,

    estimate = lambda * mean(f over the N) + mean(y - lambda * f over the n)

The second term measures and removes the judge's bias on the labelled rows, so the estimate is
unbiased however biased the judge is; lambda (power tuning, as `ppi_py` computes it) is
Cov(y, f) / ((1 + n / N) Var(f)), clipped to [0, 1], which minimises the variance
Var(y - lambda f) / n + lambda^2 Var(f) / N. lambda = 0 is the labels alone, so a judge that
does not correlate with the labels costs (asymptotically) nothing. Intervals are the paper's
normal intervals with the t quantile (n - 1 degrees of freedom) and n - 1 divisors, a
small-sample correction that matters at n = 20. The labelled rows must be a random sample of the
rows (PPI's assumption): rows picked for labelling because the judge was unsure are not.

The effective number of labels is n times the labels-only variance over the PPI variance: how
many labels alone would give an interval as narrow.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from scipy import stats

from raft.files import DataError
from raft.prometheus import mean_gold

KEY_CANDIDATES = ("idx", "question_id", "prompt_id", "orig_instruction")
"""Columns tried, in order, to match two systems' rows on the same prompt when no key is named."""


def _interval(
    estimate: float, se: float, n: int, level: float, bounds: tuple[float, float] | None = None
) -> dict[str, float]:
    """The t interval, cut to `bounds` (the scale's ends) where given: the mean cannot leave the
    scale, so the cut interval covers it whenever the uncut one does (a 4-label interval of
    [0.77, 6.67] on a 1-5 scale is [1, 5])."""
    q = float(stats.t.ppf(0.5 + level / 2, max(n - 1, 1)))
    lo, hi = estimate - q * se, estimate + q * se
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return {"estimate": float(estimate), "lo": float(lo), "hi": float(hi), "se": float(se)}


def power_lambda(y: np.ndarray, f_lab: np.ndarray, f_unlab: np.ndarray) -> float:
    """PPI++'s power-tuning lambda for a mean (as `ppi_py`'s `_calc_lam_glm`, clipped to [0, 1])."""
    n, big_n = len(y), len(f_unlab)
    if big_n == 0 or n < 2:
        return 0.0
    cov = float(np.mean((y - y.mean()) * (f_lab - f_lab.mean())))
    var = float(np.var(np.concatenate([f_lab, f_unlab]), ddof=1))
    if var <= 0:
        return 0.0
    return float(np.clip(cov / ((1 + n / big_n) * var), 0.0, 1.0))


def ppi_mean(
    y: Any,
    f_lab: Any,
    f_unlab: Any,
    level: float = 0.95,
    lam: float | None = None,
    bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The PPI++ estimate of the mean label, the labels alone, and the judge alone, from labels `y`
    with the judge's scores `f_lab` of the same rows and `f_unlab` of rows without a label;
    intervals cut to `bounds` (the lowest and highest possible mean) where given.

    Returns {ppi: {estimate, lo, hi, se, lambda}, labels_only: {estimate, lo, hi, se},
    judge_only: {estimate, bias}, n_labelled, n_unlabelled, effective_labels, labels_to_halve};
    ppi and labels_only are None under 2 labels. `bias` is the judge's mean minus the labels' mean
    on the labelled rows (what trusting the judge alone gets wrong)."""
    y, f_lab, f_unlab = (np.asarray(v, dtype=np.float64).ravel() for v in (y, f_lab, f_unlab))
    if len(y) != len(f_lab):
        raise ValueError(f"{len(y)} labels but {len(f_lab)} judge scores of the labelled rows")
    n, big_n = len(y), len(f_unlab)
    every = np.concatenate([f_lab, f_unlab])
    out: dict[str, Any] = {
        "n_labelled": n,
        "n_unlabelled": big_n,
        "level": level,
        "judge_only": {
            "estimate": float(every.mean()) if len(every) else None,
            "bias": float(f_lab.mean() - y.mean()) if n else None,
        },
        "ppi": None,
        "labels_only": None,
        "effective_labels": None,
        "labels_to_halve": None,
    }
    if n < 2:
        return out
    lam = power_lambda(y, f_lab, f_unlab) if lam is None else float(lam)
    if big_n == 0:
        lam = 0.0
    rect = y - lam * f_lab
    var_rect = float(np.var(rect, ddof=1)) / n
    var_imp = lam**2 * float(np.var(f_unlab, ddof=1)) / big_n if big_n >= 2 else 0.0
    estimate = (lam * f_unlab.mean() if big_n else 0.0) + rect.mean()
    var_labels = float(np.var(y, ddof=1)) / n
    out["ppi"] = {**_interval(estimate, np.sqrt(var_rect + var_imp), n, level, bounds), "lambda": lam}
    out["labels_only"] = _interval(y.mean(), np.sqrt(var_labels), n, level, bounds)
    var_ppi = var_rect + var_imp
    out["effective_labels"] = float(n * var_labels / var_ppi) if var_ppi > 0 else None
    out["labels_to_halve"] = labels_to_halve(n, big_n, var_rect * n, var_imp * big_n, var_ppi)
    return out


def labels_to_halve(n: int, big_n: int, s_rect: float, s_imp: float, var_now: float) -> int | None:
    """How many more rows to label (taken from the unlabelled ones) until the interval is half as
    wide, at today's lambda and spreads: the smallest k with s_rect/(n+k) + s_imp/(N-k) <= var/4.
    None when labelling every remaining row would not halve it."""
    if var_now <= 0:
        return None
    k = np.arange(1, big_n + 1)
    rest = big_n - k
    with np.errstate(divide="ignore", invalid="ignore"):
        var = s_rect / (n + k) + np.where(rest > 0, s_imp / np.maximum(rest, 1), 0.0)
    enough = np.flatnonzero(var <= var_now / 4)
    return int(k[enough[0]]) if len(enough) else None


def _split(rows: list[dict[str, Any]], gold: str, pred: str) -> tuple[list[int], list[int], int]:
    """Indices of labelled rows (gold and prediction), of unlabelled rows (prediction only), and
    the count left out (an error, or no prediction)."""
    lab, unlab, left = [], [], 0
    for i, r in enumerate(rows):
        p = mean_gold(r.get(pred))
        if r.get("error") or p is None:
            left += 1
        elif mean_gold(r.get(gold)) is None:
            unlab.append(i)
        else:
            lab.append(i)
    return lab, unlab, left


def _of(rows: list[dict[str, Any]], idx: list[int], column: str) -> np.ndarray:
    return np.asarray([mean_gold(rows[i].get(column)) for i in idx], dtype=np.float64)


def estimate_rows(
    rows: list[dict[str, Any]],
    gold: str,
    pred: str = "expected_score",
    level: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> dict:
    """`ppi_mean` of scored rows: labelled where `gold` holds a number, unlabelled where only the
    judge's `pred` does; rows with an error or no prediction are left out (`n_left_out`)."""
    lab, unlab, left = _split(rows, gold, pred)
    out = ppi_mean(_of(rows, lab, gold), _of(rows, lab, pred), _of(rows, unlab, pred), level, bounds=bounds)
    return {**out, "n_left_out": left}


def find_key(rows: list[dict[str, Any]], key: str | None) -> str:
    """The column that names a prompt: the one given, else the first of KEY_CANDIDATES present."""
    if key:
        if not any(key in r for r in rows):
            raise DataError(f"no prompt column '{key}' in the scored rows")
        return key
    for name in KEY_CANDIDATES:
        if any(r.get(name) not in (None, "") for r in rows):
            return name
    raise DataError(
        f"no prompt column found to pair the systems on (tried {', '.join(KEY_CANDIDATES)}); name one with --key"
    )


def pair_rows(
    rows: list[dict[str, Any]],
    gold: str,
    pred: str,
    system: str,
    a: str,
    b: str,
    key: str | None = None,
    level: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """System `a` minus system `b` (two values of column `system`) on the prompts both answered
    (matched on `key`): PPI on the per-prompt difference. A prompt is labelled when both of its
    rows carry a label, else only the judge's difference counts. Prompts one system lacks, or
    that a system answered twice, are left out and counted."""
    key = find_key(rows, key)
    sides: dict[str, dict[str, list[int]]] = {a: defaultdict(list), b: defaultdict(list)}
    for i, r in enumerate(rows):
        s = str(r.get(system))
        p = mean_gold(r.get(pred))
        if s in sides and not r.get("error") and p is not None:
            sides[s][str(r.get(key))].append(i)
    if not sides[a] or not sides[b]:
        missing = [s for s in (a, b) if not sides[s]]
        raise DataError(f"no scored rows with {system} = {', '.join(repr(m) for m in missing)}")
    both = sorted(set(sides[a]) & set(sides[b]))
    single = [k for k in both if len(sides[a][k]) == 1 and len(sides[b][k]) == 1]
    y, f_lab, f_unlab = [], [], []
    for k in single:
        ra, rb = rows[sides[a][k][0]], rows[sides[b][k][0]]
        diff = mean_gold(ra.get(pred)) - mean_gold(rb.get(pred))
        ga, gb = mean_gold(ra.get(gold)), mean_gold(rb.get(gold))
        if ga is not None and gb is not None:
            y.append(ga - gb)
            f_lab.append(diff)
        else:
            f_unlab.append(diff)
    if not single:
        raise DataError(f"systems {a!r} and {b!r} share no prompt (matched on '{key}')")
    out = ppi_mean(y, f_lab, f_unlab, level, bounds=bounds)
    return {
        **out,
        "a": a,
        "b": b,
        "system": system,
        "key": key,
        "n_prompts": len(single),
        "n_prompts_left_out": len(set(sides[a]) | set(sides[b])) - len(single),
    }


def estimate(
    rows: list[dict[str, Any]],
    gold: str,
    pred: str = "expected_score",
    by: str | None = None,
    pair: tuple[str, str] | None = None,
    key: str | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """The estimate over all rows, per value of `by` where asked, and `pair` (two values of `by`)
    compared on the same prompts. What `python -m raft estimate` prints."""
    if not any(gold in r for r in rows):
        raise DataError(f"no gold column '{gold}' in the scored rows")
    if not any(pred in r for r in rows):
        raise DataError(f"no prediction column '{pred}' in the scored rows")
    from raft.passfail import gold_levels
    from raft.report import judge_scale

    scale = judge_scale(rows)
    rows = gold_levels(rows, gold, scale)
    known = any(isinstance(r.get("probs"), list) and r["probs"] for r in rows)  # else the scale is a guess
    bounds = (float(scale[0]), float(scale[1])) if known else None
    out = {"gold": gold, "pred": pred, **estimate_rows(rows, gold, pred, level, bounds)}
    if by:
        members: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            members[str(r.get(by))].append(r)
        out["groups"] = {
            by: {value: estimate_rows(group, gold, pred, level, bounds) for value, group in sorted(members.items())}
        }
    if pair:
        if not by:
            raise DataError("--pair names two values of the --by column (the system); give --by too")
        span = bounds and (bounds[0] - bounds[1], bounds[1] - bounds[0])
        out["pair"] = pair_rows(rows, gold, pred, by, pair[0], pair[1], key, level, span)
    return out


def _num(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def summary(result: dict[str, Any]) -> str:
    """One paragraph a person reads: the PPI estimate, the labels alone, the judge alone, what the
    judge's scores are worth in labels, and how many more labels would halve the interval."""
    n, big_n = result["n_labelled"], result["n_unlabelled"]
    level = int(round(result.get("level", 0.95) * 100))
    if result["ppi"] is None:
        return f"Label at least 2 rows to estimate the mean (now {n} labelled, {big_n} judged only)."
    p, lab, judge = result["ppi"], result["labels_only"], result["judge_only"]
    lines = [
        f"Mean human score, {level}% intervals, from {n} labelled and {big_n} judged-only rows:",
        "",
        "| estimate | value | interval | width |",
        "|---|---|---|---|",
        f"| labels + judge (PPI++, lambda {p['lambda']:.2f}) | {p['estimate']:.3f} | [{p['lo']:.3f}, {p['hi']:.3f}] "
        f"| {p['hi'] - p['lo']:.3f} |",
        f"| labels alone (n = {n}) | {lab['estimate']:.3f} | [{lab['lo']:.3f}, {lab['hi']:.3f}] "
        f"| {lab['hi'] - lab['lo']:.3f} |",
        f"| judge alone (n = {n + big_n}) | {judge['estimate']:.3f} | bias on the labelled rows "
        f"{judge['bias']:+.3f} | - |",
        "",
    ]
    eff = result["effective_labels"]
    if eff is not None:
        lines.append(f"Your {n} labels and {big_n} judged rows are worth {eff:.0f} labels alone.")
    more = result["labels_to_halve"]
    lines.append(
        f"About {more} more labels (random rows) would halve the interval."
        if more is not None
        else "Labelling every remaining row would not halve the interval."
    )
    return "\n".join(lines) + "\n"


def project_estimate(project: Any, level: float = 0.95) -> dict[str, Any]:
    """The estimate of a labelling project (`raft.labels.LabelProject`): its held-out labels are
    the labelled rows (drawn at random, as PPI needs), every other row counts by the judge's score
    alone. Training labels are left out of the rectifier: they are picked where the judge is
    unsure, not at random, and would bias it. `n_training_labels` says how many that is."""
    labels, held = project.labels(), project.heldout
    lab = [k for k in project.keys if k in labels and k in held]
    chosen = set(lab)
    unlab = [k for k in project.keys if k not in chosen]
    out = ppi_mean(
        [labels[k] for k in lab],
        [float(project.rows[k]["expected_score"]) for k in lab],
        [float(project.rows[k]["expected_score"]) for k in unlab],
        level,
        bounds=(float(project.scale[0]), float(project.scale[1])),
    )
    out["n_training_labels"] = sum(1 for k in labels if k not in held)
    out["n_heldout_rows"] = len(held)
    return out
