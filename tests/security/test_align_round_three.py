"""Issue 22's third round, the Align and dataset findings replayed against launched studios over
raw HTTP (each visitor a session hash of its own): the README's own path (a question/answer/score
CSV with a rubric preset, scored in Batch, then Align *Start project* on that result, item 13),
two local graders on one project (item 11: their own Undo, their own rows, a label only for the
row on one's card), label values that are not the scale's integers (item 14), and races (item
10): two Starts of one project at once, two visitors writing one dataset name at once."""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from app.mapping import OWN_RUBRIC
from raft.files import write_rows
from raft.labels import LabelProject
from raft.synthetic import generate_rows
from tests.security.conftest import raw_call

PLAIN = [
    {"question": f"What is {i} + {i}?", "answer": f"It is {2 * i + i % 3}.", "score": 1 + i % 5} for i in range(14)
]
MAPPING = "orig_instruction=question, orig_response=answer, orig_score=score"
NO_RUBRIC_TEXT = ["", "", "", "", "", ""]


def _upload(url: str, path) -> dict:
    """The file sent to the studio's upload route, as a browser does; the FileData to pass on."""
    import httpx

    with httpx.Client(base_url=url, timeout=60) as http:
        answer = http.post("gradio_api/upload", files={"files": (path.name, path.read_bytes())})
        answer.raise_for_status()
        return {"path": answer.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": path.name}


def _session() -> str:
    return uuid.uuid4().hex[:11]


def _batch_result(url: str, studio, tmp_path, session: str) -> str:
    """A plain CSV scored in Batch with the Helpfulness preset; the result's name, as Align lists it."""
    csv = write_rows(tmp_path / f"mine-{session}.csv", PLAIN)
    kind, payload = raw_call(
        url,
        "score_batch",
        [_upload(url, csv), MAPPING, "default model", "score_only", 4, "orig_score", None, "hf", "Helpfulness"]
        + NO_RUBRIC_TEXT,
        session_hash=session,
    )
    assert kind == "complete", payload
    kind, payload = raw_call(url, "refresh_choices", [None], session_hash=session)  # as the page loads (no form kept)
    assert kind == "complete", payload
    return next(name for label, name in _results(studio) if label.startswith(f"mine-{session}.csv"))


def _results(studio):
    from app.evaluate_tab import batch_results

    return batch_results(studio.workspace())


def _create(url, session, choice, rubric="(the batch result's, or the rows' own)"):
    return raw_call(url, "align_create", [choice, None, "default model", 0.3, rubric], session_hash=session)


def _view(url, session, project, grader=""):
    kind, payload = raw_call(url, "align_view", [project, "uncertain", True, grader], session_hash=session)
    assert kind == "complete", payload
    return payload


def _row_on_card(card: str) -> int:
    import re

    return int(re.search(r"Row (\d+) ·", card).group(1))


def test_align_on_the_batch_result_of_a_plain_csv_with_a_preset_works(studios, tmp_path, pytestconfig):
    url, studio = studios["local"]
    session = _session()
    name = _batch_result(url, studio, tmp_path, session)
    kind, payload = _create(url, session, name)
    assert kind == "complete", payload
    project = payload[0]["value"] if isinstance(payload[0], dict) else payload[0]
    card = _view(url, session, project)[0]
    assert "orig_criteria" not in card and "Error" not in card and "Row " in card
    assert "helpful" in card.lower()  # the preset's criterion, shown on the card
    pytestconfig.security_results = getattr(pytestconfig, "security_results", [])
    pytestconfig.security_results.append(("Align on a plain CSV's batch result (rubric preset)", "local", "works"))


def test_two_local_graders_are_two_labellers(studios, tmp_path, pytestconfig):
    url, studio = studios["local"]
    ann, bob = _session(), _session()
    name = _batch_result(url, studio, tmp_path, ann)
    kind, payload = _create(url, ann, name)
    assert kind == "complete", payload
    project = payload[0]["value"] if isinstance(payload[0], dict) else payload[0]
    raw_call(url, "align_projects", [], session_hash=bob)
    row_ann = _row_on_card(_view(url, ann, project)[0])
    row_bob = _row_on_card(_view(url, bob, project)[0])
    assert row_ann != row_bob  # the row on Ann's card is not offered to Bob
    for session, score in ((ann, "4"), (bob, "2")):
        kind, payload = raw_call(url, "align_label", [project, None, score, "", ""], session_hash=session)
        assert kind == "complete", payload
    kind, payload = raw_call(url, "align_undo", [project, ""], session_hash=bob)
    assert kind == "complete" and f"row {row_bob}" in str(payload), payload
    kind, payload = raw_call(url, "align_undo", [project, ""], session_hash=bob)
    assert "Nothing to undo" in str(payload)
    labels = LabelProject.open(studio.root / "labels" / project).labels()
    assert labels == {row_ann: 4}  # Bob's Undo never took Ann's label back
    # a second answer to Ann's card before the next one loads: refused, nothing recorded
    kind, payload = raw_call(url, "align_label", [project, None, "5", "", ""], session_hash=ann)
    assert kind == "error" and "answered already" in str(payload), payload
    assert LabelProject.open(studio.root / "labels" / project).labels() == {row_ann: 4}
    pytestconfig.security_results = getattr(pytestconfig, "security_results", [])
    pytestconfig.security_results.append(("two local graders: own Undo, own rows", "local", "separate"))


def test_label_values_other_than_the_scales_integers_are_refused(studios, tmp_path):
    url, studio = studios["local"]
    session = _session()
    name = _batch_result(url, studio, tmp_path, session)
    kind, payload = _create(url, session, name)
    project = payload[0]["value"] if isinstance(payload[0], dict) else payload[0]
    for value in ("True", "1e0", "+3", "\uff13", "3.0"):
        _view(url, session, project)
        kind, payload = raw_call(url, "align_label", [project, None, value, "", ""], session_hash=session)
        assert kind == "error" and "not a label" in str(payload), (value, payload)
    assert LabelProject.open(studio.root / "labels" / project).labels() == {}


def test_two_starts_of_one_project_at_once_give_one_whole_project(studios, tmp_path, tiny_judge, pytestconfig):
    from raft.batch import score_file

    url, studio = studios["local"]
    scored = tmp_path / "big-scored.jsonl"
    score_file(tiny_judge, write_rows(tmp_path / "big.jsonl", generate_rows(400, seed=9)), scored, batch_size=64)
    for _ in range(3):
        time.sleep(1.1)  # a project is named by its second: each attempt races for a new name
        labels = studio.root / "labels"
        before = set(labels.iterdir()) if labels.is_dir() else set()
        tabs = [_session() for _ in range(4)]  # a double click in two tabs: four requests, one name
        files = [_upload(url, scored) for _ in tabs]
        go = threading.Barrier(4)

        def start(i, go=go, files=files, tabs=tabs):
            go.wait()
            return raw_call(
                url, "align_create", [None, files[i], "default model", 0.3, "(the batch result's, or the rows' own)"],
                session_hash=tabs[i],
            )  # fmt: skip

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(start, range(4)))
        made = set(labels.iterdir()) - before
        assert made and len(made) == sum(kind == "complete" for kind, _ in answers), answers
        for kind, payload in answers:
            assert kind == "complete" or "already exists" in str(payload), payload
        for folder in made:  # every project that exists opens whole: no interleaved rows.jsonl, no temporary folder
            assert not folder.name.startswith(".")
            assert len(LabelProject.open(folder).rows) == 400
    pytestconfig.security_results = getattr(pytestconfig, "security_results", [])
    pytestconfig.security_results.append(("four Align Starts at once", "local", "whole projects only"))


