import argparse

import pytest

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.cli import main
from ansible_nspawn_fast.ops import commands, helper
from ansible_nspawn_fast.ops import enter as ops_enter

LEADER = enter.Leader(1234, 5678, "systemd-nspawn@web.service", "/usr/bin:/bin")


@pytest.fixture
def calls(monkeypatch):
    seen = {}

    def lookup(place, target):
        seen["target"] = target
        return LEADER

    def attached(place, name, argv, tty=False):
        seen.update(place=place, argv=argv, tty=tty)
        return 7

    monkeypatch.setattr(helper, "lookup", lookup)
    monkeypatch.setattr(helper, "run_attached", attached)
    monkeypatch.setattr(ops_enter.os, "isatty", lambda fd: False)
    return seen


def test_a_command_runs_with_the_leader_from_the_lookup_and_its_status_is_passed(calls):
    assert main(["enter", "--boot-timeout", "5", "root@db1:2222:web", "--", "sh", "-c", "exit 7", "--", "x"]) == 7
    argv = calls["argv"]
    assert argv[3:] == ["nspawn-fast", enter.RUN_NONCE, "exec", *LEADER.args(), "sh", "-c", "exit 7", "--", "x"]
    assert calls["target"].boot_timeout == 5 and calls["place"].port == 2222 and not calls["tty"]


def test_no_network_and_no_pid_use_the_partial_verb(calls):
    main(["enter", "db1:web", "--no-pid", "--no-network", "--", "ip", "a"])
    assert calls["argv"][5:] == ["enter-partial", *LEADER.args(), "net,pid", "ip", "a"]


def test_without_a_command_a_login_shell(calls, monkeypatch):
    main(["enter", "db1:web"])
    assert calls["argv"][-4:] == ["/bin/sh", "-c", ops_enter.LOGIN_SHELL, "nspawn-fast-login"]
    assert not calls["tty"]  # stdin is no terminal here
    monkeypatch.setattr(ops_enter.os, "isatty", lambda fd: True)
    main(["enter", "db1:web"])
    assert calls["tty"]


def test_errors_are_one_line_and_exit_1(capsys):
    assert main(["enter", "db1:web;x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nspawn-fast: error: ")


def test_split_argv_only_for_enter_and_chroots():
    assert commands.split_argv(["enter", "m", "--", "a", "--", "b"]) == (["enter", "m"], ["a", "--", "b"])
    assert commands.split_argv(["chroots", "--", "-v"]) == (["chroots"], ["-v"])
    assert commands.split_argv(["stop", "--", "m"]) == (["stop", "--", "m"], [])


def test_skipped():
    ns = argparse.Namespace(no_network=True, no_pid=False)
    assert ops_enter.skipped(ns) == "net"
