"""The studio in a real browser (Debian's chromium driven by playwright): the newcomer's path with a
page reload between every step (own CSV -> mapped dataset -> a run stopped, resumed and used ->
a batch -> its report card), every tab, and the HTML report. Saves a screenshot of each tab for the
README. Skipped only outside CI when chromium is missing."""

import os
import re
import shutil
from pathlib import Path

import pytest

from raft.files import write_rows
from raft.synthetic import generate_rows

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(launched):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # the machine is shared: every event may wait its turn

    url, _ = launched
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url)
        yield page
        browser.close()


def _pick(page, elem_id: str, option: str) -> None:
    """Choose an option of a Gradio dropdown as a person does: open it, click the option."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _set_steps(page, steps: int) -> None:
    """Type Max steps as a person does, and type it again if the dataset's own proposal (a round
    trip started when the dataset was chosen) lands after the typing, as a person would see and do."""
    from playwright.sync_api import TimeoutError as Timeout
    from playwright.sync_api import expect

    box = page.get_by_label("Max steps (-1: by epochs)")
    for _ in range(3):
        box.fill(str(steps))
        box.press("Tab")
        page.wait_for_timeout(3_000)  # the proposal, if one is under way, lands within it
        try:
            expect(page.locator("#ft-yaml")).to_contain_text(f"max_steps: {steps}", timeout=10_000)
            expect(box).to_have_value(str(steps), timeout=1_000)
            return
        except (AssertionError, Timeout):
            continue
    expect(page.locator("#ft-yaml")).to_contain_text(f"max_steps: {steps}")


def _reload(page) -> None:
    """A page reload, as a visitor presses F5 (the 2 s job timer keeps the network busy: wait for the tabs)."""
    from playwright.sync_api import expect

    page.reload()
    expect(page.get_by_role("tab", name="Evaluate")).to_be_visible()


def _shot(page, name: str) -> None:
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / f"{name}-tab.png"), full_page=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_newcomers_path_with_a_reload_between_every_step(page, tmp_path, launched):
    """Own CSV (question, answer, score; no rubric) -> dataset -> run stopped in validation, resumed
    -> one item scored with the run -> the same CSV in batch -> its report card; reloading each time."""
    from playwright.sync_api import expect

    url, studio = launched
    rows = [
        {
            "question": f"What is {i} plus {i + 1}?",
            "answer": f"It is {2 * i + 1 + (i % 3) - 1}.",
            "score": 5 - 2 * (i % 3),
        }
        for i in range(40)
    ]
    csv = write_rows(tmp_path / "newcomer.csv", rows)
    page.goto(url)
    # the synthetic sample's columns fill the mapping as the page loads: let that land before the upload's
    expect(page.locator("#ds-map-status")).to_contain_text("Ready: every field the judge reads", timeout=60_000)

    # 1. own data in one step: the columns are recognised, a preset gives the rubric, preview, write
    page.get_by_role("tab", name="Dataset").click()
    page.get_by_label("uploaded file").check()
    page.locator("#ds-file input[type=file]").set_input_files(str(csv))
    expect(page.locator("#ds-map-orig_instruction input")).to_have_value("question", timeout=30_000)
    expect(page.locator("#ds-map-orig_response input")).to_have_value("answer")
    expect(page.locator("#ds-map-orig_score input")).to_have_value("score")
    _pick(page, "ds-map-rubric", "Factual accuracy")
    expect(page.locator("#ds-map-status")).to_contain_text("Ready: every field the judge reads", timeout=30_000)
    expect(page.locator("#ds-map-words")).to_have_text(  # people's words, not the judge's field names
        "Columns: question → instruction, answer → response, score → score"
    )
    page.locator("#dataset-preview").click()
    expect(page.locator("#ds-target textarea")).to_have_value(re.compile(r"^\[RESULT\] \d"), timeout=60_000)
    page.locator("#ds-name textarea").fill("newcomer-data")
    page.locator("#dataset-write").click()
    expect(page.get_by_role("cell", name="dataset.json")).to_be_visible(timeout=30_000)
    _shot(page, "dataset")

    # 2. after a reload the Fine-tune tab still has the dataset: start a short run
    _reload(page)
    page.get_by_role("tab", name="Fine-tune").click()
    expect(page.locator("#ft-dataset input")).to_have_value("newcomer-data", timeout=30_000)
    expect(page.locator("#ft-about")).to_contain_text("Trains in mode")
    _set_steps(page, 60)  # long enough that a reload and a Stop come before the end (10 steps took 8 s)
    page.get_by_label("Evaluate every").fill("20")
    page.get_by_label("Evaluate every").press("Tab")
    expect(page.locator("#ft-yaml")).to_contain_text("max_steps: 60")
    page.locator("#ft-start").click()
    expect(page.locator("#ft-status")).to_contain_text("running", timeout=60_000)

    # 3. reload mid-job: the job is still chosen and watched; stop it, resume it to the end
    _reload(page)
    page.get_by_role("tab", name="Fine-tune").click()
    expect(page.locator("#ft-job input")).to_have_value(re.compile("run-1"), timeout=30_000)
    expect(page.locator("#ft-status")).to_contain_text("running", timeout=30_000)
    page.locator("#ft-stop").click()
    expect(page.locator("#ft-status")).to_contain_text("stopped", timeout=180_000)
    _reload(page)
    page.get_by_role("tab", name="Fine-tune").click()
    expect(page.locator("#ft-status")).to_contain_text("stopped", timeout=30_000)
    page.locator("#ft-resume").click()
    expect(page.locator("#ft-status")).to_contain_text("completed", timeout=300_000)
    expect(page.locator("#ft-status")).to_contain_text("step 60 / 60")
    _shot(page, "finetune")

    # 4. after a reload the run is a judge to pick: score one item with it
    _reload(page)
    page.get_by_role("tab", name="Score").click()
    _pick(page, "score-model", "run: run-1")
    page.get_by_role("button", name="Random example").click()
    expect(page.get_by_label("Response to evaluate")).not_to_have_value("")
    expect(page.locator("#score-preset input")).to_have_value(re.compile(r"^\(custom"))  # the example's own rubric
    page.locator("#score-button").click()
    expect(page.locator("#score-result")).to_contain_text("run: run-1", timeout=90_000)
    expect(page.locator("#score-result")).to_contain_text("expected score")
    expect(page.locator("#score-plot .js-plotly-plot").first).to_be_visible()
    _shot(page, "score")

    # 5. the same CSV in batch with the run: mapped by name, the same preset; gold and response follow the mapping
    _reload(page)
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-file input[type=file]").set_input_files(str(csv))
    expect(page.locator("#batch-map-orig_score input")).to_have_value("score", timeout=30_000)
    expect(page.locator("#batch-map-rubric input")).to_have_value("Helpfulness")
    _pick(page, "batch-map-rubric", "Factual accuracy")
    _pick(page, "batch-model", "run: run-1")
    page.locator("#batch-button").click()
    expect(page.locator("#batch-summary")).to_contain_text("Scored 40 rows, 0 with errors", timeout=120_000)
    expect(page.locator("#batch-summary")).to_contain_text("Pearson")
    expect(page.locator("#batch-table")).to_contain_text(rows[0]["answer"])
    _shot(page, "batch")

    # 6. after a reload the result is listed by file, judge and time, newest chosen: its report card
    _reload(page)
    page.get_by_role("tab", name="Evaluate").click()
    expect(page.locator("#ev-batch input")).to_have_value(re.compile(r"^newcomer\.csv · run: run-1 · "), timeout=30_000)
    page.locator("#ev-button").click()
    expect(page.locator("#ev-card")).to_contain_text("run: run-1 on newcomer.csv · n = 40", timeout=60_000)
    expect(page.locator("#ev-metrics .js-plotly-plot").first).to_be_visible()
    _shot(page, "evaluate")


def test_all_tabs_score_batch_and_training(page, tmp_path):
    from playwright.sync_api import expect

    for name in ("Dataset", "Fine-tune", "Score", "Batch"):
        page.get_by_role("tab", name=name).click()
        expect(page.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true")

    page.get_by_role("tab", name="Score").click()
    page.get_by_role("button", name="Random example").click()
    expect(page.get_by_label("Response to evaluate")).not_to_have_value("")
    page.locator("#score-button").click()
    expect(page.locator("#score-result")).to_contain_text("expected score", timeout=90_000)
    expect(page.locator("#score-plot .js-plotly-plot").first).to_be_visible()

    page.get_by_role("tab", name="Batch").click()
    rows = generate_rows(6, seed=8)
    rows[2]["orig_response"] = ""
    path = write_rows(tmp_path / "rows.csv", rows)
    page.locator("#batch-file input[type=file]").set_input_files(str(path))
    page.locator("#batch-button").click()
    expect(page.locator("#batch-summary")).to_contain_text("Scored 6 rows, 1 with errors", timeout=90_000)

    page.get_by_role("tab", name="Dataset").click()
    page.locator("#dataset-preview").click()
    expect(page.get_by_label("Target")).to_have_value(re.compile(r"^\[RESULT\] \d"), timeout=60_000)
    page.locator("#dataset-write").click()

    page.get_by_role("tab", name="Fine-tune").click()
    expect(page.locator("#ft-dataset input")).to_have_value("my-judge-data", timeout=30_000)
    _set_steps(page, 400)
    page.locator("#ft-start").click()
    expect(page.locator("#ft-status")).to_contain_text("running", timeout=60_000)
    training = re.compile(r"training: [1-9]\d* ?/ ?400 steps done")
    expect(page.locator("#ft-status")).to_contain_text(training, timeout=120_000)
    page.locator("#ft-stop").click()
    expect(page.locator("#ft-status")).to_contain_text("stopped", timeout=120_000)


def test_the_evaluate_view_and_its_html_report(page, tmp_path, launched):
    from playwright.sync_api import expect

    rows = generate_rows(24, seed=9, noise=0.5)
    for i, r in enumerate(rows):
        r["category"] = ["math", "writing", "coding"][i % 3]
    path = write_rows(tmp_path / "gold.jsonl", rows)
    page.goto(launched[0])
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-file input[type=file]").set_input_files(str(path))
    page.locator("#batch-button").click()
    expect(page.locator("#batch-summary")).to_contain_text("Scored 24 rows", timeout=90_000)

    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#ev-file input[type=file]").set_input_files(str(launched[1].root / "batch" / _newest(launched)))
    page.get_by_label("Group by (columns, comma-separated)").fill("category")
    page.locator("#ev-button").click()
    expect(page.locator("#ev-card")).to_contain_text("pearson", timeout=60_000)
    expect(page.locator("#ev-card")).to_contain_text("By category")
    expect(page.locator("#ev-metrics .js-plotly-plot").first).to_be_visible()

    reports = (launched[1].root / "reports").glob("*-report.html")  # named by file and judge, not a hash
    html = max(reports, key=lambda p: p.stat().st_mtime)
    page.goto(html.as_uri())
    expect(page.locator("h1")).not_to_contain_text("#")  # the heading is a heading, no literal '###'

    expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=30_000)
    expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible()
    expect(page.locator("table").first).to_contain_text("pearson")


def _newest(launched):
    files = sorted((launched[1].root / "batch").glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
    return files[-1].name
