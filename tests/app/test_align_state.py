"""What Align keeps in the browser comes back only when it is still valid: a result or a judge
among those offered, an identity of the shape the server makes; the labels name a digest of the
identity, never the identity itself."""

from types import SimpleNamespace

from app import align_state, align_tab


def test_kept_values_come_back_only_when_still_offered():
    results = [("new.jsonl · tiny", "new.jsonl"), ("old.jsonl · tiny", "old.jsonl")]
    assert align_state.kept_choice({"result": "old.jsonl"}, "result", results, "new.jsonl") == "old.jsonl"
    for junk in ({"result": "../../etc/passwd"}, {"result": ["old.jsonl"]}, "old.jsonl", None):
        assert align_state.kept_choice(junk, "result", results, "new.jsonl") == "new.jsonl"


def test_an_identity_is_kept_made_or_replaced_and_named_by_digest():
    who, kept = align_state.restored_identity(None)
    assert align_state.IDENTITY.match(who) and kept == {"labeller": who}
    assert align_state.restored_identity({"labeller": who, "after": "run: a", "x": 1})[1] == {
        "labeller": who,
        "after": "run: a",
    }
    assert align_state.identity({"labeller": "<img src=x>"}) != "<img src=x>"
    name = align_state.browser_labeller(who)
    assert name.startswith("browser ") and who not in name
    assert align_state.browser_labeller("not one of ours") == ""
    reload_a, reload_b = (SimpleNamespace(session_hash=s, username=None) for s in "ab")
    assert align_tab.labeller_of(reload_a, "", who) == align_tab.labeller_of(reload_b, "", who) == name
    assert align_tab.labeller_of(reload_a, "Ada", who) == "Ada"  # a typed name goes first
    assert align_tab.labeller_of(reload_a) != align_tab.labeller_of(reload_b)  # no identity: the page's session
