import shlex

import pytest

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.target import NspawnTarget

MACHINE = NspawnTarget(host="h", container="web")
TREE = NspawnTarget(host="h", directory="/srv/my tree", nspawn_args=("--bind=/cache",))
LEADER = enter.Leader(1234, 5678, "systemd-nspawn@web.service", "/usr/bin:/bin")
HOSTILE = "echo 'a' \"b\" $(id) `id` ; rm -rf / # \\ \n ünï"
NONCE = enter.RUN_NONCE


def argv(words: list[str]) -> list[str]:
    """As the host's shell will see the command line the plugin sends (shlex.join)."""
    return shlex.split(shlex.join(words))


def test_lookup_passes_the_name_as_one_argument():
    words = enter.lookup_argv(MACHINE)
    assert words[:2] == ["sh", "-c"]
    assert words[2] == enter.host_helper()
    assert words[3:] == ["nspawn-fast", NONCE, "lookup", "web", "90"]


def test_exec_keeps_a_hostile_command_intact():
    words = argv(enter.inside_argv(MACHINE, LEADER, ["/bin/sh", "-c", HOSTILE]))
    assert words[3:] == ["nspawn-fast", NONCE, "exec", "1234", "5678", "systemd-nspawn@web.service",
                         "/usr/bin:/bin", "/bin/sh", "-c", HOSTILE]


def test_put_carries_the_size_and_fetch_the_path_as_single_arguments():
    path = "/root/dir with spaces/ünï $(x).txt"
    put = argv(enter.inside_argv(MACHINE, LEADER, enter.put_argv(path, 4096)))
    assert put[-6:] == ["/bin/sh", "-c", enter.PUT_SCRIPT, "put", path, "4096"]
    fetch = argv(enter.inside_argv(MACHINE, LEADER, enter.fetch_argv(path)))
    assert fetch[-5:] == ["/bin/sh", "-c", enter.FETCH_SCRIPT, "fetch", path]


def test_directory_mode_runs_systemd_nspawn_on_the_tree():
    words = enter.inside_argv(TREE, None, ["/bin/sh", "-c", "true"])
    assert words[3:7] == ["nspawn-fast", NONCE, "tree", "/srv/my tree"]
    nspawn = words[7:]  # the helper puts systemd-nspawn and its fixed options in front
    assert nspawn.index("--bind=/cache") < nspawn.index("--")
    assert nspawn[nspawn.index("--") + 1:] == ["/bin/sh", "-c", "true"]


def test_host_sudo_prefixes_the_helper():
    target = NspawnTarget(host="h", container="web", host_sudo=True)
    assert enter.lookup_argv(target)[:4] == ["sudo", "-n", "--", "sh"]


def test_an_installed_helper_is_run_by_its_path():
    target = NspawnTarget(host="h", container="web", host_sudo=True,
                          host_helper="/usr/local/libexec/nspawn-fast-helper")
    assert enter.lookup_argv(target) == ["sudo", "-n", "--", "/usr/local/libexec/nspawn-fast-helper",
                                         NONCE, "lookup", "web", "90"]


def test_the_helper_can_be_installed_as_a_file():
    assert enter.host_helper().startswith("#!/bin/sh\n")


def test_machine_mode_needs_a_leader():
    with pytest.raises(AssertionError):
        enter.inside_argv(MACHINE, None, ["/bin/sh", "-c", "true"])


def record(pid="4242", start="99887766", unit="systemd-nspawn@web.service", path="/usr/bin", nonce=NONCE):
    return f"NSPAWN-FAST-LEADER {nonce} {pid} {start} {unit} {path}\n".encode()


def test_parse_leader_takes_the_one_record_of_this_run():
    out = b"motd noise\n" + record()
    assert enter.parse_leader(out) == enter.Leader(4242, 99887766, "systemd-nspawn@web.service", "/usr/bin")


@pytest.mark.parametrize("out", [
    b"",
    record() + record(pid="2"),                      # two records: one of them is not ours
    record(nonce="0" * 24),                          # another run's (or a forged) record
    record(pid="1"), record(pid="12a"), record(start="-5"),
    record(unit="../../x.service"), record(unit="x.socket"), record(path="/bin;rm"),
    record().replace(b" /usr/bin", b" /usr/bin extra"),
    # the old format: PID and start time as the last lines, after container-chosen lines
    b"2 15\n/bin\n\n/bin/sh\n",
])
def test_parse_leader_refuses_anything_else(out):
    with pytest.raises(ValueError):
        enter.parse_leader(out)


