"""The mitogen stack of a target as plain data: the container hop is the helper's exec verb."""
import pytest

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.target import NspawnTarget
from ansible_nspawn_fast.transport import plan

MACHINE = NspawnTarget(host="h", container="web")
SUDO = NspawnTarget(host="h", container="web", host_sudo=True)
LEADER = enter.Leader(1234, 5678, "systemd-nspawn@web.service", "/usr/bin")
TREE = NspawnTarget(host="h", directory="/srv/tree", nspawn_args=("--bind=/cache",))


@pytest.mark.parametrize("target, prefix", [(MACHINE, []), (SUDO, ["sudo", "-n", "--"])])
def test_container_hop_is_the_helper_exec_verb(target, prefix):
    hop = plan.container_hop(target, LEADER, ["/usr/bin/python3"])
    assert hop["method"] == plan.CONTAINER_METHOD == "nspawn_local"
    assert hop["kwargs"]["python_path"] == [*prefix, "sh", "-c", enter.host_helper(), "nspawn-fast",
                                            enter.RUN_NONCE, "exec", "1234", "5678",
                                            "systemd-nspawn@web.service", "/usr/bin", "/usr/bin/python3"]


def test_a_new_leader_is_a_new_hop():
    # ContextService deduplicates by the hop's kwargs: a restart must not reuse the old one.
    restarted = LEADER._replace(start=LEADER.start + 1)
    assert plan.container_hop(MACHINE, LEADER, ["python3"]) != plan.container_hop(MACHINE, restarted, ["python3"])


def test_tree_hop_runs_python_under_systemd_nspawn():
    argv = plan.container_python_argv(TREE, None, ["python3"])
    assert argv[5:] == ["tree", "/srv/tree", "--bind=/cache", "--", "python3"]


def test_every_nspawn_target_uses_one_multiplexer():
    # A host's containers share its SSH connection, and ansible-playbook's task threads can
    # talk to one multiplexer only: one key for all, local or remote.
    targets = [MACHINE, NspawnTarget(host="h", container="db"), NspawnTarget(host="h2", container="web"),
               NspawnTarget(host="localhost", container="web", local=True), TREE]
    assert {plan.binding_name(target) for target in targets} == {plan.MUX_KEY}


def test_remote_names_have_no_slashes():
    # mitogen refuses a remote_name with '/': a tree's path is spelled with ':'.
    assert plan.container_hop(TREE, None, ["python3"])["kwargs"]["remote_name"] == "nspawn-tree:srv:tree"
    assert plan.container_hop(MACHINE, LEADER, ["python3"])["kwargs"]["remote_name"] == "nspawn:web"


@pytest.mark.parametrize("given, used", [(None, 30), (10, 30), (60, 60)])
def test_interpreters_in_containers_get_at_least_30_s_to_start(given, used):
    assert plan.container_hop(MACHINE, LEADER, ["python3"], connect_timeout=given)["kwargs"]["connect_timeout"] == used
