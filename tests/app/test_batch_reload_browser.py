"""In a real browser: a batch says what it does from the click on (the judge loading, rows scored
with the rate and time left), survives a page reload (the Batch tab finds the running job, shows
its rows as they are scored and then its results), and its results are there again after a reload
once it has ended; the Export tab is there after Align. A new batch clears the last one's results
from the screen at once (a newcomer read the old table as the new batch's). Fails on the old studio, whose Batch tab
showed no status until a reload, and an empty form after a reload once the batch had ended.
And the Fine-tune form comes back after a reload though the page reopens on another tab (its kept
copy was read only once the Fine-tune tab was opened, after the load that restores it had run)."""

import re

import pytest

from raft.files import write_rows
from raft.synthetic import generate_rows
from tests.app.test_browser import _reload, page  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.browser


def test_a_running_batch_comes_back_after_a_reload(page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    path = write_rows(tmp_path / "long.jsonl", generate_rows(600, seed=4))
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-file input[type=file]").set_input_files(str(path))
    expect(page.locator("#batch-map-orig_response input")).to_have_value("orig_response", timeout=30_000)
    page.locator("#batch-button").click()
    status = page.locator("#batch-status")
    expect(status).to_contain_text(re.compile(r"loading the judge|of 600 rows"), timeout=30_000)
    expect(status).to_contain_text(re.compile(r"of 600 rows, [0-9.]+ rows/s, about .* left"), timeout=120_000)
    _reload(page)
    page.get_by_role("tab", name="Batch").click()
    expect(status).to_contain_text(re.compile(r"loading the judge|of 600 rows"), timeout=30_000)
    expect(page.locator("#batch-summary")).to_contain_text("Scored 600 rows", timeout=300_000)
    expect(status).to_contain_text("completed")
    expect(page.locator("#batch-table")).to_contain_text("expected_score")
    _reload(page)  # ended: the newest result comes back, with its downloads
    page.get_by_role("tab", name="Batch").click()
    expect(page.locator("#batch-summary")).to_contain_text("Scored 600 rows", timeout=30_000)
    expect(status).to_contain_text("long.jsonl")
    expect(page.locator("#batch-table")).to_contain_text("expected_score")
    expect(page.locator("#batch-downloads")).to_contain_text("long-default-model-scored")  # name and extension apart
    other = write_rows(tmp_path / "other.jsonl", generate_rows(200, seed=5))
    page.locator("#batch-file input[type=file]").set_input_files(str(other))
    expect(page.locator("#batch-map-orig_response input")).to_have_value("orig_response", timeout=30_000)
    page.locator("#batch-button").click()  # a new batch: the last one's results leave the screen at once
    expect(page.locator("#batch-summary")).not_to_contain_text("Scored 600 rows", timeout=5_000)
    expect(page.locator("#batch-downloads")).not_to_contain_text("long-default-model-scored", timeout=5_000)
    expect(page.locator("#batch-summary")).to_contain_text("Scored 200 rows", timeout=300_000)
    page.get_by_role("tab", name="Export").click()
    expect(page.locator("#export-write")).to_be_visible()  # its screenshot: test_loop_browser.py, with a judge written


def test_the_fine_tune_form_comes_back_after_a_reload(page):  # noqa: F811
    from playwright.sync_api import expect

    fields = {"Max steps (-1: by epochs)": "9", "Learning rate": "0.0005", "Max length": "384"}
    page.get_by_role("tab", name="Fine-tune").click()
    for label, value in fields.items():
        page.get_by_label(label).fill(value)
        page.get_by_label(label).press("Tab")
    expect(page.locator("#ft-yaml")).to_contain_text("max_steps: 9")
    expect(page.locator("#ft-yaml")).to_contain_text("max_length: 384")  # every field's change has reached the server
    page.wait_for_timeout(5_000)  # the kept copy is written by a round trip of its own (slow on a busy machine)
    _reload(page)
    page.wait_for_timeout(5_000)  # the page's load events run while it shows the Dataset tab, as a visitor's does
    page.get_by_role("tab", name="Fine-tune").click()
    for label, value in fields.items():
        expect(page.get_by_label(label)).to_have_value(value)
    expect(page.locator("#ft-yaml")).to_contain_text("max_steps: 9")
