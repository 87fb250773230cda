"""The third round of attacks (issue 22), replayed against the launched studios: the under-cap
bomb (every field and row under its caps, many rows) previewed by three sessions at once and sent
to Evaluate and Align, with the server's memory measured; Evaluate's bootstrap at 100,000 rows;
Align and Batch writing past the quota from a small file; forged sessions against the total cap
beside a visitor idle for 22 minutes; a full workspace charged for Align's comparison; uploads alone
against the cap on Gradio's cache; Align's "continue the project's judge" on a public studio that
trains; a formula in a column name; a relative file path."""

import csv
import gc
import io
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from raft.labels import LabelProject
from raft.models import JUDGE_MANIFEST
from raft.synthetic import generate_rows
from tests.helpers import under_cap_bomb
from tests.security.conftest import raw_call, signed_in
from tests.security.registry import EVERY, PUBLIC, attack, config_yaml, refused, text_of, workspace_of
from tests.security.round_two import download, folder_bytes, peak_rss, rss_mb, scored, upload

BUDGET = "budget for one request"
BOMB_MEMORY_MB = 1500
"""What three concurrent bomb previews plus Evaluate, Align and Batch may add to the server's memory at
the peak: each request decodes at most its 128 MiB budget before it is refused (the old studio held
about 1 GB per request, 6 to 9 GB for three sessions)."""
HELD_MB = 300
"""What may stay held once the requests are answered (previews of refused files are not kept)."""
PREVIEW = ["", "score_only", "", "none", 0, 0.1, 0, None, *[""] * 6]


def preview_args(file) -> list:
    return ["uploaded file", file, "", 40, *PREVIEW]


@attack("under-cap bomb (4 KB, 1 GB decoded, 1,150 rows): 3 Previews, Evaluate, Align, Batch")
def _(url, studio, mode, tmp):
    file = upload(url, under_cap_bomb(tmp / "bomb.parquet"))
    gc.collect()
    before, held_before = rss_mb(), studio.previews.held_bytes()

    def send():
        calls = [("dataset_preview", preview_args(file), uuid.uuid4().hex) for _ in range(3)]
        batch = [file, "", "default model", "score_only", 8, "orig_score", None, "hf", None, *[""] * 6]
        calls += [
            ("evaluate", ["(none)", file, "(none)", None, "", "expected_score", "", None], uuid.uuid4().hex),
            ("align_create", ["(none)", file, "default model", 0.3, None], uuid.uuid4().hex),
            ("score_batch", batch, uuid.uuid4().hex),
        ]
        with ThreadPoolExecutor(len(calls)) as pool:
            return list(pool.map(lambda c: raw_call(url, c[0], c[1], session_hash=c[2]), calls))

    batch_before = set((studio.root / "batch").rglob("*")) if mode == "local" else set()
    peak, answers = peak_rss(send)
    for kind, payload in answers:
        refused(kind, payload, BUDGET)
    if mode == "local":
        assert set((studio.root / "batch").rglob("*")) == batch_before, "the refused batch wrote rows"
    time.sleep(1)
    gc.collect()
    after = rss_mb()
    assert peak - before < BOMB_MEMORY_MB, f"resident memory rose by {peak - before} MB"
    assert after - before < HELD_MB, f"{after - before} MB still held after the answers"
    assert studio.previews.held_bytes() == held_before, "a refused preview is held"
    return f"refused ({BUDGET}); server RSS {before} MB before, peak +{peak - before} MB, after +{after - before} MB"


@attack("Evaluate at 100,000 rows (a 0.6 MB CSV): the bootstrap in blocks", modes=("local",))
def _(url, studio, mode, tmp):
    import numpy as np

    rng = np.random.default_rng(1)
    gold = rng.integers(1, 6, 100_000)
    pred = np.clip(gold + rng.normal(0, 0.8, gold.size), 1, 5).round(1)
    path = tmp / "big.csv"
    path.write_text("orig_score,expected_score\n" + "".join(f"{g},{p}\n" for g, p in zip(gold, pred)))
    file = upload(url, path)
    gc.collect()
    before = rss_mb()
    peak, (kind, payload) = peak_rss(
        lambda: raw_call(url, "evaluate", ["(none)", file, "(none)", None, "", "expected_score", "", None], 900)
    )
    assert kind == "complete", text_of(payload)
    assert "n = 100000" in payload[0] or "n = 100,000" in payload[0], payload[0][:300]
    assert peak - before < 700, f"resident memory rose by {peak - before} MB (1.6 GB before the fix)"
    return f"report card served; server RSS peak +{peak - before} MB"


