"""When a container's become interpreter ends: the decisions, against a stand-in ContextService."""
from __future__ import annotations

import threading
import typing as t

import ansible_mitogen.services
import mitogen.core

from ansible_nspawn_fast.transport.becomelife import BecomeInterpreters

HOST = [{"method": "ssh", "kwargs": {"hostname": "h1"}}]
CONTAINER = {"method": "nspawn_local", "kwargs": {"leader": 42}}
AS_APP = [*HOST, CONTAINER, {"method": "sudo", "kwargs": {"username": "app"}}]
AS_DB = [*HOST, CONTAINER, {"method": "sudo", "kwargs": {"username": "db"}}]
AS_ROOT = [*HOST, CONTAINER]


class Context:
    def __init__(self, name: str) -> None:
        self.name = name


class Contexts:
    """What BecomeInterpreters reads of ContextService: its contexts by key, their references."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response_by_key: dict[t.Any, dict[str, t.Any]] = {}
        self._refs_by_context: dict[Context, int] = {}
        self.ended: list[str] = []

    def made(self, stack: list[dict[str, t.Any]], refs: int = 0) -> None:
        via = None
        for spec in stack:
            key = ansible_mitogen.services.key_from_dict(via=via, **spec)
            response = self._response_by_key.setdefault(key, {"context": Context(spec["method"])})
            via = response["context"]
        self._refs_by_context[via] = refs

    def _shutdown_unlocked(self, context: Context) -> None:
        self.ended.append(context.name)
        self._response_by_key = {k: v for k, v in self._response_by_key.items() if v["context"] is not context}
        mitogen.core.fire(context, "disconnect")


def start(become: BecomeInterpreters, contexts: Contexts, stack: list[dict[str, t.Any]],
          connect: bool = True, refs: int = 0) -> None:
    become.task_starts("h1/web", stack, len(AS_ROOT), connect)
    if connect and len(stack) > len(AS_ROOT):
        contexts.made(stack, refs)


def test_tasks_in_a_row_as_one_user_share_its_interpreter_and_a_root_task_ends_it():
    contexts = Contexts()
    become = BecomeInterpreters(contexts)
    start(become, contexts, AS_APP)
    start(become, contexts, AS_APP)
    assert contexts.ended == []
    start(become, contexts, AS_ROOT)
    assert contexts.ended == ["sudo"]
    start(become, contexts, AS_ROOT)
    assert contexts.ended == ["sudo"]


def test_a_task_as_another_user_ends_the_first_users_interpreter():
    contexts = Contexts()
    become = BecomeInterpreters(contexts)
    start(become, contexts, AS_APP)
    start(become, contexts, AS_DB)
    assert contexts.ended == ["sudo"]
    start(become, contexts, AS_ROOT, connect=False)  # a task on the per-command path
    assert contexts.ended == ["sudo", "sudo"]


def test_an_interpreter_in_use_by_another_task_is_left_for_the_next_switch():
    contexts = Contexts()
    become = BecomeInterpreters(contexts)
    start(become, contexts, AS_APP, refs=1)  # another inventory name of this container uses it
    start(become, contexts, AS_ROOT)
    assert contexts.ended == []
    contexts.made(AS_APP, refs=0)  # that task ended
    start(become, contexts, AS_ROOT)
    assert contexts.ended == ["sudo"]
