"""What a hostile small file costs a launched public studio (issue 22), measured end to end over
HTTP on one studio served from this process (so the process's resident memory is the server's):

    python bench/budgets.py [--rows-cap 1000000] [--skip-evaluate]

1. the under-cap bomb (a 4 KB parquet: 1,150 rows, nine dictionary-encoded fields of 99,000
   characters, every field and row under its cap; about 1 GB decoded) previewed by three sessions
   at once: resident memory before, at the peak, just after and 60 s after;
2. Evaluate on a scored CSV of 200,000 rows and of the row cap (1,000,000 rows): answer, time,
   peak rise of resident memory;
3. disk after the bomb to Align *Start project* and Batch (the workspace's bytes);
4. the total cap under forged sessions: ten sessions, each sending a 2 KB file whose Align project
   would write 5.4 MB, against a total cap 12 MB above what is held, beside a workspace idle for
   22 minutes: bytes written, answers, and whether the idle workspace is still there.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def main() -> None:
    import numpy as np

    from raft.models import default_model_dir
    from tests.helpers import under_cap_bomb
    from tests.security.conftest import _launch, raw_call
    from tests.security.registry import text_of, workspace_of
    from tests.security.round_two import folder_bytes, peak_rss, rss_mb, upload

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-cap", type=int, default=1_000_000)
    parser.add_argument("--skip-evaluate", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="raft-budgets-"))
    os.environ["GRADIO_TEMP_DIR"] = str(tmp / "gradio")
    env = {"SPACE_ID": "bench/studio", "RAFT_MAX_UPLOAD_MB": "50"}
    demo, studio, url = _launch(tmp / "root", default_model_dir(), env)
    print(f"public studio: request budget {studio.settings.request_mb} MB decoded, "
          f"{studio.settings.request_rows:,} rows; quota {studio.settings.workspace_mb} MB, "
          f"total {studio.settings.total_mb} MB")

    def short(answer):
        kind, payload = answer
        return f"{kind}: {text_of(payload)[:110]}"

    # 1. the under-cap bomb, three sessions at once
    bomb = under_cap_bomb(tmp / "bomb.parquet")
    file = upload(url, bomb)
    preview = ["uploaded file", file, "", 40, "", "score_only", "", "none", 0, 0.1, 0, None, *[""] * 6]
    gc.collect()
    before = rss_mb()

    def three():
        with ThreadPoolExecutor(3) as pool:
            return list(pool.map(lambda s: raw_call(url, "dataset_preview", preview, session_hash=s), "abc"))

    started = time.time()
    peak, answers = peak_rss(three)
    took = time.time() - started
    gc.collect()
    after = rss_mb()
    time.sleep(60)
    gc.collect()
    later = rss_mb()
    print(f"\n1. bomb ({bomb.stat().st_size:,} bytes) previewed by 3 sessions at once, {took:.1f} s:")
    print(f"   RSS {before} MB before, peak {peak} MB (+{peak - before}), {after} MB just after, {later} MB 60 s after")
    print(f"   previews held: {studio.previews.held_bytes():,} bytes; answers: {Counter(map(short, answers))}")

    # 2. Evaluate at 200,000 rows and at the row cap
    if not args.skip_evaluate:
        for n in (200_000, args.rows_cap):
            rng = np.random.default_rng(1)
            gold = rng.integers(1, 6, n)
            pred = np.clip(gold + rng.normal(0, 0.8, n), 1, 5).round(2)
            path = tmp / f"scored-{n}.csv"
            path.write_text("orig_score,expected_score\n" + "".join(f"{g},{p}\n" for g, p in zip(gold, pred)))
            file = upload(url, path)
            gc.collect()
            before = rss_mb()
            started = time.time()
            peak, answer = peak_rss(
                lambda file=file: raw_call(
                    url, "evaluate", ["(none)", file, "(none)", None, "", "expected_score", "", None], timeout=3600
                )
            )
            said = answer[1][0][:80].replace("\n", " ") if answer[0] == "complete" else short(answer)
            size = path.stat().st_size / 2**20
            print(f"\n2. Evaluate, {n:,} rows ({size:.1f} MB CSV): {time.time() - started:.0f} s, ", end="")
            print(f"RSS peak +{peak - before} MB: {said}")

    # 3. disk after the bomb to Align and Batch
    file = upload(url, bomb)
    session = uuid.uuid4().hex
    align = raw_call(url, "align_create", ["(none)", file, "default model", 0.3, None], session_hash=session)
    batch = [file, "", "default model", "score_only", 8, "orig_score", None, "hf", None, *[""] * 6]
    scored = raw_call(url, "score_batch", batch, session_hash=session)
    held = folder_bytes(workspace_of(studio, f"session:{session}"))
    print(f"\n3. bomb to Align and Batch: workspace holds {held:,} bytes")
    print(f"   Align: {short(align)}\n   Batch: {short(scored)}")

    # 4. the total cap under forged sessions, beside a workspace idle for 22 minutes
    victim = workspace_of(studio, "session:victim")
    (victim / "labels" / "p").mkdir(parents=True)
    (victim / "labels" / "p" / "labels.jsonl").write_text('{"key": 1, "score": 4}\n')
    idle = time.time() - 22 * 60
    os.utime(victim, (idle, idle))
    wide = upload(url, under_cap_bomb(tmp / "wide.parquet", rows=60, size=10_000))
    studio.disk.total_bytes = studio.disk.used() + 12 * 2**20
    start = folder_bytes(studio.root / "workspaces")
    answers = [
        raw_call(url, "align_create", ["(none)", wide, "default model", 0.3, None], session_hash=f"forged-{i}")
        for i in range(10)
    ]
    grown = folder_bytes(studio.root / "workspaces") - start
    print(f"\n4. ten forged sessions, a total cap 12 MB above what is held: {grown / 2**20:.1f} MB written; "
          f"idle workspace kept: {(victim / 'labels' / 'p' / 'labels.jsonl').is_file()}")
    for said, count in Counter(
        "project made" if kind == "complete" else short((kind, payload)) for kind, payload in answers
    ).items():
        print(f"   {count} x {said}")
    demo.close()


if __name__ == "__main__":
    main()