def _over_quota(studio, mb: int):
    saved = studio.settings.workspace_mb
    studio.settings.workspace_mb = mb
    return saved


@attack("Align Start project and Batch writing past a 2 MB quota from a 2 KB file, twice", modes=PUBLIC)
def _(url, studio, mode, tmp):
    session = uuid.uuid4().hex
    file = upload(url, under_cap_bomb(tmp / "wide.parquet", rows=60, size=10_000))  # 5.4 MB decoded
    saved = _over_quota(studio, 2)
    try:
        answers = [raw_call(url, "align_create", ["(none)", file, "default model", 0.3, None], session_hash=session)]
        batch = [file, "", "default model", "score_only", 8, "orig_score", None, "hf", None, *[""] * 6]
        answers.append(raw_call(url, "score_batch", batch, session_hash=session))
        answers += [raw_call(url, "align_create", ["(none)", file, "default model", 0.3, None], session_hash=session)]
        answers.append(raw_call(url, "score_batch", batch, session_hash=session))
        held = folder_bytes(workspace_of(studio, f"session:{session}"))
    finally:
        studio.settings.workspace_mb = saved
    for kind, payload in answers:
        refused(kind, payload, "workspace is full", "workspace full")
    assert held <= 2 * 2**20, f"the workspace holds {held / 2**20:.1f} MB over a 2 MB quota"
    projects = workspace_of(studio, f"session:{session}") / "labels"
    assert not projects.exists() or not any(projects.iterdir()), "a refused project left files"
    return f"refused as written, twice each; the workspace holds {held / 2**20:.2f} MB of 2 MB"


@attack("Batch output past a 1 MB quota from a small file: stopped as written, the rows scored kept", modes=PUBLIC)
def _(url, studio, mode, tmp):
    import pyarrow as pa
    import pyarrow.parquet as pq

    session = uuid.uuid4().hex
    table = pa.Table.from_pylist(generate_rows(60, seed=4))
    padding = pa.array(["p" * 50_000]).dictionary_encode().dictionary  # one string, carried by every row
    column = pa.DictionaryArray.from_arrays(pa.array([0] * 60, pa.int32()), padding)
    pq.write_table(table.append_column("notes", column), tmp / "padded.parquet", compression="zstd")
    file = upload(url, tmp / "padded.parquet")  # 3 MB decoded, each row scoreable
    root = workspace_of(studio, f"session:{session}")
    saved = _over_quota(studio, 1)
    try:
        batch = [file, "", "default model", "score_only", 8, "orig_score", None, "hf", None, *[""] * 6]
        kind, payload = raw_call(url, "score_batch", batch, 600, session_hash=session)
        held = folder_bytes(root)
    finally:
        studio.settings.workspace_mb = saved
    outcome = refused(kind, payload, "workspace full")
    assert "rows scored before it filled are kept" in text_of(payload), text_of(payload)
    assert held <= 2**20, f"the workspace holds {held / 2**20:.2f} MB over a 1 MB quota"
    [out] = (root / "batch").glob("*.jsonl")
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert kept and all(row.get("expected_score") is not None for row in kept), "no scored row was kept"
    return f"{outcome}: stopped as written, {len(kept)} of 60 rows kept; {held / 2**20:.2f} MB of 1 MB"


@attack("forged sessions against the total cap beside a visitor idle for 22 minutes", modes=PUBLIC)
def _(url, studio, mode, tmp):
    victim = workspace_of(studio, f"session:victim-{uuid.uuid4().hex[:8]}")
    labels = victim / "labels" / "p" / "labels.jsonl"
    labels.parent.mkdir(parents=True)
    labels.write_text('{"kind": "label", "key": 1, "score": 4}\n')
    idle = time.time() - 22 * 60
    os.utime(victim, (idle, idle))
    file = upload(url, under_cap_bomb(tmp / "wide.parquet", rows=60, size=10_000))
    disk = studio.disk
    saved = disk.total_bytes
    disk.total_bytes = disk.used() + 3 * 2**20
    start = folder_bytes(studio.root / "workspaces")
    try:
        answers = [
            raw_call(url, "align_create", start, session_hash=f"forged-{uuid.uuid4()}")
            for start in [["(none)", file, "default model", 0.3, None]] * 5
        ]
        grown = folder_bytes(studio.root / "workspaces") - start
    finally:
        disk.total_bytes = saved
    for kind, payload in answers:
        refused(kind, payload, "disk for visitors is full", "workspace is full")
    assert labels.is_file(), "a refused write evicted a visitor idle for 22 minutes"
    assert grown <= 3 * 2**20, f"{grown / 2**20:.1f} MB written under a 3 MB cap"
    return f"refused at the total cap ({grown / 2**20:.2f} MB of 3 MB written); the idle visitor's labels kept"


