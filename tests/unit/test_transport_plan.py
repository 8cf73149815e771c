import os

import pytest

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.target import NspawnTarget
from ansible_nspawn_fast.transport import hostside, plan

MACHINE = NspawnTarget(host="h", container="web")
SUDO = NspawnTarget(host="h", container="web", host_sudo=True)
LEADER = enter.Leader(1234, 5678, "/usr/bin", "C.UTF-8", "/bin/bash")
TREE = NspawnTarget(host="h", directory="/srv/tree", nspawn_args=("--bind=/cache",))


@pytest.mark.parametrize("target, prefix", [(MACHINE, []), (SUDO, ["sudo", "-n", "--"])])
def test_container_hop_is_the_helper_exec_verb(target, prefix):
    hop = plan.container_hop(target, LEADER, ["/usr/bin/python3"])
    assert hop["method"] == plan.CONTAINER_METHOD == "nspawn_local"
    assert hop["kwargs"]["python_path"] == [*prefix, "sh", "-c", enter.HOST_HELPER, "nspawn-fast",
                                            "exec", "1234", "5678", "/usr/bin", "C.UTF-8", "/bin/bash",
                                            "/usr/bin/python3"]


def test_a_new_leader_is_a_new_hop():
    # ContextService deduplicates by the hop's kwargs: a restart must not reuse the old one.
    restarted = LEADER._replace(start=LEADER.start + 1)
    assert plan.container_hop(MACHINE, LEADER, ["python3"]) != plan.container_hop(MACHINE, restarted, ["python3"])


def test_tree_hop_runs_python_under_systemd_nspawn():
    argv = plan.container_python_argv(TREE, None, ["python3"])
    assert argv[4:6] == ["tree", "/srv/tree"]
    assert argv[6:] == enter.nspawn_argv(TREE, "python3")


def test_containers_of_one_host_share_a_binding():
    other = NspawnTarget(host="h", container="db")
    assert plan.binding_name(MACHINE) == plan.binding_name(other) != plan.binding_name(
        NspawnTarget(host="h2", container="web"))


def test_start_time_identifies_a_live_process():
    assert hostside._start_time(os.getpid()) == hostside._start_time(os.getpid()) is not None
    assert hostside._start_time(2**22 + 17) is None


def test_cached_leader_is_reused_only_while_alive(monkeypatch):
    me = os.getpid()
    alive = (me, hostside._start_time(me), "/usr/bin", "", "/bin/sh")
    hostside._leaders["web"] = alive
    assert hostside.leader("web", 0) == {"leader": alive, "cached": True}
    hostside._leaders["web"] = (me, -1, "/usr/bin", "", "/bin/sh")  # same PID, other start time: a restart
    calls = []
    monkeypatch.setattr(hostside.subprocess, "run", lambda argv, **kw: calls.append(argv) or
                        type("P", (), {"returncode": 0, "stdout": b"42 99\n/usr/bin\n\n/bin/sh\n", "stderr": b""})())
    assert hostside.leader("web", 0) == {"leader": (42, 99, "/usr/bin", "", "/bin/sh"), "cached": False}
    assert calls[0][4:] == ["lookup", "web", "0"]
    hostside.forget("web")


def test_remote_names_have_no_slashes():
    # mitogen refuses a remote_name with '/': a tree's path is spelled with ':'.
    assert plan.container_hop(TREE, None, ["python3"])["kwargs"]["remote_name"] == "nspawn-tree:srv:tree"
    assert plan.container_hop(MACHINE, LEADER, ["python3"])["kwargs"]["remote_name"] == "nspawn:web"


@pytest.mark.parametrize("given, used", [(None, 30), (10, 30), (60, 60)])
def test_interpreters_in_containers_get_at_least_30_s_to_start(given, used):
    assert plan.container_hop(MACHINE, LEADER, ["python3"], connect_timeout=given)["kwargs"]["connect_timeout"] == used
