"""readiness.accepts_tasks, run in a container's interpreter before each task with a cached
leader: a container whose init is not systemd (no /run/systemd/system: an --as-pid2 application
container, a script as PID 1) has nothing to ask and takes tasks; systemd's answer decides
otherwise, and an answer that cannot be had means "not now"."""
import os
import types

import mitogen.core

import pytest

from ansible_nspawn_fast.transport import readiness


@pytest.fixture
def systemd_init(monkeypatch):
    def set_(present: bool, state=None, error=None):
        real_isdir = os.path.isdir
        monkeypatch.setattr(readiness.os.path, "isdir",
                            lambda p: present if p == "/run/systemd/system" else real_isdir(p))

        def system_state(path=readiness.PRIVATE_SOCKET):
            if error:
                raise error
            return state
        monkeypatch.setattr(readiness, "system_state", system_state)
    return set_


def test_no_systemd_inside_takes_tasks_without_asking(systemd_init):
    systemd_init(False, error=AssertionError("nothing to ask"))
    assert readiness.accepts_tasks() is True


@pytest.mark.parametrize("state, ready", [("running", True), ("degraded", True), ("maintenance", True),
                                          ("starting", False), ("stopping", False), ("offline", False)])
def test_systemd_inside_decides(systemd_init, state, ready):
    systemd_init(True, state=state)
    assert readiness.accepts_tasks() is ready


@pytest.mark.parametrize("error", [OSError("no socket"), ValueError("garbled")])
def test_systemd_that_does_not_answer_is_not_ready(systemd_init, error):
    systemd_init(True, error=error)
    assert readiness.accepts_tasks() is False


class _Answer:
    """A receiver of one call's answer: `get` returns `result` or raises it."""

    def __init__(self, result):
        self.result, self.timeout, self.closed = result, None, False

    def get(self, timeout=None):
        self.timeout = timeout
        if isinstance(self.result, Exception):
            raise self.result
        return types.SimpleNamespace(unpickle=lambda: self.result)

    def close(self):
        self.closed = True


@pytest.mark.parametrize("result, expected, closed", [
    (True, True, False), (False, False, False),  # answered: the receiver removed its handle itself
    (mitogen.core.TimeoutError("no answer"), False, True),  # a stopped or wedged interpreter
    (mitogen.core.ChannelError("gone"), False, False),
])
def test_a_parent_asks_within_a_bound_and_gives_up_on_no_answer(result, expected, closed):
    answer = _Answer(result)
    context = types.SimpleNamespace(call_async=lambda fn: answer if fn is readiness.accepts_tasks else None)
    assert readiness.ask(context) is expected
    assert answer.timeout == readiness.ASK_TIMEOUT and answer.closed is closed
