import pytest

from raft.paths import safe_child


@pytest.mark.parametrize("name", ["run-1", "my_data.v2", "A1"])
def test_plain_names_stay_inside_the_root(tmp_path, name):
    assert safe_child(tmp_path, name) == (tmp_path / name).resolve()


@pytest.mark.parametrize("name", ["", "..", "../x", "a/b", "/etc", ".hidden", "a..b", "x" * 101, "a b", "~root"])
def test_other_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="not a valid name"):
        safe_child(tmp_path, name)