def _project_with_labels(folder: Path, n: int = 12) -> LabelProject:
    rows = [
        {**r, "row": i + 1, "expected_score": 3.0, "probs": [0.2] * 5} for i, r in enumerate(generate_rows(n, seed=9))
    ]
    project = LabelProject.create(folder, rows, judge="default model", heldout=0.5, seed=0)
    for key in project.keys:
        project.label(key, 3)
    return project


@attack("Align's comparison and labels in a workspace already at its quota", modes=PUBLIC)
def _(url, studio, mode, tmp):
    session = uuid.uuid4().hex
    root = workspace_of(studio, f"session:{session}")
    project = _project_with_labels(root / "labels" / "full")
    filler = root / "batch" / "filler.bin"
    filler.parent.mkdir(parents=True, exist_ok=True)
    saved = _over_quota(studio, 1)
    try:
        filler.write_bytes(b"x" * (2**20 - folder_bytes(root) - 100))
        raw_call(url, "align_projects", [None], session_hash=session)  # the page's list of projects, loaded
        kind, payload = raw_call(url, "align_compare", ["full", "default model"], session_hash=session)
        held = folder_bytes(root)
    finally:
        studio.settings.workspace_mb = saved
    outcome = refused(kind, payload, "workspace is full")
    assert held <= 2**20, f"{held} bytes over a 1 MB quota"
    assert not list(project.folder.glob("after-*")), "the refused comparison left its files"
    return outcome + " (nothing of the comparison kept)"


@attack("20 uploads with no event called, against the cap on Gradio's cache", modes=PUBLIC)
def _(url, studio, mode, tmp):
    budget = getattr(studio, "uploads", None)  # absent before uploads were counted
    blobs = [os.urandom(8).hex().encode() + b"y" * 900_000 for _ in range(20)]  # distinct: Gradio keeps one of equals
    folder = Path(os.environ.get("GRADIO_TEMP_DIR") or Path("/tmp/gradio"))
    before = folder_bytes(folder)
    if budget is not None:
        saved = budget.total_bytes, budget.age_s
        budget.total_bytes, budget.age_s = before + 3 * 2**20, 1e9
    codes = []
    try:
        with signed_in(url, 60) as http:
            for i in range(20):
                answer = http.post("gradio_api/upload", files={"files": (f"b{i}.jsonl", blobs[i])})
                codes.append(answer.status_code)
                last = answer.text
    finally:
        if budget is not None:
            budget.total_bytes, budget.age_s = saved
    grown = folder_bytes(folder) - before
    assert grown <= 3 * 2**20, f"uploads alone added {grown / 2**20:.1f} MB past a 3 MB cap"
    assert codes.count(507) >= 15 and "upload space is full" in last, codes
    return f"{codes.count(200)} accepted, then HTTP 507 (upload space is full); {grown / 2**20:.1f} MB of 3 MB"


@attack("Align 'continue the project's judge' on a public studio that trains", modes=("owner",))
def _(url, studio, mode, tmp):
    run = studio.runs_dir / "run-aligned"
    (run / "model").mkdir(parents=True, exist_ok=True)
    (run / JUDGE_MANIFEST).write_text(json.dumps({"scale": [1, 5], "mode": "score_only", "loss": "raft"}))
    root = workspace_of(studio, "user:owner")
    project = _project_with_labels(root / "labels" / f"cont-{uuid.uuid4().hex[:6]}")
    project.meta["judge"] = "run: run-aligned"
    (project.folder / "project.json").write_text(json.dumps(project.meta))
    raw_call(url, "align_projects", [None], session_hash=(session := uuid.uuid4().hex))  # the page's list, loaded
    args = [project.folder.name, "continue", 4, 1]  # project, start from, batch size, accumulation
    kind, payload = raw_call(url, "align_finetune", args, session_hash=session)
    assert kind == "complete", text_of(payload)
    base, dataset = payload[3], payload[1]["value"] if isinstance(payload[1], dict) else payload[1]
    assert base == "run: run-aligned", base
    assert str(studio.root) not in json.dumps(payload), "the page shows the data root"
    text = config_yaml(studio, data=dataset, output_dir="run-continued", base_model=f"'{base}'", max_steps=1)
    kind, payload = raw_call(url, "train_start", [text])
    assert kind == "complete", f"Start refused the Base model box: {text_of(payload)}"
    studio.jobs.stop(payload[0] if isinstance(payload, list) else payload, timeout=30)
    return "Base model 'run: run-aligned' (a name); Start takes it"


