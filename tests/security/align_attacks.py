"""Every Align event in the attack registry (issue 22): each event that takes a project name,
sent another visitor's project, a traversing name and an absolute path, on the public studios;
and the third round's Align and dataset findings replayed on the local studio over raw HTTP,
each visitor a session hash of its own: the README's own path (a question/answer/score CSV with a
rubric preset, scored in Batch, then Align *Start project* on that result, item 13), two local
graders on one project (item 11: their own Undo, their own rows, a label only for the row on
one's card), label values that are not the scale's integers (item 14), and races (item 10): four
Starts of one project at once, two visitors writing one dataset name at once."""

import json
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from app.mapping import OWN_RUBRIC
from raft.files import write_rows
from raft.labels import LabelProject
from raft.synthetic import generate_rows
from tests.security.conftest import raw_call
from tests.security.registry import PUBLIC, attack, refused, text_of, workspace_of

PLAIN = [
    {"question": f"What is {i} + {i}?", "answer": f"It is {2 * i + i % 3}.", "score": 1 + i % 5} for i in range(14)
]
MAPPING = "orig_instruction=question, orig_response=answer, orig_score=score"
NO_RUBRIC_TEXT = ["", "", "", "", "", ""]
FILE_RUBRIC = "(the batch result's, or the rows' own)"
CHOOSE = "Choose a labelling project first"
NOT_THEIRS = "not in the list of choices"
"""Gradio's own refusal of a name that the visitor's list of projects (or results) does not hold."""


def _session() -> str:
    return uuid.uuid4().hex[:11]


