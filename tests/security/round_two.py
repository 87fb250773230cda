"""The second round of attacks (issue 15), replayed in every launched mode they concern: configs
that name server files, the parquet bomb with the server's resident memory measured, disk filled
through forged session hashes, server paths in any endpoint's answer, formula cells in the CSV
download, Evaluate on a data root outside the working and temporary folders, a 10 MB field."""

import csv
import gc
import io
import json
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from raft.data import prepare_dataset
from raft.files import write_rows
from raft.synthetic import generate_rows
from tests.helpers import parquet_bomb
from tests.security.conftest import raw_call, signed_in
from tests.security.registry import EVERY, PUBLIC, attack, config_yaml, refused, text_of, workspace_of

MEMORY_BUDGET_MB = 200
"""What one bomb may add to the server's resident memory at its peak (1 GiB decoded before the fix)."""


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def rss_mb() -> int:
    """Resident memory of this process, where the launched studios run."""
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) // 1024


def peak_rss(fn):
    """(peak resident MB while fn ran, fn's result), sampled every 10 ms."""
    peak, done = [rss_mb()], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = fn()
    finally:
        done.set()
        sampler.join()
    return max(peak[0], rss_mb()), result


def upload(url: str, path: Path) -> dict:
    """Upload a file over raw HTTP; the FileData a client then sends."""
    with signed_in(url, 60) as http:
        answer = http.post("gradio_api/upload", files={"files": (path.name, path.read_bytes())})
    assert answer.status_code == 200, answer.text[:300]
    return {"path": answer.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def download(url: str, file: dict) -> bytes:
    """The bytes of a file the studio offered (its FileData's URL)."""
    with signed_in(url, 60) as http:
        answer = http.get(file["url"])
    assert answer.status_code == 200, f"download refused: HTTP {answer.status_code}"
    return answer.content


def visitor_folder(studio, mode: str, key: str) -> Path:
    return studio.root if mode == "local" else workspace_of(studio, key)


def key_of(mode: str, session: str) -> str:
    return "user:owner" if mode == "owner" else f"session:{session}"


def dataset_for(studio, mode: str, session: str, tmp: Path, name: str = "ds") -> None:
    """A written dataset in the visitor's workspace, made on the server's side (the setup, not the attack)."""
    folder = visitor_folder(studio, mode, key_of(mode, session)) / "datasets" / name
    if not (folder / "train.jsonl").is_file():
        prepare_dataset(write_rows(tmp / "rows.jsonl", generate_rows(30, seed=2)), folder)


# --- configs name things: no server file is read through a config -------------------------------


@attack("config template: the absolute path of a server file", modes=("owner", "local"))
def _(url, studio, mode, tmp):
    session = uuid.uuid4().hex
    dataset_for(studio, mode, session, tmp)
    secret = tmp / "secret.txt"
    secret.write_text("{the-secret-7f3a}")
    kind, payload = raw_call(url, "train_start", [config_yaml(studio, template=str(secret))], session_hash=session)
    assert "the-secret-7f3a" not in text_of(payload)
    assert not any("the-secret" in (job.error or "") for job in studio.jobs.list()), "a job read the file"
    return refused(kind, payload, "is not a template here")


@attack("config template: a file that exists vs one that does not (an oracle)", modes=("owner", "local"))
def _(url, studio, mode, tmp):
    session = uuid.uuid4().hex
    dataset_for(studio, mode, session, tmp)
    (tmp / "hostname").write_text("no braces here\n")
    there = raw_call(url, "train_start", [config_yaml(studio, template=str(tmp / "hostname"))], session_hash=session)
    absent = raw_call(url, "train_start", [config_yaml(studio, template="/nowhere/hostname")], session_hash=session)
    assert there == absent, (there, absent)
    return refused(*there, "is not a template here") + " (the same answer either way)"


@attack("config base_model: a local folder", modes=("owner",))
def _(url, studio, mode, tmp):
    session = uuid.uuid4().hex
    dataset_for(studio, mode, session, tmp)
    text = config_yaml(studio, base_model=str(studio.settings.default_model))
    return refused(*raw_call(url, "train_start", [text], session_hash=session), "other models are off")


@attack("config data and output_dir as server paths", modes=("owner", "local"))
def _(url, studio, mode, tmp):
    session = uuid.uuid4().hex
    kind, payload = raw_call(url, "train_start", [config_yaml(studio, data=str(studio.root))], session_hash=session)
    refused(kind, payload, "names a dataset")
    text = config_yaml(studio, output_dir="/tmp/evil-run")
    return refused(*raw_call(url, "train_start", [text], session_hash=session), "names a run")


@attack("Start with a local model and a second visitor's Stop (RAFT_PUBLIC=1 alone)", modes=PUBLIC)
def _(url, studio, mode, tmp):
    text = config_yaml(studio, base_model=str(studio.settings.default_model))
    refused(*raw_call(url, "train_start", [text]), "training is off")
    assert not studio.jobs.list("train")  # the module's earlier attacks ran batches, jobs too now
    return refused(*raw_call(url, "train_stop", ["20990101-000000-abcdef"]), "training is off")


# --- the parquet bomb: memory stays within a stated budget ---------------------------------------


@attack("parquet bomb (3 KB; 1 GiB decoded) to column detection, dataset columns and Evaluate", modes=EVERY)
def _(url, studio, mode, tmp):
    file = upload(url, parquet_bomb(tmp / "bomb.parquet"))
    gc.collect()
    before = rss_mb()

    def send():
        return [
            raw_call(url, "batch_columns", [file]),
            raw_call(url, "dataset_columns", ["uploaded file", file, "", 40, 0]),
            raw_call(url, "evaluate", ["(none)", file, "(none)", None, "", "expected_score", "", None]),
        ]

    peak, answers = peak_rss(send)
    after = rss_mb()
    for kind, payload in answers:
        refused(kind, payload, "characters long", "no row", "only 0 rows", "no gold column")
    assert peak - before < MEMORY_BUDGET_MB, f"resident memory rose by {peak - before} MB"
    return f"refused: characters long; server RSS {before} MB before, {after} MB after, peak +{peak - before} MB"


# --- disk: forged sessions, quota against the size about to be written, no empty folders ---------


@attack("five forged session hashes against a 1 MB quota and a 3 MB total cap", modes=PUBLIC)
def _(url, studio, mode, tmp):
    disk = getattr(studio, "disk", None)  # absent before the total cap existed
    saved = studio.settings.workspace_mb, disk and disk.total_bytes
    studio.settings.workspace_mb = 1
    start = folder_bytes(studio.root / "workspaces")
    if disk:
        disk.total_bytes = disk.used() + 3 * 2**20
    sessions = [f"forged-{uuid.uuid4().hex[:8]}-{i}" for i in range(5)]
    big = upload(url, write_rows(tmp / "big.jsonl", generate_rows(600, seed=4)))
    answers = []
    try:
        for i, session in enumerate(sessions):
            for n in (2000, 300):
                args = ["synthetic sample", None, "", n, "", "score_only", "", "none", 0, 0.2, i, None, *[""] * 6]
                answers.append(raw_call(url, "dataset_preview", args, session_hash=session))
                answers.append(raw_call(url, "dataset_write", [f"big-{n}", "none"], session_hash=session))
            args = [big, "", "default model", "score_only", 8, "orig_score", None, "hf", None, *[""] * 6]
            answers.append(raw_call(url, "score_batch", args, session_hash=session))
        held = [folder_bytes(workspace_of(studio, f"session:{s}")) for s in sessions]
        grown = folder_bytes(studio.root / "workspaces") - start
    finally:
        studio.settings.workspace_mb = saved[0]
        if disk:
            disk.total_bytes = saved[1]
    assert max(held) <= 2**20, f"a workspace holds {max(held)} bytes over a 1 MB quota"
    assert grown <= 3 * 2**20, f"{grown} bytes written under a 3 MB cap"
    assert any("workspace is full" in text_of(p) for _, p in answers)
    most = max(held) / 2**20
    return f"refused past the quota: 5 sessions hold {grown / 2**20:.1f} MB in all, at most {most:.2f} MB each"


@attack("100 anonymous visits make no workspace folder", modes=PUBLIC)
def _(url, studio, mode, tmp):
    folders = studio.root / "workspaces"
    before = set(folders.glob("*"))
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda i: raw_call(url, "refresh_choices", [None, None], session_hash=f"anon-{i}"), range(100))
        )
    assert all(kind == "complete" for kind, _ in answers)
    assert set(folders.glob("*")) == before, "a visit made a folder"
    return "no folder made (100 visits)"


