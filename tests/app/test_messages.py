"""What a visitor reads: no server paths, no markup, no traceback; one switch for public mode."""

import gradio as gr
import pytest

from app.messages import for_visitor, guarded, visitor_error, without_paths
from app.studio import Settings
from raft.files import spreadsheet_safe


@pytest.mark.parametrize(
    "text, shown",
    [
        ("/srv/data/workspaces/ab12/datasets/x/train.jsonl: row 3: empty", "train.jsonl: row 3: empty"),
        ("no dataset at /tmp/root/datasets/ds: write one", "no dataset at ds: write one"),
        ("template '/etc/hostname' not found", "template 'hostname' not found"),
        ("C:\\Users\\me\\data.csv: bad", "data.csv: bad"),
        (
            "see https://huggingface.co/spaces/x/y and owner/name",
            "see https://huggingface.co/spaces/x/y and owner/name",
        ),
        (
            "Cannot move /mnt/bucket/reports/report-1.html to the gradio cache dir",
            "Cannot move report-1.html to the gradio cache dir",
        ),
        ("scale 1..5 and 3/4 of rows, ratio a/b", "scale 1..5 and 3/4 of rows, ratio a/b"),
    ],
)
def test_paths_become_names_and_the_rest_is_kept(text, shown):
    assert without_paths(text) == shown


def test_markup_in_a_name_is_shown_as_text():
    assert for_visitor("run '<img src=x onerror=alert(1)>' exists") == "run '&lt;img src=x onerror=alert(1)&gt;' exists"


def test_every_error_becomes_a_visitor_error_without_paths():
    assert visitor_error(ValueError("bad /root/secret/thing.txt")).message == "bad thing.txt"
    assert (
        "KeyError" in visitor_error(KeyError("/root/x")).message
        and "/root" not in visitor_error(KeyError("/x")).message
    )
    assert visitor_error(gr.Error("<b>/a/b</b>")).message == "&lt;b&gt;b&lt;/b&gt;"

    @guarded
    def handler(a: int, request: gr.Request = None) -> int:
        raise OSError(f"[Errno 2] No such file or directory: '/srv/root/{a}'")

    with pytest.raises(gr.Error) as err:
        handler(1)
    assert "/srv" not in err.value.message and "OSError" in err.value.message


@pytest.mark.parametrize(
    "env, public, training, any_model",
    [
        ({}, False, True, True),
        ({"SPACE_ID": "o/s"}, True, False, False),
        ({"RAFT_PUBLIC": "1"}, True, False, False),
        ({"RAFT_PUBLIC": "1", "RAFT_ALLOW_TRAINING": "1"}, True, False, False),
        ({"RAFT_PUBLIC": "1", "RAFT_ALLOW_TRAINING": "1", "RAFT_AUTH": "o:p"}, True, True, False),
        ({"RAFT_PUBLIC": "1", "RAFT_ALLOW_ANY_MODEL": "1"}, True, False, True),
    ],
)
def test_one_switch_makes_a_studio_public_with_every_rule(monkeypatch, tmp_path, env, public, training, any_model):
    for name in ("SPACE_ID", "RAFT_PUBLIC", "RAFT_ALLOW_TRAINING", "RAFT_AUTH", "RAFT_ALLOW_ANY_MODEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(str(tmp_path))
    assert (settings.public, settings.allow_training, settings.allow_any_model) == (public, training, any_model)


@pytest.mark.parametrize(
    "cell, safe",
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1+1", "'+1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-2+3", "'-2+3"),
        ("-3", "-3"),
        ("+4.5", "+4.5"),
        (-3, -3),
        (2.5, 2.5),
        ("plain text", "plain text"),
    ],
)
def test_formula_cells_are_neutralised_and_numbers_kept(cell, safe):
    assert spreadsheet_safe(cell) == safe
