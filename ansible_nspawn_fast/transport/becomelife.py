"""In the multiplexer: a container's become interpreter ends when a task of it runs as someone else.

Under stock Ansible the process of a become user (sudo or su to another user) ends with its
task. ansible_mitogen keeps a become interpreter for later tasks, so that user keeps a process
for the rest of the run, and a later task that removes the user fails (`userdel: user tmptest
is currently used by process N`). Ending it with every task would give each become task a new
interpreter (20 tasks as another user, measured on the lab: 3.0 s -> 7.0 s, slower than stock
linear; docs/semantics.md). So it lives as long as the container's tasks keep running as that
user, and ends before the first task that does not: before a task runs as root, as another user, or
through the per-command path (semantics.py asks for that with a get() without become hops).
A become interpreter that another task is using at that moment (two inventory names for one
container) is left to the next switch.
"""
from __future__ import annotations

import logging
import threading
import typing as t

import ansible_mitogen.services
import mitogen.core

LOG = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT = 30  # seconds to wait for an ended interpreter to disconnect (ContextService's)


class BecomeInterpreters:
    """Per container, the stacks of the become interpreters its tasks have used."""

    def __init__(self, contexts: t.Any) -> None:
        self._contexts = contexts  # ansible_mitogen's ContextService
        self._lock = threading.Lock()
        self._by_container: dict[t.Hashable, list[list[dict[str, t.Any]]]] = {}

    def task_starts(self, container: t.Hashable, stack: list[dict[str, t.Any]], hops: int,
                    connect: bool) -> None:
        """A task of `container` gets `stack` (become hops after the first `hops`): end the
        container's other become interpreters first; remember this one if it is made now."""
        wanted = stack if len(stack) > hops else None
        with self._lock:
            known = self._by_container.pop(container, [])
            ending = [s for s in known if s != wanted]
            kept = [s for s in known if s == wanted]
        kept += [s for s in ending if not self._end(s)]
        if connect and wanted is not None and wanted not in kept:
            kept.append(wanted)
        if kept:
            with self._lock:
                self._by_container.setdefault(container, []).extend(kept)

    def _end(self, stack: list[dict[str, t.Any]]) -> bool:
        """Shut the interpreter of `stack` down and wait for it; False if a task is using it."""
        contexts, latch = self._contexts, mitogen.core.Latch()
        with contexts._lock:
            context = _context_of(contexts, stack)
            if context is None:
                return True  # gone already (its container restarted, or reset_connection)
            if contexts._refs_by_context.get(context, 0):
                return False
            mitogen.core.listen(context, "disconnect", latch.put)
            contexts._shutdown_unlocked(context)
        try:
            latch.get(timeout=SHUTDOWN_TIMEOUT)
        except mitogen.core.TimeoutError:
            LOG.warning("become interpreter %r did not exit within %d s", context, SHUTDOWN_TIMEOUT)
        return True


def _context_of(contexts: t.Any, stack: list[dict[str, t.Any]]) -> t.Any:
    """The context ContextService made for `stack`, as its reset() finds it; None if none."""
    context = None
    for spec in stack:
        response = contexts._response_by_key.get(ansible_mitogen.services.key_from_dict(via=context, **spec))
        if response is None or response.get("context") is None:
            return None
        context = response["context"]
    return context