# --- downloads: CSV formula cells, reports through the staging on a bucket ------------------------

FORMULAS = ['=HYPERLINK("http://evil.example","click")', "=cmd|' /C calc'!A0", "+1+2", "@SUM(A1)", "\t=1", "-2+3"]


def scored(url, tmp, session, rows):
    """Score rows as a Batch; (the answer's payload, the CSV and JSONL downloads as FileData)."""
    file = upload(url, write_rows(tmp / "formulas.jsonl", rows))
    args = [file, "", "default model", "score_only", 8, "orig_score", None, "hf", None, *[""] * 6]
    kind, payload = raw_call(url, "score_batch", args, session_hash=session)
    assert kind == "complete", text_of(payload)
    files = {f["orig_name"].rsplit(".", 1)[-1]: f for f in payload[-1]}
    return payload, files


@attack("formula cells in the downloaded CSV", modes=EVERY)
def _(url, studio, mode, tmp):
    rows = generate_rows(len(FORMULAS), seed=6)
    for row, formula in zip(rows, FORMULAS):
        row["orig_response"] = formula
    _, files = scored(url, tmp, uuid.uuid4().hex, rows)
    table = list(csv.DictReader(io.StringIO(download(url, files["csv"]).decode("utf-8"))))
    cells = [r["orig_response"] for r in sorted(table, key=lambda r: int(r["row"]))]
    assert cells == ["'" + f for f in FORMULAS], cells
    assert all(float(r["expected_score"]) > 0 for r in table), "numbers were touched"
    lines = [json.loads(x) for x in download(url, files["jsonl"]).decode("utf-8").splitlines()]
    assert [r["orig_response"] for r in sorted(lines, key=lambda r: r["row"])] == FORMULAS
    return "neutralised with ' (numbers and JSONL exact)"