@attack("a formula in a column name, in the Batch CSV's header row", modes=EVERY)
def _(url, studio, mode, tmp):
    rows = generate_rows(4, seed=6)
    for row in rows:
        row['=HYPERLINK("http://evil.example","x")'] = "note"
        row["@SUM(A1)"] = 1
    _, files = scored(url, tmp, uuid.uuid4().hex, rows)
    header = next(csv.reader(io.StringIO(download(url, files["csv"]).decode("utf-8"))))
    assert "'=HYPERLINK(\"http://evil.example\",\"x\")" in header and "'@SUM(A1)" in header, header
    assert not any(name.startswith(("=", "+", "-", "@")) for name in header), header
    return "neutralised with ' in the header (cells were already)"


@attack("a relative file path sent as an upload", modes=EVERY)
def _(url, studio, mode, tmp):
    fake = {"path": "data/rows.csv", "meta": {"_type": "gradio.FileData"}}
    kind, payload = raw_call(url, "batch_columns", [fake])
    text = text_of(payload)
    assert os.getcwd() not in text and str(Path.cwd().parent) + "/" not in text, text
    return refused(kind, payload, "not uploaded to this studio")


def test_round_three_is_registered():
    from tests.security.registry import ATTACKS

    assert sum(1 for name, _, _ in ATTACKS.values() if "under-cap bomb" in name) >= 2


def launched_access(tmp_path, tiny_model, env: dict, argv: list[str]):
    """A studio launched with its own arguments (the login's two sources), for the access rule."""
    from app.main import launch, parse_args
    from tests.security.conftest import SWITCHES, _free_port

    saved = {k: os.environ.get(k) for k in (*SWITCHES, "RAFT_MAX_UPLOAD_MB")}
    os.environ.update({**dict.fromkeys(SWITCHES, ""), **env})
    try:
        port = _free_port()
        args = parse_args(["--port", str(port), "--data-root", str(tmp_path), "--model", str(tiny_model), *argv])
        demo, studio = launch(args, prevent_thread_lock=True)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return demo, studio, f"http://127.0.0.1:{port}/"


def test_the_login_from_either_source_is_the_one_that_rules_training(tmp_path, tiny_model):
    """Space + `--auth USER:PASS` + RAFT_ALLOW_TRAINING=1 trains after signing in (it stayed off);
    Space + RAFT_AUTH in the environment + `--auth ""` asks no login and does not train (an
    anonymous visitor started a job)."""
    space = {"SPACE_ID": "attacker-test/studio", "RAFT_ALLOW_TRAINING": "1"}
    demo, studio, url = launched_access(tmp_path / "cli", tiny_model, space, ["--auth", "boss:long-secret"])
    try:
        assert studio.settings.allow_training, studio.settings.training_note
        assert httpx.get(url + "gradio_api/info", timeout=30).status_code in (401, 403), "no login asked"
        with signed_in(url.replace("://", "://boss:long-secret@"), 30) as http:
            assert http.get("gradio_api/info").status_code == 200
    finally:
        demo.close()
    env = {**space, "RAFT_AUTH": "boss:long-secret"}
    demo, studio, url = launched_access(tmp_path / "env", tiny_model, env, ["--auth", ""])
    try:
        assert not studio.settings.allow_training
        assert "a login is not in force" in studio.settings.training_note
        kind, payload = raw_call(url, "train_start", [config_yaml(studio, data="ds")])
        refused(kind, payload, "training is off")
        assert not studio.jobs.list("train"), "an anonymous visitor started a job"
    finally:
        demo.close()
