"""In a real browser: the Score tab's pairwise view (issue 25). Two answers side by side are
compared, the page shows P(A) for each order and combined, the pair's position bias and the bar of
P(A) against P(B); a hostile instruction stays text. Saves docs/pairwise-score.png."""

import pytest

from tests.app.test_browser import DOCS, page  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """The studio's default here: the real default model where it is prepared already (the screenshot
    then shows a judge, not random weights), else a tiny model whose tokenizer writes ' A' and ' B'
    as single tokens."""
    from raft.models import build_tiny_model, default_model_dir, default_ready

    if default_ready():
        return default_model_dir()
    return build_tiny_model(tmp_path_factory.mktemp("tiny_pairs_browser") / "model", pairwise=True)


def test_the_pairwise_score_view(page):  # noqa: F811
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Score").click()
    page.locator("#pair-score").get_by_text("Compare two answers (pairwise)").click()
    page.locator("#pair-instruction textarea").fill('Name the capital of France. <img src=x onerror="alert(1)">')
    page.locator("#pair-reference textarea").fill("Paris")
    page.locator("#pair-a textarea").fill("The capital of France is Paris, on the Seine.")
    page.locator("#pair-b textarea").fill("I believe it is Lyon.")
    page.locator("#pair-button").click()
    result = page.locator("#pair-result")
    expect(result).to_contain_text("P(A is better)", timeout=120_000)
    expect(result).to_contain_text("A shown first: P(A)")
    expect(result).to_contain_text("B shown first: P(A)")
    expect(result).to_contain_text("Position bias of this pair")
    plot = page.locator("#pair-plot")
    expect(plot).to_contain_text("combined (order-free)", timeout=30_000)
    expect(plot).to_contain_text("n = 2 passes")
    assert page.locator("#pair-score img[src=x]").count() == 0
    DOCS.mkdir(exist_ok=True)
    page.locator("#pair-score").scroll_into_view_if_needed()
    page.locator("#pair-score").screenshot(path=str(DOCS / "pairwise-score.png"))