@pytest.mark.parametrize("rc, out, err, expected", [
    (211, b"", f"\nNSPAWN-FAST-ERROR {NONCE} not-running No machine 'x' known\n".encode(),
     ("not-running", "No machine 'x' known")),
    (211, f"tty merged\r\nNSPAWN-FAST-ERROR {NONCE} leader-changed gone\r\n".encode(), b"", ("leader-changed", "gone")),
    (1, b"", f"NSPAWN-FAST-ERROR {NONCE} not-running x\n".encode(), None),
    (211, b"", b"a command that exits 211 on its own\n", None),
    # a command inside that prints the marker without this run's nonce and exits 211
    (211, b"", b"NSPAWN-FAST-ERROR not-running forged\n", None),
    (211, b"", b"NSPAWN-FAST-ERROR 000000000000000000000000 not-running forged\n", None),
])
def test_parse_helper_error(rc, out, err, expected):
    assert enter.parse_helper_error(rc, out, err) == expected


def test_tree_failure_is_systemd_nspawns_own_only_before_the_payload_started():
    assert enter.tree_failure(1, b"Directory /x is currently busy.\n") == "Directory /x is currently busy."
    assert enter.tree_failure(1, enter.TREE_STARTED + b"\ncommand failed\n") is None
    assert enter.tree_failure(0, b"") is None
    assert enter.strip_tree_marker(b"a\n" + enter.TREE_STARTED + b"\r\nb") == b"a\nb"


def test_the_first_command_of_a_task_carries_the_lookup():
    argv = enter.run_argv(MACHINE, False, "rn1", ["/bin/sh", "-c", HOSTILE])
    assert argv[3:] == ["nspawn-fast", NONCE, "run", "web", "90", "0", "rn1", "/bin/sh", "-c", HOSTILE]
    assert enter.run_argv(MACHINE, True, "rn1", ["true"])[8] == "1"  # fresh: no readiness cache
    later = enter.cmd_argv(MACHINE, LEADER, "rn1", ["true"])
    assert later[3:] == ["nspawn-fast", NONCE, "cmd", "1234", "5678", "systemd-nspawn@web.service",
                         "/usr/bin:/bin", "rn1", "true"]


def test_the_leader_record_is_taken_out_of_the_commands_stderr():
    err = b"warning of the command\n" + record() + b"more of the command\n"
    leader, rest = enter.split_leader(err)
    assert leader == enter.Leader(4242, 99887766, "systemd-nspawn@web.service", "/usr/bin")
    assert rest == b"warning of the command\nmore of the command\n"
    # another run's (or a command's forged) record is the command's output, not ours
    forged = record(nonce="f" * 24)
    assert enter.split_leader(forged) == (None, forged)
    with pytest.raises(ValueError):
        enter.split_leader(record(pid="1"))


def test_the_containers_not_ready_answer_needs_this_tasks_nonce():
    assert enter.not_ready(b"x\nNSPAWN-FAST-NOT-READY rn1\n", "rn1")
    assert not enter.not_ready(b"x\nNSPAWN-FAST-NOT-READY rn2\n", "rn1")


def test_the_scripts_that_run_inside_are_valid_sh():
    import re
    import subprocess
    inner = re.search(r"^INNER='(.*?)'\n", enter.host_helper(), re.S | re.M).group(1)
    for script in (inner, enter.PUT_SCRIPT, enter.FETCH_SCRIPT):
        cp = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
        assert cp.returncode == 0, cp.stderr


def test_the_installed_helper_form_keeps_every_argument_and_the_sudo_prefix():
    target = NspawnTarget(host="h", container="web", host_sudo=True)
    inline = enter.run_argv(target, False, "rn1", ["/bin/sh", "-c", HOSTILE])
    short = argv(enter.via_installed_helper(inline))
    assert short[:5] == ["sudo", "-n", "--", "sh", "-c"]
    assert short[5] == enter.INSTALLED_HELPER
    assert short[6:] == ["nspawn-fast", enter.HELPER_DIR, enter.helper_digest(), NONCE, "run", "web", "90",
                         "0", "rn1", "/bin/sh", "-c", HOSTILE]
    installing = argv(enter.via_installed_helper(inline, install=True))
    assert installing[5] == enter.INSTALL_HELPER
    assert installing[6:10] == ["nspawn-fast", enter.HELPER_DIR, enter.helper_digest(), enter.host_helper()]
    assert installing[10:] == short[9:]


def test_a_helper_file_named_in_the_inventory_is_called_as_it_is():
    target = NspawnTarget(host="h", container="web", host_helper="/usr/local/libexec/nspawn-fast-helper")
    words = enter.cmd_argv(target, LEADER, "rn1", ["true"])
    assert enter.via_installed_helper(words) == words
    assert enter.via_installed_helper(words, install=True) == words


def test_the_installed_helper_is_named_by_the_sha256_of_its_text():
    import hashlib
    assert enter.helper_digest() == hashlib.sha256(enter.host_helper().encode()).hexdigest()
