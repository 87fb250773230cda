"""Attacks replayed against launched studios, in public (Space) mode and in local mode, over raw
HTTP and gradio_client. Each checks the refusal, that nothing appeared outside the data root, and
that no other process was touched. The run ends with the table of attacks (conftest)."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from raft.files import write_rows
from raft.synthetic import generate_rows
from tests.security import align_attacks, round_three, round_two  # noqa: F401 - register the later rounds
from tests.security.conftest import raw_call
from tests.security.registry import (
    ATTACKS,
    PUBLIC,
    TRAP,
    attack,
    config_yaml,
    nothing_escaped,
    refused,
    visitor_root,
)

# --- jobs: ids are looked up, records are signed, only trainers are signalled ---------------------


@attack("job id with ../ traversal (watch)")
def _(url, studio, mode, tmp):
    return refused(*raw_call(url, "train_watch", ["../../../../etc/passwd", False]), "no job")


@attack("job id as an absolute path (watch)")
def _(url, studio, mode, tmp):
    return refused(*raw_call(url, "train_watch", ["/etc/passwd", False]), "no job")


@attack("job id that is a list, not a string")
def _(url, studio, mode, tmp):
    return refused(*raw_call(url, "train_watch", [["a", "b"], False]), "no job", "error")


@attack("job id of 10,000 characters")
def _(url, studio, mode, tmp):
    return refused(*raw_call(url, "train_watch", ["9" * 10_000, False]), "no job")


@attack("uploaded job.json used through a traversing job id")
def _(url, studio, mode, tmp):
    forged = tmp / "job.json"
    forged.write_text(json.dumps({"id": "x", "run_dir": "/tmp", "log": "/etc/passwd", "command": [], "pid": 1}))
    with httpx.Client(base_url=url) as http:
        uploaded = http.post("gradio_api/upload", files={"files": ("job.json", forged.read_bytes())}).json()[0]
    folder = Path(uploaded).parent
    kind, payload = raw_call(url, "train_watch", [f"../../../../../..{folder}", False])
    return refused(kind, payload, "no job")


@attack("forged unsigned job.json planted in the jobs folder, with another process's pid")
def _(url, studio, mode, tmp):
    victim = subprocess.Popen(["sleep", "60"], start_new_session=True)
    job_id = "20990101-000000-abcdef"
    folder = studio.jobs.jobs_dir / job_id
    folder.mkdir(parents=True, exist_ok=True)
    record_ = {"id": job_id, "run_dir": "/tmp", "log": "/etc/passwd", "command": ["x"], "pid": victim.pid}
    (folder / "job.json").write_text(json.dumps({**record_, "status": "running"}))
    try:
        watch = raw_call(url, "train_watch", [job_id, False])
        stop = raw_call(url, "train_stop", [job_id])
        time.sleep(0.5)
        assert victim.poll() is None, "an unrelated process was killed"
        refused(*watch, "no job")
        return refused(*stop, "no job", "training is off")
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()


@attack("Stop on a public Space", modes=PUBLIC)
def _(url, studio, mode, tmp):
    return refused(*raw_call(url, "train_stop", ["20990101-000000-abcdef"]), "training is off")


@attack("Resume on a public Space", modes=PUBLIC)
def _(url, studio, mode, tmp):
    return refused(*raw_call(url, "train_resume", ["20990101-000000-abcdef"]), "training is off")


@attack("Start on a public Space", modes=PUBLIC)
def _(url, studio, mode, tmp):
    return refused(*raw_call(url, "train_start", [config_yaml(studio)]), "training is off")


# --- training config: every field checked, YAML tamed -------------------------------------------


@attack("YAML with a !!python/object tag", modes=("local", "owner"))
def _(url, studio, mode, tmp):
    text = "!!python/object/apply:os.system ['touch /tmp/raft-attack-trap']\n"
    return refused(*raw_call(url, "train_start", [text]), "python/object", "could not determine a constructor")


@attack("YAML alias bomb (791 bytes)", modes=("local", "owner"))
def _(url, studio, mode, tmp):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh"):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    started = time.time()
    result = refused(*raw_call(url, "train_start", ["\n".join(lines) + "\n"]), "aliases")
    assert time.time() - started < 5
    return result


@attack("YAML of 200 KB", modes=("local", "owner"))
def _(url, studio, mode, tmp):
    return refused(*raw_call(url, "train_start", ["# " + "x" * 200_000 + "\n"]), "at most 64 KiB")


CONFIG_ATTACKS = [
    ("learning_rate: abc", {"learning_rate": "abc"}, "learning_rate"),
    ("max_steps: -5", {"max_steps": -5}, "max_steps"),
    ("max_steps: 1e30", {"max_steps": "1e30"}, "max_steps"),
    ("batch_size: 0", {"batch_size": 0}, "batch_size"),
    ("eval_steps: 0", {"eval_steps": 0}, "eval_steps"),
    ("scale: [0, 4, 9]", {"scale": "[0, 4, 9]"}, "scale"),
    ("device: ../../x", {"device": "../../x"}, "device"),
    ("output_dir outside the data root", {"output_dir": "/tmp/evil-run"}, "names a run"),
    ("data outside the data root", {"data": "/etc"}, "names a dataset"),
    ("trust_remote_code: true", {"trust_remote_code": "true"}, "trust_remote_code"),
    ("output_dir holding markup", {"output_dir": "'<img src=x>'"}, "names a run"),
    ("unknown key", {"colour": "red"}, "unknown config key"),
]
for _name, _changes, _needle in CONFIG_ATTACKS:

    def _config_attack(url, studio, mode, tmp, changes=_changes, needle=_needle):
        return refused(*raw_call(url, "train_start", [config_yaml(studio, **changes)]), needle)

    attack(f"config {_name}", modes=("local", "owner"))(_config_attack)


# --- names, paths and sources --------------------------------------------------------------------


def _preview(client):
    return client.predict(
        "synthetic sample", None, "", 40, "", "score_only", "", "none", 0, 0.2, 0, api_name="/dataset_preview"
    )


@attack("dataset name with ../ traversal")
def _(url, studio, mode, tmp):
    client = Client(url, verbose=False)
    _preview(client)
    with pytest.raises(Exception) as err:
        client.predict("../../evil-dataset", "none", api_name="/dataset_write")
    return refused("error", str(err.value), "not a valid name")


@attack("dataset name as an absolute path")
def _(url, studio, mode, tmp):
    client = Client(url, verbose=False)
    _preview(client)
    with pytest.raises(Exception) as err:
        client.predict("/tmp/evil-dataset", "none", api_name="/dataset_write")
    return refused("error", str(err.value), "not a valid name")


@attack("dataset name through a symlink that points outside")
def _(url, studio, mode, tmp):
    client = Client(url, verbose=False)
    _preview(client)
    datasets = visitor_root(studio, client, mode) / "datasets"
    datasets.mkdir(parents=True, exist_ok=True)
    (datasets / "link").symlink_to(tmp, target_is_directory=True)
    try:
        with pytest.raises(Exception) as err:
            client.predict("link", "none", api_name="/dataset_write")
    finally:
        (datasets / "link").unlink()
    assert not (tmp / "train.jsonl").exists()
    return refused("error", str(err.value), "escapes", "exists already")


@attack("dataset written over an existing one")
def _(url, studio, mode, tmp):
    client = Client(url, verbose=False)
    _preview(client)
    client.predict("mine", "none", api_name="/dataset_write")
    with pytest.raises(Exception) as err:
        client.predict("mine", "none", api_name="/dataset_write")
    return refused("error", str(err.value), "exists already")


@attack("dataset write without a preview (raw state)")
def _(url, studio, mode, tmp):
    return refused(*raw_call(url, "dataset_write", ["x", "none"]), "preview the dataset first")


@attack("hub source given an absolute path to a server file")
def _(url, studio, mode, tmp):
    secret = write_rows(tmp / "someone-elses.jsonl", generate_rows(3))
    return refused(*raw_call(url, "dataset_columns", ["hub dataset id", None, str(secret), 40, 0]), "hub dataset id")


@attack("hub source given a relative path")
def _(url, studio, mode, tmp):
    kind, payload = raw_call(url, "dataset_columns", ["hub dataset id", None, "tests/helpers.py", 40, 0])
    return refused(kind, payload, "hub dataset id")


@attack("hub source given ../../etc/passwd")
def _(url, studio, mode, tmp):
    kind, payload = raw_call(url, "dataset_columns", ["hub dataset id", None, "../../etc/passwd", 40, 0])
    return refused(kind, payload, "hub dataset id")


@attack("unknown source kind")
def _(url, studio, mode, tmp):
    kind, payload = raw_call(url, "dataset_columns", ["local path", None, "/etc/passwd", 40, 0])
    return refused(kind, payload, "unknown source", "not in the list of choices")


@attack("a server path sent as an uploaded file")
def _(url, studio, mode, tmp):
    fake = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}
    kind, payload = raw_call(url, "batch_columns", [fake])
    return refused(kind, payload, "not uploaded", "not allowed", "error", "cannot move")


# --- files route ---------------------------------------------------------------------------------


def _get(url, path):
    return httpx.get(url + "gradio_api/file=" + str(path), timeout=30).status_code


@attack("file route: the job-signing key")
def _(url, studio, mode, tmp):
    assert _get(url, studio.jobs.jobs_dir / ".key") == 403
    return "403"


@attack("file route: /etc/passwd")
def _(url, studio, mode, tmp):
    assert _get(url, "/etc/passwd") == 403
    return "403"


@attack("file route: a run's files under the data root")
def _(url, studio, mode, tmp):
    (studio.root / "runs" / "r0").mkdir(parents=True, exist_ok=True)
    (studio.root / "runs" / "r0" / "config.yaml").write_text("x: 1\n")
    assert _get(url, studio.root / "runs" / "r0" / "config.yaml") == 403
    return "403"


@attack("file route: a batch result by its path")
def _(url, studio, mode, tmp):
    target = studio.root / "batch" / "someone.jsonl"
    target.write_text('{"row": 1}\n')
    assert _get(url, target) == 403
    return "403"


@attack("file route: ../ traversal")
def _(url, studio, mode, tmp):
    assert httpx.get(url + "gradio_api/file=../../../../etc/passwd", timeout=30).status_code in (403, 404)
    return "403/404"


# --- batch, evaluate, calibration and models ------------------------------------------------------


@attack("evaluate a batch result named with ../")
def _(url, studio, mode, tmp):
    args = ["../../jobs/.key", None, "(none)", None, "", "expected_score", "", None]
    return refused(*raw_call(url, "evaluate", args), "not one of your batch results", "not in the list of choices")


@attack("evaluate a batch result by absolute path")
def _(url, studio, mode, tmp):
    args = ["/etc/passwd", None, "(none)", None, "", "expected_score", "", None]
    return refused(*raw_call(url, "evaluate", args), "not one of your batch results", "not in the list of choices")


@attack("upload of an unsupported type (.sh)")
def _(url, studio, mode, tmp):
    script = tmp / "run.sh"
    script.write_text("touch /tmp/raft-attack-trap\n")
    client = Client(url, verbose=False)
    with pytest.raises(Exception) as err:
        client.predict(handle_file(str(script)), api_name="/batch_columns")
    return refused("error", str(err.value), "unsupported file type", "invalid file type")


@attack("upload over the size cap")
def _(url, studio, mode, tmp):
    big = tmp / "big.jsonl"
    big.write_bytes(b'{"x": "' + b"y" * (2 * 2**20) + b'"}\n')
    with httpx.Client(base_url=url, timeout=60) as http:
        answer = http.post("gradio_api/upload", files={"files": ("big.jsonl", big.read_bytes())})
    assert answer.status_code in (400, 413), answer.status_code
    return f"refused: HTTP {answer.status_code}"


@attack("Latin-1 CSV upload")
def _(url, studio, mode, tmp):
    path = tmp / "latin.csv"
    path.write_bytes("orig_response,orig_score\ncaf\xe9,3\n".encode("latin-1"))
    client = Client(url, verbose=False)
    with pytest.raises(Exception) as err:
        client.predict(handle_file(str(path)), api_name="/batch_columns")
    return refused("error", str(err.value), "byte offset")


@attack("CSV with a repeated header column")
def _(url, studio, mode, tmp):
    path = tmp / "dup.csv"
    path.write_text("orig_response,orig_score,orig_response\na,3,b\n")
    client = Client(url, verbose=False)
    with pytest.raises(Exception) as err:
        client.predict(handle_file(str(path)), api_name="/batch_columns")
    return refused("error", str(err.value), "more than once")


@attack("calibration upload that is not a calibration")
def _(url, studio, mode, tmp):
    path = tmp / "cal.json"
    path.write_text("[1, 2, 3]")
    example = Client(url, verbose=False).predict(api_name="/random_example")
    client = Client(url, verbose=False)
    with pytest.raises(Exception) as err:
        args = ["default model", "score_only", *example, False, "default model", handle_file(str(path))]
        client.predict(*args, api_name="/score")
    return refused("error", str(err.value), "not a calibration file")


@attack("score with a run name that traverses")
def _(url, studio, mode, tmp):
    example = Client(url, verbose=False).predict(api_name="/random_example")
    kind, payload = raw_call(
        url, "score", ["run: ../../etc", "score_only", *example, False, "default model", None, "hf", 64]
    )
    return refused(kind, payload, "not a valid name", "escapes")


@attack("score with a foreign hub model on a public Space", modes=PUBLIC)
def _(url, studio, mode, tmp):
    example = Client(url, verbose=False).predict(api_name="/random_example")
    kind, payload = raw_call(
        url, "score", ["someone/huge-model", "score_only", *example, False, "default model", None, "hf", 64]
    )
    return refused(kind, payload, "other models are off")


@attack("score with a local folder on a public Space", modes=PUBLIC)
def _(url, studio, mode, tmp):
    example = Client(url, verbose=False).predict(api_name="/random_example")
    kind, payload = raw_call(
        url, "score", [str(studio.root), "score_only", *example, False, "default model", None, "hf", 64]
    )
    return refused(kind, payload, "other models are off")


@attack("score with a mode outside the vocabulary")
def _(url, studio, mode, tmp):
    example = Client(url, verbose=False).predict(api_name="/random_example")
    kind, payload = raw_call(
        url, "score", ["default model", "rm -rf", *example, False, "default model", None, "hf", 64]
    )
    return refused(kind, payload, "not in the list of choices", "unknown mode")


@attack("score on an engine name outside the choices")
def _(url, studio, mode, tmp):
    example = Client(url, verbose=False).predict(api_name="/random_example")
    args = ["default model", "score_only", *example, False, "default model", None, "../../bin/sh", 64]
    return refused(*raw_call(url, "score", args), "not in the list of choices", "not available")


@attack("statistics do not reveal the server's paths")
def _(url, studio, mode, tmp):
    stats = _preview(Client(url, verbose=False))[0]
    assert str(studio.root) not in json.dumps(stats) and "/tmp" not in stats["source"]
    return "no path in stats"


@pytest.mark.parametrize("key", sorted(ATTACKS))
def test_attack(key, studios, tmp_path, pytestconfig):
    name, mode, fn = ATTACKS[key]
    url, studio = studios[mode]
    outcome = fn(url, studio, mode, tmp_path)
    nothing_escaped(studio)
    assert httpx.get(url, timeout=30).status_code == 200, "the studio stopped serving"
    if not hasattr(pytestconfig, "security_results"):
        pytestconfig.security_results = []
    pytestconfig.security_results.append((name, mode, outcome))


def test_at_least_40_distinct_attacks():
    assert len({name for name, _, _ in ATTACKS.values()}) >= 40


def test_no_trap_was_sprung():
    assert not TRAP.exists()
