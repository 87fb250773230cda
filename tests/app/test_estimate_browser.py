"""The system-estimate panels in a real browser: Evaluate (a scored file labelled on a quarter of
its rows, two systems, their difference) and Align (the estimate appearing and updating as
held-out rows are labelled by keyboard). Saves the README's screenshot of each panel.

The judge's scores here are simulated (gold plus a bias and noise), so that the panels show what a
judge that correlates buys; the tiny test model's scores would not."""

import json
import re
import time

import numpy as np
import pytest

from app.batch_tab import meta_path
from raft.files import write_rows
from raft.synthetic import generate_rows
from tests.app.test_browser import DOCS, page  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.browser


def _scored(n: int, labelled_every: int) -> list[dict]:
    """Synthetic rows as a Batch result leaves them, two systems, the judge biased by +0.6."""
    rng = np.random.default_rng(7)
    rows = []
    for i, r in enumerate(generate_rows(n, seed=21)):
        gold = int(r["orig_score"])
        expected = float(np.clip(0.8 * gold + 1.2 + rng.normal(0, 0.5), 1, 5))
        probs = np.exp(-((np.arange(1, 6) - expected) ** 2))
        probs = (probs / probs.sum()).tolist()
        rows.append(
            {
                **{k: v for k, v in r.items() if k not in ("output", "orig_feedback")},
                "orig_score": gold if (i // 2) % labelled_every == 0 else None,  # both systems of a prompt
                "gold_all": gold,
                "system": "assistant-v2" if i % 2 else "assistant-v1",
                "idx": i // 2,
                "expected_score": expected,
                "mode_score": int(np.argmax(probs)) + 1,
                "probs": probs,
                "score_mass": 0.9,
                "error": None,
                "row": i + 1,
            }
        )
    return rows


def _publish(studio, name: str, rows: list[dict]) -> None:
    path = studio.root / "batch" / f"{name}-scored.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_rows(path, rows)
    meta = {"file": f"{name}.jsonl", "judge": "my-judge", "time": time.time(), "rows": len(rows), "scored": len(rows)}
    meta_path(path).write_text(json.dumps(meta))


def test_estimate_panels_in_evaluate_and_align(page, launched, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    url, studio = launched
    _publish(studio, "system-eval", _scored(160, 4))
    page.goto(url)
    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#ev-batch input").click()
    page.get_by_role("option", name=re.compile(r"^system-eval\.jsonl · my-judge")).click()
    page.get_by_label("Group by (columns, comma-separated)").fill("system")
    page.get_by_label("Compare two systems").fill("assistant-v2, assistant-v1")
    page.locator("#ev-estimate").click()
    card = page.locator("#ev-estimate-card")
    expect(card).to_contain_text("from 40 labelled and 120 judged-only rows", timeout=60_000)
    expect(card).to_contain_text("labels + judge (PPI++")
    expect(card).to_contain_text("assistant-v2 minus assistant-v1 on 80 shared prompts")
    expect(page.locator("#ev-estimate-plot .main-svg").first).to_be_visible(timeout=30_000)
    page.locator("#ev-estimate-card").scroll_into_view_if_needed()
    page.locator("#ev-estimate-card").locator("xpath=ancestor::div[contains(@class,'block')][last()]").screenshot(
        path=str(DOCS / "estimate-evaluate.png")
    )

    rows = _scored(60, 10**9)  # nobody labelled yet
    gold = {r["row"]: r["gold_all"] for r in rows}
    _publish(studio, "team", rows)
    page.reload()
    page.get_by_role("tab", name="Align").click()
    page.get_by_text("Start a project", exact=True).click()
    page.locator("#align-batch input").click()
    page.get_by_role("option", name=re.compile(r"^team\.jsonl · my-judge")).click()
    page.locator("#align-create").click()
    align_card, estimate = page.locator("#align-card"), page.locator("#align-estimate")
    expect(align_card).to_contain_text("Rubric", timeout=60_000)
    expect(estimate).to_contain_text("Label at least 2 rows", timeout=30_000)
    held_seen = 0
    for _ in range(40):
        text = align_card.inner_text()
        key = int(re.search(r"Row (\d+) ·", text).group(1))
        held_seen += "held-out" in text
        align_card.click()
        page.keyboard.press(str(gold[key]))
        expect(page.locator("#align-last")).to_contain_text(f"Row {key} labelled {gold[key]}", timeout=30_000)
        expect(align_card).not_to_contain_text(f"Row {key} ·", timeout=30_000)
        if held_seen >= 8:
            break
    expect(estimate).to_contain_text(f"({held_seen} held-out labels", timeout=30_000)
    expect(estimate).to_contain_text("more held-out labels would halve the interval")
    expect(estimate).to_contain_text("training labels are left out of the estimate")
    page.locator("#align-estimate").screenshot(path=str(DOCS / "estimate-align.png"))
