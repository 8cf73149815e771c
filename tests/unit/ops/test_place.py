import shlex

import pytest

from ansible_nspawn_fast.ops.errors import OpsError
from ansible_nspawn_fast.ops.place import Place, parse_place


@pytest.mark.parametrize("spec, place, name", [
    ("web", Place(), "web"),
    ("db1:web", Place(host="db1"), "web"),
    ("admin@db1:web", Place(host="db1", user="admin"), "web"),
    ("admin@db1:2222:web", Place(host="db1", user="admin", port=2222), "web"),
    ("db1.example.com:2222:web.lan", Place(host="db1.example.com", port=2222), "web.lan"),
    ("[2001:db8::1]:web", Place(host="2001:db8::1"), "web"),
    ("root@[::1]:22:web", Place(host="::1", user="root", port=22), "web"),
    ("builder:", Place(host="builder"), ""),
    ("root@127.0.0.1:2251:", Place(host="127.0.0.1", user="root", port=2251), ""),
])
def test_specs(spec, place, name):
    assert parse_place(spec) == (place, name)


@pytest.mark.parametrize("spec", ["-oProxyCommand=x:web", "-l@host:web", "host:99999:web", "a:b:c:d",
                                  "host:port:web", "ho st:web", "[::1:web", "/tmp/x:web"])
def test_refused_specs(spec):
    with pytest.raises(OpsError):
        parse_place(spec)


def test_ssh_args_are_split_like_a_shell():
    place, _ = parse_place("h:web", "-i '/my key' -o ProxyJump=bastion")
    assert place.ssh_args == ("-i", "/my key", "-o", "ProxyJump=bastion")
    with pytest.raises(OpsError):
        parse_place("h:web", "-i 'unclosed")


def test_remote_argv_is_one_quoted_command_line_after_the_destination():
    inner = ["sh", "-c", "echo $HOME; rm -rf / # 'x'", "name with space"]
    argv = Place(host="db1", user="u", port=2222, ssh_args=("-i", "k")).argv(inner)
    assert argv[:7] == ["ssh", "-T", "-i", "k", "-p", "2222", "--"]
    assert argv[7] == "u@db1"
    assert shlex.split(argv[8]) == inner
    assert Place(host="db1").argv(inner, tty=True)[:2] == ["ssh", "-t"]


def test_local_argv_is_the_argv():
    assert Place().argv(["a", "b"]) == ["a", "b"]
    assert Place().local and not Place(host="x").local
    assert Place().describe() == "this machine" and Place(host="x").describe() == "host x"
