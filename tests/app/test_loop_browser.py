"""The whole loop a newcomer runs, in a real browser, with a page reload between every step: their
own question/answer/score CSV -> Dataset (recognised mapping, a rubric preset for the whole file)
-> Write -> Fine-tune (a short run on the tiny model) -> Batch on the same CSV with that run ->
Align (a project on the batch result, 10 rows labelled blind by keyboard, *Calibrate to my labels*,
*Fine-tune on my labels*, *Compare* before/after) -> Export (the judge's zip downloaded).

At every step the page shows no error and no server path, and the step reads what the one before
wrote: the dataset chosen, the rubric carried from the CSV's preset into Align and the export, the
runs offered in Batch, Align and Export. Saves the README's Export screenshot."""

import json
import re
import zipfile

import pytest

from raft.files import write_rows
from tests.app.test_browser import DOCS, _pick, _reload, _set_steps, page  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.browser

PRESET = "Factual accuracy"
CRITERION = "Are the claims in the response factually correct?"


def _clean(page, *paths) -> None:  # noqa: F811
    """What a newcomer must never see: an error (toast or panel) or a folder of the server."""
    from playwright.sync_api import expect

    expect(page.locator(".toast-body")).to_have_count(0)
    body = page.locator("body").inner_text()
    assert not re.search(r"\bError\b", body), re.search(r".{0,200}\bError\b.{0,200}", body, re.S).group(0)
    for path in paths:
        assert str(path) not in body, f"the page shows the server path {path}"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_whole_loop_with_a_reload_between_every_step(page, tmp_path, launched):  # noqa: F811
    from playwright.sync_api import expect

    url, studio = launched
    rows = [
        {
            "question": f"What is {i} plus {i + 1}?",
            "answer": f"It is {2 * i + 1 + (i % 3) - 1}.",
            "score": 5 - 2 * (i % 3),
        }
        for i in range(30)
    ]
    csv = write_rows(tmp_path / "loop.csv", rows)
    hidden = (studio.root, tmp_path)
    page.goto(url)
    # the page opens on the synthetic sample, whose columns fill the mapping as it loads: let that
    # finish first, or it lands after the upload's mapping (a newcomer uploads seconds later, not at once)
    expect(page.locator("#ds-map-status")).to_contain_text("Ready: every field the judge reads", timeout=60_000)

    # 1. Dataset: the columns recognised, a preset for the whole file, written
    page.get_by_role("tab", name="Dataset").click()
    page.get_by_label("uploaded file").check()
    page.locator("#ds-file input[type=file]").set_input_files(str(csv))
    expect(page.locator("#ds-map-orig_instruction input")).to_have_value("question", timeout=30_000)
    expect(page.locator("#ds-map-orig_response input")).to_have_value("answer")
    expect(page.locator("#ds-map-orig_score input")).to_have_value("score")
    _pick(page, "ds-map-rubric", PRESET)
    expect(page.locator("#ds-map-status")).to_contain_text("Ready: every field the judge reads", timeout=30_000)
    page.locator("#ds-name textarea").fill("loop-data")
    page.locator("#dataset-write").click()
    expect(page.get_by_role("cell", name="dataset.json")).to_be_visible(timeout=60_000)
    _clean(page, *hidden)
    assert json.loads((studio.root / "datasets" / "loop-data" / "dataset.json").read_text())["rubric"]["criteria"] == (
        CRITERION
    )

    # 2. Fine-tune: the dataset written is chosen; a short run to the end
    _reload(page)
    page.get_by_role("tab", name="Fine-tune").click()
    expect(page.locator("#ft-dataset input")).to_have_value("loop-data", timeout=30_000)
    _set_steps(page, 4)
    page.get_by_label("Evaluate every").fill("4")
    page.get_by_label("Evaluate every").press("Tab")
    expect(page.locator("#ft-yaml")).to_contain_text("max_steps: 4")
    page.locator("#ft-start").click()
    expect(page.locator("#ft-status")).to_contain_text("step 4 / 4", timeout=300_000)
    expect(page.locator("#ft-status")).to_contain_text("completed")
    _clean(page, *hidden)

    # 3. Batch: the run is offered; the same CSV scored with it and the same preset
    _reload(page)
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-file input[type=file]").set_input_files(str(csv))
    expect(page.locator("#batch-map-orig_score input")).to_have_value("score", timeout=30_000)
    _pick(page, "batch-map-rubric", PRESET)
    _pick(page, "batch-model", "run: run-1")
    page.locator("#batch-button").click()
    expect(page.locator("#batch-summary")).to_contain_text(f"Scored {len(rows)} rows, 0 with errors", timeout=180_000)
    _clean(page, *hidden)

    # 4. Align: a project on that batch result; its rubric is the CSV's preset; 10 rows labelled blind by keys
    _reload(page)
    page.get_by_role("tab", name="Align").click()
    page.get_by_text("Start a project", exact=True).click()
    page.locator("#align-batch input").click()
    page.get_by_role("option", name=re.compile(r"^loop\.csv · run: run-1 · ")).click()
    page.locator("#align-create").click()
    card = page.locator("#align-card")
    expect(card).to_contain_text(f"Rubric: {CRITERION}", timeout=60_000)
    expect(page.locator("#align-judge")).to_contain_text("hidden until you submit")
    _clean(page, *hidden)
    labelled = {}
    for _ in range(10):
        text = card.inner_text()
        key = int(re.search(r"Row (\d+) ·", text).group(1))
        i = int(re.search(r"What is (\d+) plus", text).group(1))  # the newcomer's own row, on the card
        gold = rows[i]["score"]
        card.click()  # focus outside the text boxes: the keys label
        page.keyboard.press(str(gold))
        expect(page.locator("#align-last")).to_contain_text(f"Row {key} labelled {gold}", timeout=30_000)
        expect(card).not_to_contain_text(f"Row {key} ·", timeout=30_000)
        labelled[key] = gold
    project_dir = next((studio.root / "labels").iterdir())
    from raft.labels import LabelProject

    project = LabelProject.open(project_dir)
    assert project.labels() == labelled
    assert project.meta.get("judge") == "run: run-1"  # the judge that scored the batch result
    held = project.counts()["heldout_labelled"]
    assert 1 <= held <= 9

    # 5. Align after a reload: the labels kept; calibrate to them, compare
    _reload(page)
    page.get_by_role("tab", name="Align").click()
    expect(page.locator("#align-agreement")).to_contain_text(f"held-out rows (n = {held})", timeout=60_000)
    expect(card).to_contain_text(f"Rubric: {CRITERION}")
    page.locator("#align-calibrate").click()
    compared = page.locator("#align-compared")
    expect(compared).to_contain_text("A calibrated judge", timeout=60_000)
    expect(page.locator("#align-after input")).to_have_value(re.compile(r"^run: calibrated-"), timeout=30_000)
    page.locator("#align-compare").click()
    expect(compared).to_contain_text(f"Before / after on {held} held-out labels", timeout=120_000)
    _clean(page, *hidden)

    # 6. Fine-tune on my labels: the Fine-tune tab filled with the labels' dataset; a short run
    _reload(page)
    page.get_by_role("tab", name="Align").click()
    expect(compared).to_contain_text(f"Before / after on {held} held-out labels", timeout=60_000)  # kept
    page.locator("#align-finetune").click()
    expect(page.get_by_role("tab", name="Fine-tune")).to_have_attribute("aria-selected", "true", timeout=30_000)
    expect(page.locator("#ft-dataset input")).to_have_value(re.compile(r"^labels-loop"), timeout=30_000)
    expect(page.locator("#ft-steps")).to_contain_text(f"from your labels: {10 - held} training rows", timeout=30_000)
    _set_steps(page, 3)
    expect(page.locator("#ft-yaml")).to_contain_text("max_steps: 3")
    run_name = page.locator("#ft-run-name textarea").input_value()
    assert run_name and run_name != "run-1"
    page.locator("#ft-start").click()
    expect(page.locator("#ft-job input")).to_have_value(re.compile(re.escape(run_name)), timeout=60_000)
    expect(page.locator("#ft-status")).to_contain_text("step 3 / 3", timeout=300_000)
    expect(page.locator("#ft-status")).to_contain_text("completed")
    _clean(page, *hidden)
    assert (studio.runs_dir / run_name).is_dir()

    # 7. Align after a reload: compare the judge fine-tuned on the labels with the batch's judge
    _reload(page)
    page.get_by_role("tab", name="Align").click()
    expect(card).to_contain_text(f"Rubric: {CRITERION}", timeout=60_000)
    page.locator("#align-after input").fill(f"run: {run_name}")
    page.locator("#align-after input").press("Enter")
    page.locator("#align-compare").click()
    expect(compared).to_contain_text(f"Before / after on {held} held-out labels", timeout=120_000)
    expect(compared).to_contain_text(f"run: {run_name}")
    expect(compared).to_contain_text("What to do next")
    _clean(page, *hidden)

    # 8. Export: the run fine-tuned on the labels offered; its folder downloaded as a zip with the rubric
    _reload(page)
    page.get_by_role("tab", name="Export").click()
    page.locator("#export-run input").click()
    page.get_by_role("option", name=run_name, exact=True).click()
    page.locator("#export-write").click()
    expect(page.locator("#export-written")).to_contain_text(f"{run_name}-judge.zip", timeout=120_000)
    _clean(page, *hidden)
    with page.expect_download() as waited:
        page.locator("#export-file a").first.click()
    zipped = tmp_path / "judge.zip"
    waited.value.save_as(zipped)
    with zipfile.ZipFile(zipped) as z:
        names = z.namelist()
        judge = json.loads(z.read(next(n for n in names if n.endswith("judge.json"))))
        texts = [z.read(n).decode("utf-8", "replace") for n in names if n.endswith((".json", ".md"))]
    assert CRITERION in json.dumps(judge)
    assert not any(str(studio.root) in t for t in texts)
    page.screenshot(path=str(DOCS / "export-tab.png"), full_page=False)
