"""NspawnService.get in the multiplexer, with fake contexts: host, leader, container interpreter.

ansible_mitogen's ContextService and the contexts it returns are faked (a context per distinct
stack, as its deduplication does); the stacks, the lookup command and the hops are the real ones.
"""
from __future__ import annotations

import dataclasses

import mitogen.core
import pytest

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.target import NspawnTarget
from ansible_nspawn_fast.transport import muxside, plan

TARGET = NspawnTarget(host="server1", container="web", boot_timeout=30)
HOST_STACK = [{"method": "ssh", "kwargs": {"hostname": "server1"}}]
LEADER = (4242, 99, "systemd-nspawn@web.service", "/usr/bin:/bin")
RESTARTED = (5151, 120, "systemd-nspawn@web.service", "/usr/bin:/bin")
PYTHON = ["/usr/bin/python3"]


class FakeContext:
    """A context: records plain calls; a container's interpreter answers whether it takes tasks."""

    ids = iter(range(100, 10_000))

    def __init__(self, name: str, ready: bool = True) -> None:
        self.name, self.ready, self.calls = name, ready, []
        self.context_id = next(FakeContext.ids)

    def call(self, fn, *args):
        self.calls.append(fn.__name__)
        return self.ready if fn.__name__ == "accepts_tasks" else None

    def call_async(self, fn, *args):
        """readiness.ask's form of call(): a receiver of the one answer."""
        value = self.call(fn, *args)
        message = type("Message", (), {"unpickle": lambda _self: value})()
        return type("Receiver", (), {"get": lambda _self, timeout=None: message, "close": lambda _self: None})()


class FakeHost(FakeContext):
    """The host's interpreter: its HostService finds `leaders` in turn (dicts as it answers)."""

    def __init__(self, *leaders: dict | Exception) -> None:
        super().__init__("host")
        self.leaders, self.lookups = list(leaders), []

    def call_service(self, service_name, method_name, **kw):
        assert (service_name, method_name) == (muxside.HOST_SERVICE, "leader")
        self.lookups.append(kw)
        found = self.leaders.pop(0)
        if isinstance(found, Exception):
            raise found
        return found


class FakeContextService:
    """ansible_mitogen's ContextService: one context per distinct stack, made on first get()."""

    def __init__(self, host: FakeHost, host_msg: str | None = None, ready: bool = True) -> None:
        self.host, self.host_msg, self.ready = host, host_msg, ready
        self.made: dict[str, FakeContext] = {}
        self.put_back: list[FakeContext] = []

    def get(self, stack):
        if stack == HOST_STACK:
            return {"msg": self.host_msg} if self.host_msg else {"context": self.host, "msg": None}
        via = self.get(stack[:-1])["context"]
        context = self.made.setdefault(repr(stack), FakeContext(f"context{len(self.made)}", self.ready))
        return {"context": context, "via": via, "msg": None, "init_child_result": {}}

    def put(self, context):
        self.put_back.append(context)


def service(host: FakeHost, **kw) -> tuple[muxside.NspawnService, FakeContextService]:
    contexts = FakeContextService(host, **kw)
    return muxside.NspawnService(router=None, contexts=contexts), contexts


def get(svc, target=TARGET, connect=True, extra_hops=()):
    """As the task's worker calls it (transport/connection.py)."""
    return svc.get(host_stack=HOST_STACK, target=dataclasses.asdict(target), python=PYTHON,
                   connect_timeout=None, extra_hops=list(extra_hops), connect=connect)


def hop(leader) -> dict:
    return plan.container_hop(TARGET, enter.Leader(*leader), PYTHON)


def test_an_unreachable_host_is_said_without_a_lookup():
    host = FakeHost()
    svc, _ = service(host, host_msg="ssh: connect to host server1 port 22: Connection refused")
    assert get(svc) == {"msg": "ssh: connect to host server1 port 22: Connection refused", "stack": HOST_STACK}
    assert host.lookups == []


def test_the_host_looks_the_leader_up_and_it_becomes_part_of_the_stack():
    host = FakeHost({"leader": LEADER, "cached": False})
    svc, contexts = service(host)
    res = get(svc, connect=False)
    assert res == {"stack": [*HOST_STACK, hop(LEADER)], "leader": LEADER, "cached": False, "msg": None}
    lookup, = host.lookups
    # The lookup command is built here, on the controller side; the host only runs it, bounded.
    assert lookup["argv"] == enter.lookup_argv(TARGET) and lookup["name"] == "web"
    assert lookup["timeout"] == TARGET.boot_timeout + muxside.LOOKUP_SLACK
    assert contexts.made == {}  # connect=False: no interpreter started


