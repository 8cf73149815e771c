"""The mitogen connection stack of one nspawn target, as plain data.

A stack is what ansible_mitogen's ContextService.get() takes: a list of
`{"method": Router method name, "kwargs": {...}}`, each hop started from the
previous one. For a machine on a remote host it is

    [ssh to the host, python3 there]            one per host, shared by its containers
    [nspawn_local: helper exec LEADER... python]    one per container, started by the host
    [sudo/su ...]                               when the task becomes another user

The container hop is mitogen's plain `local` method (as `nspawn_local`, which the
host runs on a thread of its own: muxside.py) whose python_path is the
same host helper the connection plugin uses (helper.sh, verb exec, via enter.helper_argv):
the leader re-verified, nsenter into the namespaces that differ, the cgroup join, the
container's environment, and a fork into the PID namespace. Because the leader's PID
and start time are part of its kwargs, they are part of ContextService's
deduplication key: a restarted container gets a new key, hence a new
interpreter, without any explicit invalidation in the multiplexer.
"""
from __future__ import annotations

from typing import Any

from .. import enter
from ..target import NspawnTarget

HOST_PYTHON = ("python3",)
# mitogen's `local` method, started by the host's interpreter on a pool thread (muxside.py).
CONTAINER_METHOD = "nspawn_local"
# Seconds at least for an interpreter to start inside a container (and for a become hop in
# it). Ansible's `timeout` (10 s by default) is meant for SSH; this start is local CPU work,
# which a busy host (many containers starting at once) stretches without anything wrong.
MIN_BOOTSTRAP_TIMEOUT = 30


def bootstrap_timeout(connect_timeout: int | None) -> int:
    return max(connect_timeout or 0, MIN_BOOTSTRAP_TIMEOUT)


def container_python_argv(target: NspawnTarget, leader: enter.Leader | None,
                          python: list[str]) -> list[str]:
    """The argv mitogen runs on the host to start the interpreter inside.

    mitogen appends `-c BOOTSTRAP` to it.
    """
    return enter.inside_argv(target, leader, python)


def container_hop(target: NspawnTarget, leader: enter.Leader | None,
                  python: list[str], connect_timeout: int | None = None) -> dict[str, Any]:
    return {
        "method": CONTAINER_METHOD,
        "kwargs": {
            "python_path": container_python_argv(target, leader, python),
            "connect_timeout": bootstrap_timeout(connect_timeout),
            "remote_name": remote_name(target),
        },
    }


def is_container_hop(kwargs: dict[str, Any]) -> bool:
    """A running container's hop, not a directory tree's (whose files are the operator's)."""
    return str(kwargs.get("remote_name", "")).startswith("nspawn:")


def remote_name(target: NspawnTarget) -> str:
    """The interpreter's process title suffix, python3(mitogen:NAME): mitogen refuses slashes."""
    if target.is_directory:
        return "nspawn-tree:" + str(target.directory).strip("/").replace("/", ":")
    return f"nspawn:{target.container}"


# Marks the host's hop of a stack. Its interpreter only looks up leaders and starts the
# containers' interpreters (hostside.py): the multiplexer skips ansible_mitogen's init_child
# there (importing its module runner and forking a parent for isolated modules: a third of
# a cold start), see muxside.py. Part of the stack, hence of ContextService's key.
HOST_HOP_MARK = "nspawn_fast_host"


def host_hop(hop: dict[str, Any]) -> dict[str, Any]:
    return {**hop, HOST_HOP_MARK: True}


def host_hop_local() -> dict[str, Any]:
    """The controller itself runs the containers (ansible_nspawn_local)."""
    return host_hop({"method": "local", "kwargs": {"python_path": list(HOST_PYTHON)}})


# The name that picks ansible_mitogen's multiplexer for every nspawn target. All of them use
# the same one: the containers of one host must (one SSH connection per host), and
# ansible-playbook's own task threads can talk to only one (inprocess.py).
MUX_KEY = "nspawn-fast"


def binding_name(target: NspawnTarget) -> str:
    return MUX_KEY
