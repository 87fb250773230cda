"""In the browser, choosing a fine-tuned judge proposes the rubric it was trained with: in Score at
once, in Batch for an uploaded file whose rows carry no rubric (not the first preset)."""

import json

import pytest

from raft.files import write_rows
from raft.rubrics import presets
from raft.synthetic import generate_rows
from tests.app.test_browser import _pick, page  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.browser


def test_a_fine_tuned_judge_brings_its_rubric_to_score_and_batch(page, launched, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    url, studio = launched
    run = studio.runs_dir / "run-concise"
    (run / "model").mkdir(parents=True)
    manifest = {"weights": "model", "scale": [1, 5], "mode": "score_only", "rubric": presets()["Conciseness"].to_dict()}
    (run / "judge.json").write_text(json.dumps(manifest))
    rows = [{"question": r["orig_instruction"], "answer": r["orig_response"]} for r in generate_rows(4, seed=3)]
    csv = write_rows(tmp_path / "plain.csv", rows)

    page.goto(url)
    page.get_by_role("tab", name="Score").click()
    expect(page.locator("#score-preset input")).to_have_value("Helpfulness", timeout=30_000)
    _pick(page, "score-model", "run: run-concise")
    expect(page.locator("#score-preset input")).to_have_value("Conciseness", timeout=30_000)

    page.get_by_role("tab", name="Batch").click()
    _pick(page, "batch-model", "run: run-concise")
    page.locator("#batch-file input[type=file]").set_input_files(str(csv))
    expect(page.locator("#batch-map-orig_response input")).to_have_value("answer", timeout=30_000)
    expect(page.locator("#batch-map-rubric input")).to_have_value("Conciseness", timeout=30_000)
