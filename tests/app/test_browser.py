"""The studio in a real browser (Debian's chromium driven by playwright): every tab, a scored item
with its plot, a small batch, and a tiny training job whose progress moves. Saves a screenshot of
the Score tab for the README. Skipped only outside CI when chromium is missing."""

import os
import re
import shutil
from pathlib import Path

import pytest

from raft.files import write_rows
from raft.synthetic import generate_rows

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "score-tab.png"
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
    from playwright.sync_api import sync_playwright

    url, _ = launched
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url)
        yield page
        browser.close()


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
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

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
    page.get_by_label("Max steps (-1: by epochs)").fill("400")
    page.get_by_label("Max steps (-1: by epochs)").press("Tab")
    page.locator("#ft-start").click()
    expect(page.locator("#ft-status")).to_contain_text("running", timeout=60_000)
    expect(page.locator("#ft-status")).to_contain_text(re.compile(r"step [1-9]\d* / 400"), timeout=120_000)
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
    page.screenshot(path=str(SCREENSHOT.with_name("evaluate-tab.png")), full_page=True)

    html = sorted((launched[1].root / "reports").glob("report-*.html"))[-1]
    page.goto(html.as_uri())
    expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=30_000)
    expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible()
    expect(page.locator("table").first).to_contain_text("pearson")


def _newest(launched):
    files = sorted((launched[1].root / "batch").glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
    return files[-1].name
