"""Max steps typed while the chosen dataset's step proposal is still on its way is kept: the
proposal is applied in the browser only if the field still holds what it saw (the proposal is
slowed here to 2 s, as on a busy machine)."""

import time

import pytest

from app import finetune_form
from raft.data import prepare_dataset
from raft.files import write_rows
from raft.synthetic import generate_rows
from tests.app.test_browser import _pick, page  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.browser


def test_steps_typed_before_the_proposal_lands_are_kept(page, launched, tmp_path, monkeypatch):  # noqa: F811
    from playwright.sync_api import expect

    url, studio = launched
    rows = write_rows(tmp_path / "rows.jsonl", generate_rows(40, seed=5))
    for name in ("data-a", "data-b"):
        prepare_dataset(rows, studio.workspace().datasets / name, validation_ratio=0.1)
    counted = finetune_form.training_rows

    def slow(folder):
        time.sleep(2.0)
        return counted(folder)

    monkeypatch.setattr(finetune_form, "training_rows", slow)
    page.goto(url)
    page.get_by_role("tab", name="Fine-tune").click()
    steps = page.get_by_label("Max steps (-1: by epochs)")
    expect(page.locator("#ft-steps")).to_contain_text("steps proposed", timeout=60_000)
    proposed = steps.input_value()
    assert proposed != "100"  # nothing typed: the proposal is applied
    chosen = page.locator("#ft-dataset input").input_value()
    _pick(page, "ft-dataset", "data-a" if chosen == "data-b" else "data-b")
    steps.fill("7")  # typed at once, while the new dataset's proposal is on its way
    steps.press("Tab")
    time.sleep(4)  # the proposal has landed
    expect(steps).to_have_value("7")
