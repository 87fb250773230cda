"""Graders are people (issue 22 item 11) and a label names the row it was given for (issue 21 item
4): two graders of one local project are two labellers, Undo takes back only your own label, the
row on one grader's card is not offered to the other, and the server refuses a label for a row
the card did not show (a key pressed while the next card loads)."""

from types import SimpleNamespace

import gradio as gr
import pytest

from app import align_tab
from raft.batch import score_file
from raft.files import write_rows
from raft.synthetic import generate_rows


def browser(session):
    """A browser session on a local studio without a login (the same for every visitor)."""
    return SimpleNamespace(username=None, session_hash=session, request=None)


@pytest.fixture
def project(studio, tmp_path, tiny_judge):
    rows = write_rows(tmp_path / "rows.jsonl", generate_rows(16, seed=5))
    scored = tmp_path / "scored.jsonl"
    score_file(tiny_judge, rows, scored)
    return align_tab.create(studio, None, str(scored), None, 0.3, request=browser("a")).value


def test_two_graders_get_different_rows_and_undo_only_their_own(studio, project):
    a, b = browser("session-a"), browser("session-b")
    key_a = align_tab.view(studio, project, "uncertain", True, request=a)[-1]
    key_b = align_tab.view(studio, project, "uncertain", True, request=b)[-1]
    assert key_a != key_b  # the row on A's card is not offered to B
    align_tab.submit(studio, project, key_a, "4", "", request=a)
    align_tab.submit(studio, project, key_b, "2", "", request=b)
    assert "row " + str(key_b) in align_tab.undo(studio, project, request=b)  # B's own label
    assert "Nothing to undo" in align_tab.undo(studio, project, request=b)
    labels = align_tab.open_project(studio, project, a).labels()
    assert labels == {key_a: 4}  # A's label stands
    # a typed name is its own labeller, whatever the session
    key_c = align_tab.view(studio, project, "uncertain", True, "Carla", request=a)[-1]
    align_tab.submit(studio, project, key_c, "5", "", "Carla", request=a)
    assert align_tab.undo(studio, project, request=a).startswith("Undid the label 4")
    assert align_tab.undo(studio, project, "Carla", request=a).startswith("Undid the label 5")


def test_a_label_for_a_row_the_card_did_not_show_is_refused(studio, project):
    a = browser("session-a")
    shown = align_tab.view(studio, project, "uncertain", True, request=a)[-1]
    other = next(k for k in align_tab.open_project(studio, project, a).keys if k != shown)
    with pytest.raises(gr.Error, match="not the row on your card"):
        align_tab.submit(studio, project, other, "3", "", request=a)
    align_tab.submit(studio, project, shown, "3", "", request=a)
    # the key pressed again while the next card loads carries the old row: refused, nothing recorded
    with pytest.raises(gr.Error, match="answered already"):
        align_tab.submit(studio, project, shown, "5", "", request=a)
    with pytest.raises(gr.Error, match="answered already"):
        align_tab.skip(studio, project, shown, request=a)
    assert align_tab.open_project(studio, project, a).labels() == {shown: 3}
    nxt = align_tab.view(studio, project, "uncertain", True, request=a)[-1]
    assert nxt != shown and "skipped" in align_tab.skip(studio, project, nxt, request=a)


@pytest.mark.parametrize("value", [True, "1e0", "+3", "\uff13", "3.0", 3.5, "3 ", " 2"])
def test_label_values_are_the_scales_integers_only(studio, project, value):
    a = browser("session-a")
    key = align_tab.view(studio, project, "uncertain", True, request=a)[-1]
    if value in ("3 ", " 2"):  # plain digits with spaces around are the same integer
        align_tab.submit(studio, project, key, value, "", request=a)
        return
    with pytest.raises(gr.Error, match="not a label|must be an integer"):
        align_tab.submit(studio, project, key, value, "", request=a)
    assert align_tab.open_project(studio, project, a).labels() == {}


def test_the_offers_file_is_charged_to_the_quota(studio, project, monkeypatch):
    """Each grader name typed in one session is a labeller with its own offer: the offers file grew
    uncharged, past a full workspace; it is charged as written, and a card that cannot be offered
    says the workspace is full."""
    from app.studio import Studio
    from app.workspace import Disk, Workspace, staging_root

    local = studio.workspace()
    quota = local.used_bytes() + 2_000
    disk = Disk(local.root / "workspaces", staging_root(local.root), 10**12)
    full = Workspace(local.root, local.staging, quota, disk)
    monkeypatch.setattr(Studio, "workspace", lambda self, request=None: full)
    a = browser("session-a")
    with pytest.raises(gr.Error, match="workspace is full"):
        for i in range(200):  # about 60 bytes more of offers each
            align_tab.view(studio, project, "uncertain", True, f"grader {i}", request=a)
    assert full.used_bytes() <= quota, f"{full.used_bytes() - quota} bytes over the quota"


def test_more_graders_than_rows_are_told_the_rows_are_on_other_cards(studio, project):
    """With every training row on another grader's card (or labelled) the next card said nothing:
    the selection failed on its empty pool of training rows."""
    a = browser("session-a")
    keys = [align_tab.view(studio, project, "uncertain", True, f"grader {i}", request=a)[-1] for i in range(16)]
    assert None not in keys and len(set(keys)) == 16
    card, *_, key = align_tab.view(studio, project, "uncertain", True, "grader 16", request=a)
    assert key is None and "on other graders' cards just now" in card