def test_two_visitors_writing_one_dataset_name_at_once_give_one_winner(studios, pytestconfig):
    url, studio = studios["local"]
    visitors = [_session(), _session()]
    for i, session in enumerate(visitors):  # two different previews, one in each session
        kind, payload = raw_call(
            url,
            "dataset_preview",
            ["synthetic sample", None, "", 2000, "", "score_only", "", "none", 0, 0.0, i, OWN_RUBRIC, ""] + [""] * 5,
            session_hash=session,
        )
        assert kind == "complete", payload
    for attempt in range(3):
        name = f"race-name-{attempt}"
        go = threading.Barrier(2)

        def write(session, name=name, go=go):
            go.wait()
            return raw_call(url, "dataset_write", [name, "none"], session_hash=session)

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(write, visitors))
        kinds = sorted(kind for kind, _ in answers)
        assert kinds == ["complete", "error"], answers
        refusal = next(payload for kind, payload in answers if kind == "error")
        assert "exists already" in str(refusal) and "choose another name" in str(refusal)
        stats = next(payload for kind, payload in answers if kind == "complete")[0]
        lines = (studio.root / "datasets" / name / "train.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == stats["train"]  # one writer's lines, each whole
        assert all("prompt" in json.loads(line) for line in lines)
    pytestconfig.security_results = getattr(pytestconfig, "security_results", [])
    pytestconfig.security_results.append(("two visitors write one dataset name at once", "local", "one winner"))
