"""In a real browser: the Score tab's item, rubric and result come back after a reload (a
newcomer's reload emptied the tab, losing the result just read). Fails on the old studio."""

import pytest

from tests.app.test_browser import _reload, page  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.browser


def test_the_score_tab_comes_back_after_a_reload(page):  # noqa: F811
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Score").click()
    page.get_by_role("button", name="Random example").click()
    instruction = page.get_by_label("Instruction", exact=True)
    expect(instruction).not_to_have_value("", timeout=30_000)
    asked = instruction.input_value()
    page.locator("#score-button").click()
    result = page.locator("#score-result")
    expect(result).to_contain_text("expected score", timeout=120_000)
    said = result.inner_text()
    page.wait_for_timeout(3_000)  # the kept copy is written by a round trip of its own
    _reload(page)
    page.get_by_role("tab", name="Score").click()
    expect(instruction).to_have_value(asked, timeout=30_000)
    expect(result).to_have_text(said, timeout=30_000)
    expect(page.locator("#score-plot")).to_contain_text("expected score")
