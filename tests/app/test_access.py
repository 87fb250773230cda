"""One access rule for training, tested in every combination: on a public studio training is on
only where a login is in force (from `--auth`, else `RAFT_AUTH`) and RAFT_ALLOW_TRAINING=1; locally
it is on. The launcher, the settings, the Fine-tune tab's note, the usage line and the README agree."""

import itertools
from pathlib import Path

import pytest

from app.main import parse_args
from app.studio import Settings, login_from

SOURCES = {
    "none": ([], None, None),
    "--auth": (["--auth", "boss:pw"], None, ("boss", "pw")),
    "RAFT_AUTH": ([], "boss:pw", ("boss", "pw")),
    "RAFT_AUTH, --auth ''": (["--auth", ""], "boss:pw", None),
    "RAFT_AUTH and --auth": (["--auth", "cli:pw2"], "boss:pw", ("cli", "pw2")),
}


def settings_as_launched(monkeypatch, tmp_path, public: bool, source: str, allow: bool):
    argv, env_auth, _ = SOURCES[source]
    for name in ("SPACE_ID", "RAFT_PUBLIC", "RAFT_ALLOW_TRAINING", "RAFT_AUTH"):
        monkeypatch.delenv(name, raising=False)
    if public:
        monkeypatch.setenv("SPACE_ID", "owner/studio")
    if allow:
        monkeypatch.setenv("RAFT_ALLOW_TRAINING", "1")
    if env_auth:
        monkeypatch.setenv("RAFT_AUTH", env_auth)
    auth = login_from(parse_args(argv).auth)  # what launch() passes to Gradio
    return auth, Settings.from_env(str(tmp_path), login=auth is not None)


@pytest.mark.parametrize("public, source, allow", list(itertools.product([False, True], SOURCES, [False, True])))
def test_training_follows_the_login_in_force_and_the_switch(monkeypatch, tmp_path, public, source, allow):
    auth, settings = settings_as_launched(monkeypatch, tmp_path, public, source, allow)
    assert auth == SOURCES[source][2], "the login Gradio asks for"
    login = auth is not None
    assert settings.allow_training == (not public or (login and allow))
    note = settings.training_note
    if public and not settings.allow_training:
        assert "off" in note and ("a login is not in force" in note) == (not login)
        assert ("RAFT_ALLOW_TRAINING is not 1" in note) == (not allow)
        assert ("RAFT_ALLOW_TRAINING=1" in note) and ("anonymous visitors never train" in note)
    elif public:
        assert "sign in" in note and "RAFT_ALLOW_TRAINING=1" in note


@pytest.mark.parametrize("bad", ["owner", ":pw", "owner:", " :x"])
def test_a_malformed_login_stops_the_studio_instead_of_leaving_it_open(monkeypatch, bad):
    monkeypatch.delenv("RAFT_AUTH", raising=False)
    with pytest.raises(ValueError, match="--auth must read USER:PASSWORD"):
        login_from(bad)
    monkeypatch.setenv("RAFT_AUTH", bad)
    with pytest.raises(ValueError, match="RAFT_AUTH must read USER:PASSWORD"):
        login_from(None)


def test_the_usage_line_and_the_readme_state_the_same_rule(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    usage = " ".join(capsys.readouterr().out.split())
    assert "env RAFT_AUTH when not given" in usage and "RAFT_ALLOW_TRAINING=1" in usage
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").split())
    rule = "training is on only where a login is in force (`--auth USER:PASS` or the secret `RAFT_AUTH`)"
    assert rule in readme and "and `RAFT_ALLOW_TRAINING=1`" in readme
