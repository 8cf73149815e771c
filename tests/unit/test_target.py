import pytest

from ansible_nspawn_fast.errors import ConfigError
from ansible_nspawn_fast.target import NspawnTarget, target_from_options

DEFAULTS = {
    "host": "server1", "nspawn_container": "web", "nspawn_directory": None, "nspawn_args": [],
    "nspawn_local": False, "nspawn_host_sudo": False, "nspawn_boot_timeout": 90,
    "nspawn_host_helper": None,
}


def build(**overrides):
    options = {**DEFAULTS, **overrides}
    return target_from_options(options.__getitem__)


def test_machine_mode_defaults():
    target = build()
    assert target == NspawnTarget(host="server1", container="web")
    assert not target.is_directory
    assert target.where == "container web on host server1"


def test_directory_mode_ignores_the_container_name():
    target = build(nspawn_directory="/srv/tree", nspawn_args="--bind=/a --private-network")
    assert target.is_directory and target.container is None
    assert target.nspawn_args == ("--bind=/a", "--private-network")
    assert target.where == "directory tree /srv/tree on host server1"


def test_local_mode_is_named_in_messages():
    assert build(nspawn_local=True).where == "container web on the controller"


@pytest.mark.parametrize("overrides, fragment", [
    ({"nspawn_container": "web;touch /tmp/x"}, "invalid container name 'web;touch /tmp/x' for host server1"),
    ({"nspawn_container": None}, "invalid container name None"),
    ({"nspawn_directory": "relative/tree"}, "must be an absolute path"),
    ({"nspawn_directory": "/srv/t", "nspawn_args": ["-D", "/other"]},
     "ansible_nspawn_args for directory tree /srv/t on host server1: '-D' means --directory"),
    ({"nspawn_directory": "/srv/t", "nspawn_args": "--direc=/x"}, "'--direc=/x' means --directory"),
    ({"nspawn_boot_timeout": -1}, "must be >= 0"),
    ({"nspawn_container": ".host"}, "invalid container name '.host'"),
    ({"nspawn_host_helper": "nspawn-fast-helper"}, "must be the absolute path of the helper"),
    ({"nspawn_host_helper": "/usr/bin/env sh"}, "must be the absolute path of the helper"),
])
def test_bad_options_are_refused_with_the_next_step(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        build(**overrides)
    assert fragment in str(err.value)


def test_the_spec_is_frozen_plain_data():
    target = build()
    with pytest.raises(AttributeError):
        target.container = "other"  # type: ignore[misc]
    assert hash(target) == hash(build())
