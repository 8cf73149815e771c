"""The plugin's Connection with a fake host shell: what it sends, what it makes of the answers.

The host shell is faked (the real one is ansible's ssh plugin); the command lines are the real
ones from enter.py and their answers are what helper.sh prints.
"""
from __future__ import annotations

import shlex

import pytest
from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.playbook.play_context import PlayContext

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.connection import Connection
from ansible_nspawn_fast.target import NspawnTarget

TARGET = NspawnTarget(host="server1", container="web")
RECORD = f"NSPAWN-FAST-LEADER {enter.RUN_NONCE} 4242 99 systemd-nspawn@web.service /usr/bin:/bin\n".encode()


class FakeHost:
    """Answers each helper call with the next scripted (rc, stdout, stderr); records the verbs."""

    def __init__(self, *answers: tuple[int, bytes, bytes]) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []
        self.commands: list[list[str]] = []
        self.stdin: list[bytes] = []

    def _answer(self, command: str) -> tuple[int, bytes, bytes]:
        words = shlex.split(command)
        self.calls.append(words[words.index(enter.RUN_NONCE) + 1:])  # from the verb on
        self.commands.append(words)
        return self.answers.pop(0)

    def run(self, command: str, in_data: bytes | None = None, sudoable: bool = True):
        return self._answer(command)

    def stream(self, command: str, stdin, stdout):
        rc, out, err = self._answer(command)
        if stdin is not None:
            self.stdin.append(stdin.read())
        if stdout is not None:
            stdout.write(out)
        return rc, err


def connection(host: FakeHost, target: NspawnTarget = TARGET) -> Connection:
    conn = Connection(PlayContext())
    conn._target, conn._host, conn._connected = target, host, True
    return conn


def test_the_first_command_carries_the_lookup_and_later_ones_name_its_leader():
    host = FakeHost((0, b"one\n", RECORD + b"warn\n"), (3, b"two\n", b""))
    conn = connection(host)
    assert conn.exec_command("echo one") == (0, b"one\n", b"warn\n")  # the record taken out
    assert conn.exec_command("echo two") == (3, b"two\n", b"")
    assert host.calls[0][:5] == ["run", "web", "90", "0", conn._rnonce]
    assert host.calls[0][5:] == ["-c", "echo one"]  # root's login shell, as sshd would
    assert host.calls[1][:6] == ["cmd", "4242", "99", "systemd-nspawn@web.service", "/usr/bin:/bin", conn._rnonce]


def test_a_container_not_booted_yet_gets_the_command_again_with_the_full_wait():
    host = FakeHost()
    conn = connection(host)
    host.answers += [(1, b"", RECORD + f"\nNSPAWN-FAST-NOT-READY {conn._rnonce}\n".encode()),
                     (0, b"ok\n", RECORD)]
    assert conn.exec_command("true") == (0, b"ok\n", b"")
    assert [c[0] for c in host.calls] == ["run", "run"]
    assert host.calls[1][3] == "1"  # fresh: past the host's readiness cache


def test_a_not_booted_answer_without_this_tasks_nonce_is_the_commands_output():
    forged = b"\nNSPAWN-FAST-NOT-READY 0000\n"
    conn = connection(FakeHost((1, b"", RECORD + forged)))
    assert conn.exec_command("true") == (1, b"", forged)


def test_shutting_down_between_commands_fails_the_task_and_its_later_commands():
    host = FakeHost((0, b"", RECORD), (1, b"", b""))
    conn = connection(host)
    conn.exec_command("true")
    host.answers[0] = (1, b"", f"NSPAWN-FAST-NOT-READY {conn._rnonce}\n".encode())
    with pytest.raises(AnsibleError, match="stopped or restarted while this task was running"):
        conn.exec_command("true")
    with pytest.raises(AnsibleError, match="stopped or restarted"):
        conn.exec_command("rm -rf /tmp/ansible-tmp")  # no call reaches the host any more
    assert len(host.calls) == 2


@pytest.mark.parametrize("code, unreachable, words", [
    ("not-running", True, "is not running or not known to machined"),
    ("not-ready", True, "is running but not booted"),
    ("refused", True, "refusing to enter container web"),
    ("leader-changed", False, "stopped or restarted while this task was running"),
])
def test_helper_errors_become_unreachable_or_failed(code, unreachable, words):
    err = f"\nNSPAWN-FAST-ERROR {enter.RUN_NONCE} {code} because\n".encode()
    conn = connection(FakeHost((211, b"", err)))
    with pytest.raises(AnsibleError, match=words) as raised:
        conn.exec_command("true")
    assert isinstance(raised.value, AnsibleConnectionFailure) is unreachable


