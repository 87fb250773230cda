"""Evaluate's cost at many rows (issue 22): the report card of a seeded scored file, timed in CPU
seconds, with the process's peak resident memory:

    python bench/report_time.py [--rows 200000] [--keep FILE.jsonl]

The file is N rows of a gold score 1..5 and an unrounded prediction (every prediction distinct, as
a judge's expected scores are); what is timed is what the Evaluate tab does with it: read it,
build the report (1,000 resamples), draw its figures and write its HTML and JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np

    from raft.report import build_report, load_scored, to_markdown
    from raft.report_html import figures, to_html

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--keep", help="write the scored file here (default: a temporary file)")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    gold = rng.integers(1, 6, args.rows)
    pred = np.clip(gold + rng.normal(0, 0.8, args.rows), 1, 5)
    path = Path(args.keep or tempfile.mkstemp(suffix=".jsonl")[1])
    with path.open("w") as f:
        for g, p in zip(gold, pred):
            f.write(json.dumps({"orig_score": int(g), "expected_score": float(p)}) + "\n")
    times = [time.process_time()]
    rows = load_scored(path)
    times.append(time.process_time())
    report = build_report(rows)
    times.append(time.process_time())
    figures(report)
    to_html(report, to_markdown(report))
    json.dumps(report)
    times.append(time.process_time())
    read, built, drawn = (b - a for a, b in zip(times, times[1:]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    m = report["metrics"]["kendall"]
    print(f"{args.rows:,} rows: read {read:.1f} s, report {built:.1f} s, figures and HTML {drawn:.1f} s (CPU); "
          f"peak RSS {peak:.0f} MB; kendall {m['value']:.6f} [{m['lo']:.6f}, {m['hi']:.6f}]")
    if not args.keep:
        path.unlink()


if __name__ == "__main__":
    main()
