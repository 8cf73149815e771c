import pytest

from ansible_nspawn_fast.names import is_valid_machine_name


@pytest.mark.parametrize("name", ["web", "h1-c1", "db.prod", "a" * 64, "0", "build-bookworm-amd64"])
def test_valid_machine_names(name):
    assert is_valid_machine_name(name)


@pytest.mark.parametrize("name", [
    "", ".host", "web;touch /tmp/x", "a b", "web$(id)", "../etc", "a..b", ".a", "a.", "a" * 65,
    "web\n", "wéb", "a_b", "-web", "web-", "a.-b", None, 3,
])
def test_invalid_machine_names(name):
    assert not is_valid_machine_name(name)
