import shlex

import pytest

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.target import NspawnTarget

MACHINE = NspawnTarget(host="h", container="web")
TREE = NspawnTarget(host="h", directory="/srv/my tree", nspawn_args=("--bind=/cache",))
LEADER = enter.Leader(1234, 5678, "/usr/bin:/bin", "", "/bin/bash")
HOSTILE = "echo 'a' \"b\" $(id) `id` ; rm -rf / # \\ \n ünï"


def argv(command: str) -> list[str]:
    return shlex.split(command)


def test_lookup_passes_the_name_as_one_argument():
    words = argv(enter.lookup_command(MACHINE))
    assert words[:2] == ["sh", "-c"]
    assert words[2] == enter.HOST_HELPER
    assert words[3:] == ["nspawn-fast", "lookup", "web", "90"]


def test_exec_keeps_a_hostile_command_intact():
    words = argv(enter.exec_command(MACHINE, LEADER, HOSTILE))
    assert words[3:] == ["nspawn-fast", "exec", "1234", "5678", "/usr/bin:/bin", "", "/bin/bash",
                         "/bin/sh", "-c", HOSTILE]


def test_put_and_fetch_paths_are_single_arguments():
    path = "/root/dir with spaces/ünï $(x).txt"
    put = argv(enter.put_command(MACHINE, LEADER, path))
    assert put[-5:] == ["/bin/sh", "-c", enter.PUT_SCRIPT, "put", path]
    fetch = argv(enter.fetch_command(MACHINE, LEADER, path))
    assert fetch[-3:] == ["cat", "--", path]


def test_directory_mode_runs_systemd_nspawn_on_the_tree():
    words = argv(enter.exec_command(TREE, None, "true"))
    assert words[3:6] == ["nspawn-fast", "tree", "/srv/my tree"]
    nspawn = words[6:]
    assert nspawn[0] == "systemd-nspawn"
    assert "--directory=/srv/my tree" in nspawn and "--as-pid2" in nspawn and "--pipe" in nspawn
    assert nspawn.index("--bind=/cache") < nspawn.index("--")
    assert nspawn[nspawn.index("--") + 1:] == ["/bin/sh", "-c", "true"]


def test_host_sudo_prefixes_the_helper():
    target = NspawnTarget(host="h", container="web", host_sudo=True)
    assert argv(enter.lookup_command(target))[:4] == ["sudo", "-n", "--", "sh"]


def test_machine_mode_needs_a_leader():
    with pytest.raises(AssertionError):
        enter.exec_command(MACHINE, None, "true")


def test_parse_leader_takes_the_last_four_lines():
    out = b"motd noise\n4242 99887766\n/usr/sbin:/usr/bin\n\n/bin/bash\n"
    assert enter.parse_leader(out) == enter.Leader(4242, 99887766, "/usr/sbin:/usr/bin", "", "/bin/bash")


@pytest.mark.parametrize("rc, out, err, expected", [
    (211, b"", b"\nNSPAWN-FAST-ERROR not-running No machine 'x' known\n", ("not-running", "No machine 'x' known")),
    (211, b"tty merged\r\nNSPAWN-FAST-ERROR leader-changed gone\r\n", b"", ("leader-changed", "gone")),
    (1, b"", b"NSPAWN-FAST-ERROR not-running x\n", None),
    (211, b"", b"a command that exits 211 on its own\n", None),
])
def test_parse_helper_error(rc, out, err, expected):
    assert enter.parse_helper_error(rc, out, err) == expected