def _upload(url: str, path) -> dict:
    """The file sent to the studio's upload route, as a browser does; the FileData to pass on."""
    with httpx.Client(base_url=url, timeout=60) as http:
        answer = http.post("gradio_api/upload", files={"files": (path.name, path.read_bytes())})
        answer.raise_for_status()
        return {"path": answer.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": path.name}


def _scored_rows(n: int, seed: int) -> list[dict]:
    """Rows as a batch writes them (a judgment on each), without running a judge."""
    rows = generate_rows(n, seed=seed)
    return [{**r, "row": i + 1, "expected_score": 1.0 + i % 5, "probs": [0.2] * 5} for i, r in enumerate(rows)]


def _victim(studio) -> tuple[str, LabelProject]:
    """Another visitor's project with a label, in that visitor's workspace."""
    name = f"victim-{uuid.uuid4().hex[:6]}"
    root = workspace_of(studio, f"session:{name}")
    project = LabelProject.create(root / "labels" / name, _scored_rows(8, 3), judge="default model", heldout=0.5)
    project.label(project.keys[0], 3, note="the victim's note")
    return name, project


EVENTS = {
    "align_view": lambda name: [name, "uncertain", True, "", None],
    "align_label": lambda name: [name, 1, "3", "", "", None],
    "align_skip": lambda name: [name, 1, "", None],
    "align_undo": lambda name: [name, "", None],
    "align_compare": lambda name: [name, "default model"],
    "align_calibrate": lambda name: [name],
    "align_finetune": lambda name: [name, "base", 4, 1],
    "align_comparison": lambda name: [name],
    "align_estimate": lambda name: [name],
}
"""The Align events that take a project name, with the rest of their inputs."""


def _names_refused(event: str):
    def replay(url, studio, mode, tmp):
        name, project = _victim(studio)
        labels_before = project.labels_path.read_bytes()
        session = _session()
        raw_call(url, "align_projects", [None], session_hash=session)  # the page's list, loaded
        said = set()
        for sent in (name, f"../{name}", f"../../workspaces/x/labels/{name}", str(project.folder), "/etc/passwd"):
            kind, payload = raw_call(url, event, EVENTS[event](sent), session_hash=session)
            text = text_of(payload).replace(sent, "")  # a refusal may quote what was sent, nothing more
            assert "the victim's note" not in text and str(studio.root) not in text, text[:300]
            if kind == "complete":  # only a panel may answer, empty for a project not the visitor's
                assert event == "align_comparison" and "Compared" not in text, text[:300]
                said.add("an empty panel")
            else:
                said.add(refused(kind, payload, NOT_THEIRS, CHOOSE))
        assert project.labels_path.read_bytes() == labels_before, "the victim's labels changed"
        assert not list(project.folder.glob("after-*")), "a comparison was written into the victim's project"
        return "; ".join(sorted(said))

    return replay


for _event in EVENTS:
    attack(f"Align {_event}: another visitor's project, ../ and absolute names", modes=PUBLIC)(_names_refused(_event))


@attack("Align align_scored_by: another visitor's batch result by name and by ../", modes=PUBLIC)
def _(url, studio, mode, tmp):
    victim = workspace_of(studio, f"session:victim-{uuid.uuid4().hex[:6]}") / "batch"
    write_rows(victim / "theirs.jsonl", _scored_rows(4, 2))
    (victim / "theirs.meta.json").write_text(json.dumps({"file": "theirs.csv", "judge": "their-secret-judge"}))
    session = _session()
    said = set()
    for choice in ("theirs.jsonl", "../theirs.jsonl", str(victim / "theirs.jsonl"), "/etc/passwd"):
        kind, payload = raw_call(url, "align_scored_by", [choice, "default model"], session_hash=session)
        assert "their-secret-judge" not in text_of(payload), text_of(payload)
        said.add("the judge box unchanged" if kind == "complete" else refused(kind, payload, NOT_THEIRS))
    return "; ".join(sorted(said))


@attack("Align align_projects: lists only the visitor's own projects", modes=PUBLIC)
def _(url, studio, mode, tmp):
    name, _ = _victim(studio)
    kind, payload = raw_call(url, "align_projects", [None], session_hash=_session())
    assert kind == "complete" and name not in text_of(payload), text_of(payload)
    return "another visitor's project is not listed"


# --- the third round's Align and dataset findings, on the local studio ------------------------------


def _results(studio):
    from app.own_files import batch_results

    return batch_results(studio.workspace())


def _batch_result(url: str, studio, tmp, session: str) -> str:
    """A plain CSV scored in Batch with the Helpfulness preset; the result's name, as Align lists it."""
    csv = write_rows(tmp / f"mine-{session}.csv", PLAIN)
    kind, payload = raw_call(
        url,
        "score_batch",
        [_upload(url, csv), MAPPING, "default model", "score_only", 4, "orig_score", None, "hf", "Helpfulness"]
        + NO_RUBRIC_TEXT,
        session_hash=session,
    )
    assert kind == "complete", payload
    kind, payload = raw_call(url, "refresh_choices", [None, None], session_hash=session)  # as the page loads
    assert kind == "complete", payload
    return next(name for label, name in _results(studio) if label.startswith(f"mine-{session}.csv"))


def _create(url, session, choice):
    start = [choice, None, "default model", 0.3, FILE_RUBRIC]
    kind, payload = raw_call(url, "align_create", start, session_hash=session)
    assert kind == "complete", payload
    return payload[0]["value"] if isinstance(payload[0], dict) else payload[0]


def _view(url, session, project, grader=""):
    kind, payload = raw_call(url, "align_view", [project, "uncertain", True, grader, None], session_hash=session)
    assert kind == "complete", payload
    return payload


def _row_on_card(card: str) -> int:
    return int(re.search(r"Row (\d+) ·", card).group(1))


@attack("Align Start project on a plain CSV's batch result (rubric preset), item 13", modes=("local",))
def _(url, studio, mode, tmp):
    session = _session()
    project = _create(url, session, _batch_result(url, studio, tmp, session))
    card = _view(url, session, project)[0]
    assert "orig_criteria" not in card and "Error" not in card and "Row " in card
    assert "helpful" in card.lower()  # the preset's criterion, shown on the card
    return "works: the preset's rubric on every card"


@attack("two local graders on one project: own rows, own Undo, one answer a card (item 11)", modes=("local",))
def _(url, studio, mode, tmp):
    ann, bob = _session(), _session()
    project = _create(url, ann, _batch_result(url, studio, tmp, ann))
    raw_call(url, "align_projects", [None], session_hash=bob)
    row_ann = _row_on_card(_view(url, ann, project)[0])
    row_bob = _row_on_card(_view(url, bob, project)[0])
    assert row_ann != row_bob  # the row on Ann's card is not offered to Bob
    for session, score in ((ann, "4"), (bob, "2")):
        kind, payload = raw_call(url, "align_label", [project, None, score, "", "", None], session_hash=session)
        assert kind == "complete", payload
    kind, payload = raw_call(url, "align_undo", [project, "", None], session_hash=bob)
    assert kind == "complete" and f"row {row_bob}" in str(payload), payload
    kind, payload = raw_call(url, "align_undo", [project, "", None], session_hash=bob)
    assert "Nothing to undo" in str(payload)
    assert LabelProject.open(studio.root / "labels" / project).labels() == {row_ann: 4}  # Bob's Undo kept Ann's
    # a second answer
    kind, payload = raw_call(url, "align_label", [project, None, "5", "", "", None], session_hash=ann)
    assert kind == "error" and "answered already" in str(payload), payload
    kind, payload = raw_call(url, "align_skip", [project, None, "", None], session_hash=ann)  # and a skip of it
    assert kind == "error" and "answered already" in str(payload), payload
    assert LabelProject.open(studio.root / "labels" / project).labels() == {row_ann: 4}
    return "separate: different rows, each Undo its own, a second answer refused"


@attack("label values True, 1e0, +3, a full-width 3 and 3.0 (item 14)", modes=("local",))
def _(url, studio, mode, tmp):
    session = _session()
    project = _create(url, session, _batch_result(url, studio, tmp, session))
    for value in ("True", "1e0", "+3", "\uff13", "3.0"):
        _view(url, session, project)
        kind, payload = raw_call(url, "align_label", [project, None, value, "", "", None], session_hash=session)
        assert kind == "error" and "not a label" in str(payload), (value, payload)
    assert LabelProject.open(studio.root / "labels" / project).labels() == {}
    return "refused (not a label), nothing recorded"


@attack("four Align Start project requests at once on a 400-row file (item 10)", modes=("local",))
def _(url, studio, mode, tmp):
    scored = write_rows(tmp / "big-scored.jsonl", _scored_rows(400, 9))
    for _ in range(3):
        time.sleep(1.1)  # a project is named by its second: each attempt races for a new name
        labels = studio.root / "labels"
        before = set(labels.iterdir()) if labels.is_dir() else set()
        tabs = [_session() for _ in range(4)]  # a double click in two tabs: four requests, one name
        files = [_upload(url, scored) for _ in tabs]
        go = threading.Barrier(4)

        def start(i, go=go, files=files, tabs=tabs):
            go.wait()
            start = [None, files[i], "default model", 0.3, FILE_RUBRIC]
            return raw_call(url, "align_create", start, session_hash=tabs[i])

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(start, range(4)))
        made = set(labels.iterdir()) - before
        assert made and len(made) == sum(kind == "complete" for kind, _ in answers), answers
        for kind, payload in answers:
            assert kind == "complete" or "already exists" in str(payload), payload
        for folder in made:  # every project that exists opens whole: no interleaved rows.jsonl, no temporary folder
            assert not folder.name.startswith(".")
            assert len(LabelProject.open(folder).rows) == 400
    return "whole projects only; the others told the name exists"


@attack("two visitors writing 2,000-row datasets under one name at once (item 10)", modes=("local",))
def _(url, studio, mode, tmp):
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
        name = f"race-name-{uuid.uuid4().hex[:6]}-{attempt}"
        go = threading.Barrier(2)

        def write(session, name=name, go=go):
            go.wait()
            return raw_call(url, "dataset_write", [name, "none"], session_hash=session)

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(write, visitors))
        assert sorted(kind for kind, _ in answers) == ["complete", "error"], answers
        refusal = next(payload for kind, payload in answers if kind == "error")
        assert "exists already" in str(refusal) and "choose another name" in str(refusal)
        stats = next(payload for kind, payload in answers if kind == "complete")[0]
        lines = (studio.root / "datasets" / name / "train.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == stats["train"]  # one writer's lines, each whole
        assert all("prompt" in json.loads(line) for line in lines)
    return "one winner; the other told the name exists; train.jsonl whole"