def test_a_cached_leader_of_a_container_that_takes_tasks_is_used_as_is():
    host = FakeHost({"leader": LEADER, "cached": True}, {"leader": LEADER, "cached": True})
    svc, contexts = service(host)
    first, second = get(svc), get(svc)
    assert first["context"] is second["context"] and first["stack"] == [*HOST_STACK, hop(LEADER)]
    assert len(host.lookups) == 2 and "forget" not in host.calls
    assert host.calls.count("prepare") == 1  # the host's service pool is sized once
    assert first["context"].calls.count("setup") == 1  # its clean exit is armed once


def test_a_container_that_began_to_reboot_is_looked_up_again_without_the_cache():
    host = FakeHost({"leader": LEADER, "cached": True}, {"leader": RESTARTED, "cached": False})
    svc, contexts = service(host, ready=False)
    res = get(svc)
    assert "forget" in host.calls and len(host.lookups) == 2
    assert res["leader"] == RESTARTED and res["cached"] is False
    assert res["stack"] == [*HOST_STACK, hop(RESTARTED)]
    old = contexts.made[repr([*HOST_STACK, hop(LEADER)])]
    assert contexts.put_back == [old] and res["context"] is not old


@pytest.mark.parametrize("answer, expected", [
    ({"error": ("not-running", "no machine web")}, {"lookup": ("not-running", "no machine web")}),
    (mitogen.core.ChannelError("EOF"), {"msg": "lost the connection to host server1: EOF"}),
])
def test_a_failed_lookup_is_said_with_the_host_stack(answer, expected):
    svc, contexts = service(FakeHost(answer))
    assert get(svc) == {**expected, "stack": HOST_STACK}
    assert contexts.made == {}


def test_a_tree_needs_no_lookup():
    tree = NspawnTarget(host="server1", directory="/srv/tree")
    host = FakeHost()
    svc, _ = service(host)
    res = get(svc, target=tree)
    assert res["stack"] == [*HOST_STACK, plan.container_hop(tree, None, PYTHON)] and res["leader"] is None
    assert host.lookups == [] and host.calls.count("prepare") == 1


def test_a_become_hop_comes_after_the_container_and_is_set_up_too():
    sudo = {"method": "sudo", "kwargs": {"username": "app"}}
    host = FakeHost({"leader": LEADER, "cached": False})
    svc, _ = service(host)
    res = get(svc, extra_hops=[sudo])
    assert res["stack"] == [*HOST_STACK, hop(LEADER), sudo]
    container = res["via"]  # the become user's interpreter is started by the container's
    assert container is not res["context"] and "setup" in container.calls and "setup" in res["context"].calls


def test_a_known_interpreter_is_asked_by_the_host_in_the_same_call_as_the_cached_leader():
    """One round trip to the host per task: the host checks its cached leader and, when it is
    the one of the last task, asks that task's interpreter whether the container takes tasks."""
    host = FakeHost({"leader": LEADER, "cached": False}, {"leader": LEADER, "cached": True, "ready": True})
    svc, _ = service(host)
    first = get(svc)
    assert "expect" not in host.lookups[0]  # nothing known yet
    first["context"].calls.clear()
    second = get(svc)
    asked = host.lookups[1]
    assert asked["expect"] == list(LEADER) and asked["context_id"] == first["context"].context_id
    assert second["context"] is first["context"] and "accepts_tasks" not in second["context"].calls
    assert "forget" not in host.calls


def test_a_not_ready_answer_through_the_host_looks_the_leader_up_again():
    host = FakeHost({"leader": LEADER, "cached": False}, {"leader": LEADER, "cached": True, "ready": False},
                    {"leader": RESTARTED, "cached": False})
    svc, contexts = service(host)
    first = get(svc)
    res = get(svc)
    assert "forget" in host.calls and res["leader"] == RESTARTED and res["context"] is not first["context"]
    assert contexts.put_back == [first["context"]]


def test_without_the_hosts_answer_the_multiplexer_asks_the_interpreter_itself():
    """A host that knows no such interpreter (None) or a leader not the expected one."""
    host = FakeHost({"leader": LEADER, "cached": False}, {"leader": LEADER, "cached": True, "ready": None})
    svc, _ = service(host)
    first = get(svc)
    first["context"].calls.clear()
    get(svc)
    assert first["context"].calls.count("accepts_tasks") == 1


def test_with_become_the_containers_own_interpreter_is_the_one_asked():
    become = {"method": "sudo", "kwargs": {"username": "app"}}
    host = FakeHost({"leader": LEADER, "cached": False}, {"leader": LEADER, "cached": True, "ready": True})
    svc, _ = service(host)
    first = get(svc, extra_hops=[become])
    get(svc, extra_hops=[become])
    assert host.lookups[1]["context_id"] == first["via"].context_id != first["context"].context_id
