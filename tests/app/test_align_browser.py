"""The Align tab in a real browser: a project from a batch result, 12 rows labelled by keyboard,
a reload that keeps them, the agreement panel's n, *Fine-tune on my labels* starting a job on the
tiny model (the page saying what was written, steps proposed from the rows), *Compare* showing
the before/after card with its findings, kept after a reload, and *Calibrate to my labels*
writing a judge the pickers offer. Saves the README's screenshots."""

import json
import re
import time

import pytest

from app.batch_tab import meta_path
from raft.batch import score_file
from raft.data import read_jsonl
from raft.files import write_rows
from raft.labels import LabelProject
from raft.synthetic import generate_rows
from tests.app.test_browser import DOCS, page  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.browser


def test_label_by_keyboard_reload_finetune_and_compare(page, launched, tiny_judge, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    url, studio = launched
    rows = write_rows(tmp_path / "team.jsonl", generate_rows(30, seed=12, noise=0.3))
    scored = studio.root / "batch" / "team-scored.jsonl"
    score_file(tiny_judge, rows, scored)
    gold = {r["row"]: int(r["orig_score"]) for r in read_jsonl(scored)}
    # as the Batch tab leaves a finished result: its description beside it lists it by name
    meta = {"file": "team.jsonl", "judge": "tiny", "time": time.time(), "rows": len(gold), "scored": len(gold)}
    meta_path(scored).write_text(json.dumps(meta))

    page.goto(url)
    page.get_by_role("tab", name="Align").click()
    page.get_by_text("Start a project", exact=True).click()
    page.locator("#align-batch input").click()
    page.get_by_role("option", name=re.compile(r"^team\.jsonl · tiny")).click()
    page.locator("#align-create").click()
    card = page.locator("#align-card")
    expect(card).to_contain_text("Rubric", timeout=60_000)

    for _ in range(12):
        key = int(re.search(r"Row (\d+) ·", card.inner_text()).group(1))
        card.click()  # focus outside the text boxes: the keys label
        page.keyboard.press(str(gold[key]))
        expect(page.locator("#align-last")).to_contain_text(f"Row {key} labelled {gold[key]}", timeout=30_000)
        expect(card).not_to_contain_text(f"Row {key} ·", timeout=30_000)

    project = LabelProject.open(next((studio.root / "labels").iterdir()))
    assert len(project.labels()) == 12 and all(gold[k] == v for k, v in project.labels().items())
    held = project.counts()["heldout_labelled"]
    assert held >= 2

    page.reload()
    page.get_by_role("tab", name="Align").click()
    panel = page.locator("#align-agreement")
    expect(panel).to_contain_text(f"held-out rows (n = {held})", timeout=60_000)
    expect(panel).to_contain_text(f"Labelled: {12 - held} of")
    expect(card).to_contain_text("Rubric")
    page.screenshot(path=str(DOCS / "align-tab.png"), full_page=True)

    page.locator("#align-finetune").click()
    expect(page.get_by_role("tab", name="Fine-tune")).to_have_attribute("aria-selected", "true", timeout=30_000)
    expect(page.locator("#ft-dataset input")).to_have_value(re.compile(r"^labels-team-scored"), timeout=30_000)
    trained = 12 - held  # the page says what was written, and proposes steps from those rows
    expect(page.locator("#ft-steps")).to_contain_text(f"from your labels: {trained} training rows", timeout=30_000)
    expect(page.get_by_label("Max steps (-1: by epochs)")).not_to_have_value("100")
    page.get_by_label("Max steps (-1: by epochs)").fill("3")
    page.get_by_label("Max steps (-1: by epochs)").press("Tab")
    page.locator("#ft-start").click()
    expect(page.locator("#ft-status")).to_contain_text("completed", timeout=180_000)
    run = next(j for j in studio.jobs.list("train")).run_dir

    page.get_by_role("tab", name="Align").click()
    page.locator("#align-after input").fill(f"run: {run.rstrip('/').split('/')[-1]}")
    page.locator("#align-after input").press("Enter")
    page.locator("#align-compare").click()
    compared = page.locator("#align-compared")
    expect(compared).to_contain_text(f"Before / after on {held} held-out labels", timeout=120_000)
    expect(compared).to_contain_text("weighted kappa")
    expect(compared).to_contain_text("pearson")
    expect(compared).to_contain_text("too few to decide")  # fewer than 10 held-out labels: no verdict
    expect(compared).to_contain_text("What to do next")
    expect(page.locator("#align-rows")).to_contain_text("instruction")

    page.reload()  # the comparison is kept with the project
    page.get_by_role("tab", name="Align").click()
    expect(compared).to_contain_text(f"Before / after on {held} held-out labels", timeout=60_000)
    page.locator("#align-calibrate").click()
    expect(compared).to_contain_text("A calibrated judge", timeout=60_000)
    expect(page.locator("#align-after input")).to_have_value(re.compile(r"^run: calibrated-"), timeout=30_000)
    compared.scroll_into_view_if_needed()
    page.screenshot(path=str(DOCS / "align-calibrate.png"), full_page=True)