@attack("Evaluate with its reports staged like every download", modes=(*PUBLIC, "local"))
def _(url, studio, mode, tmp):
    session = uuid.uuid4().hex
    _, files = scored(url, tmp, session, generate_rows(8, seed=7))
    scored_file = tmp / "scored.jsonl"
    scored_file.write_bytes(download(url, files["jsonl"]))
    args = ["(none)", upload(url, scored_file), "(none)", None, "", "expected_score", "", None]
    kind, payload = raw_call(url, "evaluate", args, session_hash=session)
    assert kind == "complete", text_of(payload)
    html_file = next(f for f in payload[-1] if f["orig_name"].endswith(".html"))
    page = download(url, html_file)
    assert b"<html" in page[:500].lower()
    if mode != "local":
        assert not (studio.root / "reports").exists(), "a report went to a shared folder"
        reports = visitor_folder(studio, mode, key_of(mode, session)) / "reports"
        assert any(p.suffix == ".html" for p in reports.iterdir()), "the report is not in the visitor's workspace"
    where = "outside the working and temp folders" if mode == "bucket" else "data root"
    return f"served ({len(page) / 2**20:.1f} MB HTML, {where}, counted in the quota)"


# --- a 10 MB field, and server paths in any answer ---------------------------------------------


@attack("a 10 MB field to the Score tab", modes=EVERY)
def _(url, studio, mode, tmp):
    example = ["Explain.", "y" * 10 * 2**20, "", "Helpful?", "1", "2", "3", "4", "5", *[""] * 5]
    started = time.time()
    kind, payload = raw_call(
        url, "score", ["default model", "score_only", *example, False, "default model", None, "hf", 64]
    )
    took = time.time() - started
    assert took < 20, f"took {took:.0f} s"
    return refused(kind, payload, "characters long") + f" in {took:.1f} s"