def test_a_helper_error_of_another_run_is_the_commands_own_failure():
    err = b"\nNSPAWN-FAST-ERROR 000000000000000000000000 leader-changed forged\n"
    conn = connection(FakeHost((211, b"", RECORD + err)))
    assert conn.exec_command("exit 211") == (211, b"", err)


def test_a_first_command_without_a_leader_record_is_unreachable_with_what_the_host_said():
    conn = connection(FakeHost((1, b"", b"sudo: a password is required\n")))
    with pytest.raises(AnsibleConnectionFailure, match="a password is required"):
        conn.exec_command("true")


def test_put_announces_the_size_and_streams_the_file(tmp_path):
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1000)
    host = FakeHost((0, b"", RECORD))
    connection(host).put_file(str(src), "/root/f.bin")
    assert host.calls[0][-3:] == ["put", "/root/f.bin", "1000"]
    assert host.stdin == [b"x" * 1000]


def test_put_of_a_missing_local_file_sends_nothing(tmp_path):
    host = FakeHost()
    with pytest.raises(AnsibleFileNotFound):
        connection(host).put_file(str(tmp_path / "nope"), "/root/x")
    assert host.calls == []


def test_fetch_writes_only_a_complete_file(tmp_path):
    dest = tmp_path / "out.txt"
    connection(FakeHost((0, b"content\n", RECORD))).fetch_file("/etc/hostname", str(dest))
    assert dest.read_bytes() == b"content\n"
    with pytest.raises(AnsibleFileNotFound, match="does not exist in container web"):
        connection(FakeHost((enter.FETCH_MISSING_RC, b"", RECORD))).fetch_file("/nope", str(tmp_path / "x"))
    with pytest.raises(AnsibleError, match="failed to fetch"):
        connection(FakeHost((1, b"partial", RECORD + b"cat: read error\n"))).fetch_file("/f", str(tmp_path / "y"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no partial or temp file


def test_a_tree_reports_systemd_nspawns_own_failure_as_unreachable():
    tree = NspawnTarget(host="server1", directory="/srv/tree")
    conn = connection(FakeHost((1, b"", b"Directory /srv/tree is currently busy.\n")), tree)
    with pytest.raises(AnsibleConnectionFailure, match="systemd-nspawn cannot run directory tree /srv/tree"):
        conn.exec_command("true")
    ok = connection(FakeHost((1, b"", enter.TREE_STARTED + b"\nfalse said no\n")), tree)
    assert ok.exec_command("false") == (1, b"", b"false said no\n")


NO_HELPER = (211, b"", f"\nNSPAWN-FAST-ERROR {enter.RUN_NONCE} no-helper not installed\n".encode())


def test_commands_name_the_hosts_installed_helper_instead_of_carrying_it():
    host = FakeHost((0, b"one\n", RECORD), (0, b"two\n", b""))
    conn = connection(host)
    conn.exec_command("echo one")
    conn.exec_command("echo two")
    for words in host.commands:
        assert enter.host_helper() not in words
        assert len(shlex.join(words)) < 1500
        assert words[words.index("nspawn-fast") + 1:][:2] == [enter.HELPER_DIR, enter.helper_digest()]


def test_a_host_without_the_installed_helper_gets_the_command_again_through_the_installer():
    host = FakeHost(NO_HELPER, (0, b"one\n", RECORD), (0, b"two\n", b""))
    conn = connection(host)
    assert conn.exec_command("echo one") == (0, b"one\n", b"")
    assert conn.exec_command("echo two") == (0, b"two\n", b"")
    assert [c[0] for c in host.calls] == ["run", "run", "cmd"]
    assert enter.host_helper() not in host.commands[0]
    assert enter.host_helper() in host.commands[1]  # through the installer
    assert enter.host_helper() in host.commands[2]  # and so on for this task


def test_a_missing_helper_after_the_installer_ran_is_the_hosts_failure_not_a_loop():
    conn = connection(FakeHost(NO_HELPER, NO_HELPER))
    with pytest.raises(AnsibleError, match="no-helper|not installed"):
        conn.exec_command("true")


def test_another_runs_missing_helper_answer_is_the_commands_own_output():
    forged = (211, b"", b"\nNSPAWN-FAST-ERROR 0000 no-helper forged\n")
    host = FakeHost(forged)
    host.answers[0] = (211, b"", RECORD + forged[2])
    conn = connection(host)
    assert conn.exec_command("true") == (211, b"", forged[2])
    assert len(host.calls) == 1
