"""Align keeps its choices and its grader across reloads, in the browser (app.align_state): the
batch result starts at the newest and comes back as chosen, the judge to compare after
fine-tuning comes back as chosen, and the labeller is the same browser after a reload, so Undo
takes back a label given before it."""

import json
import re
import time

import pytest

from app.batch_tab import meta_path
from raft.batch import score_file
from raft.data import read_jsonl
from raft.files import write_rows
from raft.models import JUDGE_MANIFEST
from raft.synthetic import generate_rows
from tests.app.test_browser import page  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.browser


def _result(studio, tiny_judge, tmp_path, name, when):
    rows = write_rows(tmp_path / f"{name}.jsonl", generate_rows(12, seed=len(name)))
    scored = studio.root / "batch" / f"{name}-scored-{name}.jsonl"
    score_file(tiny_judge, rows, scored)
    meta = {"file": f"{name}.jsonl", "judge": "tiny", "time": when, "rows": 12, "scored": 12}
    meta_path(scored).write_text(json.dumps(meta))
    return {r["row"]: int(r["orig_score"]) for r in read_jsonl(scored)}


def test_align_keeps_its_result_judge_and_grader_after_a_reload(page, launched, tiny_judge, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    url, studio = launched
    gold = _result(studio, tiny_judge, tmp_path, "older", time.time() - 3600)
    _result(studio, tiny_judge, tmp_path, "newer", time.time())
    run = studio.runs_dir / "run-kept"  # a finished judge the pickers list
    (run / "model").mkdir(parents=True)
    (run / JUDGE_MANIFEST).write_text(json.dumps({"scale": [1, 5], "mode": "score_only"}))

    page.goto(url)
    page.get_by_role("tab", name="Align").click()
    page.get_by_text("Start a project", exact=True).click()
    batch = page.locator("#align-batch input")
    expect(batch).to_have_value(re.compile(r"^newer\.jsonl · tiny"), timeout=60_000)  # the newest, not "(none)"
    batch.click()
    page.get_by_role("option", name=re.compile(r"^older\.jsonl · tiny")).click()
    after = page.locator("#align-after input")
    after.click()
    page.get_by_role("option", name="run: run-kept").click()
    expect(after).to_have_value("run: run-kept")
    time.sleep(1)  # the choice is written to the browser's storage

    page.reload()
    page.get_by_role("tab", name="Align").click()
    page.get_by_text("Start a project", exact=True).click()
    expect(batch).to_have_value(re.compile(r"^older\.jsonl · tiny"), timeout=60_000)
    expect(after).to_have_value("run: run-kept")

    page.locator("#align-create").click()
    card, panel = page.locator("#align-card"), page.locator("#align-agreement")
    expect(card).to_contain_text("Rubric", timeout=60_000)
    grader = re.search(r"You label as (browser [0-9a-f]{8})", panel.inner_text()).group(1)
    key = int(re.search(r"Row (\d+) ·", card.inner_text()).group(1))
    card.click()
    page.keyboard.press(str(gold[key]))
    expect(page.locator("#align-last")).to_contain_text(f"Row {key} labelled {gold[key]}", timeout=30_000)

    page.reload()
    page.get_by_role("tab", name="Align").click()
    expect(panel).to_contain_text(f"You label as {grader}", timeout=60_000)  # the same grader after a reload
    page.locator("#align-undo").click()
    expect(page.locator("#align-last")).to_contain_text(f"Undid the label {gold[key]} of row {key}", timeout=30_000)