def forbidden(studio) -> list[str]:
    """Server folders no answer may name."""
    places = {str(studio.root), str(Path.cwd()), str(Path.home()), tempfile.gettempdir() + "/"}
    if studio.settings.default_model:
        places.add(str(studio.settings.default_model))
    return sorted(places)


def without_files(value):
    """An answer without its FileData (Gradio's own download URLs), checked to point into Gradio's cache."""
    if isinstance(value, dict):
        if (value.get("meta") or {}).get("_type") == "gradio.FileData":
            assert "gradio" in str(value.get("path")), value
            return {"file": value.get("orig_name")}
        return {k: without_files(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_files(v) for v in value]
    return value


@attack("server paths in every endpoint's answer (a workflow, errors, every API)", modes=EVERY)
def _(url, studio, mode, tmp):
    session = uuid.uuid4().hex
    preview = ["synthetic sample", None, "", 40, "", "score_only", "", "none", 0, 0.2, 0, None, *[""] * 6]
    rows = upload(url, write_rows(tmp / "rows.jsonl", generate_rows(6, seed=8)))
    bad = upload(url, write_rows(tmp / "bad.jsonl", [{"x": 1}]))
    form = ["ds", "run-9", "", "raft", 1.0, True, 8, 1e-4, 5, 1.0, 2, 1, 1024, 5, False]
    calls = [
        ("dataset_preview", preview),
        ("dataset_write", ["ds", "none"]),
        ("dataset_write", ["ds", "none"]),
        ("dataset_write", ["../x", "none"]),
        ("dataset_columns", ["uploaded file", bad, "", 40, 0]),
        ("train_dataset_summary", ["ds"]),
        ("train_dataset_summary", ["nope"]),
        ("train_config", form),
        ("initial_config", form),
        ("train_start", [config_yaml(studio, data="nope")]),
        ("train_watch", ["20990101-000000-abcdef", False]),
        ("score_batch", [rows, "", "default model", "score_only", 4, "orig_score", None, "hf", None, *[""] * 6]),
        ("score_batch", [bad, "", "default model", "score_only", 4, "orig_score", None, "hf", None, *[""] * 6]),
        (
            "score",
            [
                "run: nope",
                "score_only",
                "a",
                "b",
                "",
                "c",
                "1",
                "2",
                "3",
                "4",
                "5",
                *[""] * 5,
                False,
                "",
                None,
                "hf",
                64,
            ],
        ),
        ("evaluate", ["(none)", bad, "(none)", None, "", "expected_score", "", None]),
        ("calibrate", ["(none)", bad, "", 0.9]),
    ]
    answers = [(api, raw_call(url, api, data, session_hash=session)) for api, data in calls]
    with signed_in(url, 60) as http:
        info = http.get("gradio_api/info").json()
    for api, spec in info["named_endpoints"].items():
        example = [
            p.get("example_input") if p.get("parameter_has_default") is False else None for p in spec["parameters"]
        ]
        example = [None if isinstance(e, dict) and "path" in e else e for e in example]
        answers.append((api, raw_call(url, api.lstrip("/"), example, session_hash=session, timeout=60)))
    places = forbidden(studio)
    for api, (_, payload) in answers:
        text = json.dumps(without_files(payload))
        leaked = [p for p in places if p in text]
        assert not leaked, f"{api} answered with {leaked}: {text[:300]}"
    return f"no server path in {len(answers)} answers ({len(info['named_endpoints'])} endpoints)"
