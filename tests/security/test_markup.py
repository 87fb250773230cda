"""Markup in a name, in a real browser (Debian's chromium driven by playwright): a dataset name
holding an <img> tag reaches the page in an error toast as text, never as an element, in every
public mode."""

import os
from pathlib import Path

import pytest

from tests.app.test_browser import CHROMIUM, FLAGS

NAME = '<img src=x id=injected onerror="window.__injected=1">'

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.mark.parametrize("mode", ["space", "public", "bucket"])
def test_a_name_holding_markup_shows_as_text_in_the_toast(browser, studios, mode, pytestconfig):
    from playwright.sync_api import expect

    url, _ = studios[mode]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        page.goto(url)
        page.locator("#dataset-preview").click()
        expect(page.get_by_label("Prompt (as the model reads it)")).not_to_have_value("", timeout=90_000)
        page.get_by_label("Dataset name").fill(NAME)
        page.locator("#dataset-write").click()
        toast = page.get_by_test_id("toast-text").first
        expect(toast).to_contain_text("is not a valid name")
        assert "<img" in toast.inner_text(), toast.inner_text()
        assert page.locator("#injected").count() == 0 and page.locator("[data-testid=toast-text] img").count() == 0
        assert page.evaluate("window.__injected") is None
    finally:
        page.close()
    if not hasattr(pytestconfig, "security_results"):
        pytestconfig.security_results = []
    pytestconfig.security_results.append(("markup in a dataset name, in a real browser's toast", mode, "shown as text"))
