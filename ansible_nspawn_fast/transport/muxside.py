"""Runs in ansible_mitogen's multiplexer process: one call per task from the worker.

A task's worker asks NspawnService.get() once. In the multiplexer that is: the host's
context from ContextService (one SSH connection per host), the container's leader from
the host's interpreter (cached there, checked by start time), and the container's
interpreter from ContextService again, keyed by a stack that includes the leader. Done
here, the worker pays one round trip to the multiplexer instead of three.

The container hop uses the router method `nspawn_local`: mitogen's `local` method,
started by the host's HostService on a pool thread (hostside.py), so the containers of
one host bootstrap in parallel instead of one after another on the host's main thread.
"""
from __future__ import annotations

import functools
import logging
import os
import typing as t

import mitogen.core
import mitogen.service

from .. import enter
from ..enter import Leader
from ..target import NspawnTarget
from . import becomelife, codecache, containerside, hostside, plan, readiness

LOG = logging.getLogger(__name__)
CONTEXT_SERVICE = "ansible_mitogen.services.ContextService"
HOST_SERVICE = "ansible_nspawn_fast.transport.hostside.HostService"
# Seconds a lookup may take beyond the boot timeout (its own host-side steps are bounded too).
LOOKUP_SLACK = 60
# Set to 0 to keep a container's interpreter from caching the code it compiles (codecache.py).
CODE_CACHE_ENV = "NSPAWN_FAST_CODE_CACHE"


class NspawnService(mitogen.service.Service):
    """The worker's one call per task: host, leader and container interpreter."""

    def __init__(self, router: t.Any, contexts: t.Any) -> None:
        super().__init__(router)
        self._contexts = contexts  # ansible_mitogen's ContextService of this multiplexer
        self._prepared: set[t.Any] = set()  # host contexts whose HostService pool is sized
        self._become = becomelife.BecomeInterpreters(contexts)  # they end as under stock Ansible
        # (host stack, machine) -> (leader, the container's own interpreter) of its last task:
        # the host asks that interpreter whether the container takes tasks in the same call
        # that checks the cached leader (one SSH round trip per task, not two).
        self._known: dict[tuple[str, str], tuple[tuple, t.Any]] = {}

    def _host(self, host_stack: list) -> tuple[t.Any, dict]:
        dct = self._contexts.get(stack=host_stack)
        if dct["msg"]:
            return None, dct
        host = dct["context"]
        if host not in self._prepared:
            host.call(hostside.prepare)
            self._prepared.add(host)
        return host, dct

    @mitogen.service.expose(mitogen.service.AllowParents())
    def get(self, host_stack: list, target: dict, python: list, connect_timeout: t.Any,
            extra_hops: list, connect: bool) -> dict:
        """{"stack", "leader", "cached"} plus, with `connect`, ContextService.get()'s answer.

        On failure: {"msg"} (the host cannot be reached) or {"lookup"} (the helper's error
        code and message, for the worker to turn into a message).
        """
        spec = NspawnTarget(**target)
        leader, cached, host = None, False, None
        key = (repr(host_stack), spec.container or "")
        if not spec.is_directory:
            host, dct = self._host(host_stack)
            if host is None:
                return {"msg": dct["msg"], "stack": host_stack}
            found = self._leader(host, spec, host_stack, self._known.get(key))
            if "leader" not in found:
                return found
            leader, cached = found["leader"], found["cached"]

        def stack_for(leader: t.Any) -> list:
            hop = plan.container_hop(spec, Leader(*leader) if leader else None, python, connect_timeout)
            return [*host_stack, hop, *extra_hops]

        stack = stack_for(leader)
        self._become.task_starts((repr(host_stack), spec.container, spec.directory), stack,
                                 len(stack) - len(extra_hops), connect)
        result = {"stack": stack, "leader": leader, "cached": cached, "msg": None}
        if not connect:
            return result
        if spec.is_directory:
            self._host(host_stack)  # sizes the host's pool before the tree's hop uses it
        result.update(self._contexts.get(stack=stack))
        own = _container_interpreter(result, extra_hops)
        ready = found.get("ready") if cached and found.get("asked") is own else None
        if cached and not result["msg"] and not (readiness.ask(own) if ready is None else ready):
            # A reboot or poweroff has begun (or the instance is still booting): ask the host
            # again without its cache; its lookup waits until the machine runs and is booted.
            host.call(hostside.forget, spec.container)
            found = self._leader(host, spec, host_stack)
            if "leader" not in found:
                return found
            if tuple(found["leader"]) != tuple(leader):
                # The old instance's interpreter goes with its container (ContextService
                # forgets it on disconnect); this task does not use it.
                self._contexts.put(result["context"])
                stack = stack_for(found["leader"])
                result = {"stack": stack, "leader": found["leader"], "cached": False, "msg": None}
                result.update(self._contexts.get(stack=stack))
        if not result["msg"] and not spec.is_directory:
            self._known[key] = (tuple(result["leader"]), _container_interpreter(result, extra_hops))
        _set_up_once(result, become=bool(extra_hops))
        return result

    @staticmethod
    def _leader(host: t.Any, spec: NspawnTarget, host_stack: list, known: tuple | None = None) -> dict:
        """{"leader", "cached"} from the host's cache or lookup; else {"msg"} or {"lookup"}.

        With `known` (the leader and the container's interpreter of the last task), a cached
        leader that is still that one comes with that interpreter's answer, "ready", and the
        interpreter asked, "asked"."""
        ask = {}
        if known is not None and getattr(known[1], "context_id", None) is not None:
            ask = {"expect": list(known[0]), "context_id": known[1].context_id}
        try:
            found = host.call_service(HOST_SERVICE, "leader", name=spec.container,
                                      argv=enter.lookup_argv(spec), nonce=enter.RUN_NONCE,
                                      timeout=spec.boot_timeout + LOOKUP_SLACK, **ask)
        except mitogen.core.ChannelError as e:
            return {"msg": f"lost the connection to host {spec.host}: {e}", "stack": host_stack}
        if "error" in found:
            return {"lookup": found["error"], "stack": host_stack}
        if ask and found.get("ready") is not None:
            found["asked"] = known[1]
        return found


_set_up: set[t.Any] = set()  # container (and become) contexts that ran containerside.setup


def _set_up_once(result: dict, become: bool) -> None:
    """A new interpreter in a container, and a become user's in it, arm their clean exit."""
    if result.get("msg") or result.get("context") is None:
        return
    for context in (result["via"], result["context"]) if become else (result["context"],):
        if context in _set_up:
            continue
        try:
            context.call(containerside.setup)
        except mitogen.core.ChannelError:
            return  # it died already: the task's own first call reports that
        except mitogen.core.CallError as e:  # a safety net only: the task still runs
            LOG.warning("%r: no clean-up on a lost connection in this interpreter: %s", context, e)
        _set_up.add(context)
        mitogen.core.listen(context, "disconnect", functools.partial(_set_up.discard, context))


def _container_interpreter(result: dict, extra_hops: list) -> t.Any:
    """The container's own (root) interpreter of ContextService's answer: with a become hop
    after it, the hop's `via`."""
    return result.get("via") if extra_hops else result.get("context")


def connect_via_host_pool(router: t.Any, via: t.Any = None, **kwargs: t.Any) -> t.Any:
    """Router method `nspawn_local`: Router.local(), the intermediary's part on its pool.

    mitogen's Router.proxy_connect() has the intermediary run _proxy_connect() with
    Context.call(), which its main thread serves one at a time; HostService.connect()
    runs the same function on a pool thread. The rest mirrors proxy_connect().
    """
    if via is None:
        return router.local(**kwargs)
    kwargs.setdefault("debug", router.debug)
    kwargs.setdefault("profiling", router.profiling)
    kwargs.setdefault("unidirectional", router.unidirectional)
    name = kwargs.pop("name", None)
    resp = via.call_service(HOST_SERVICE, "connect", name=name, connection_method="local",
                            kwargs=mitogen.core.Kwargs(kwargs))
    if resp["msg"] is not None:
        raise mitogen.core.StreamError(resp["msg"])
    context = router.context_class(router, resp["id"], name=f"{via.name}.{resp['name']}")
    context.via = via
    with router._write_lock:
        router._context_by_id[context.context_id] = context
    if plan.is_container_hop(kwargs) and os.environ.get(CODE_CACHE_ENV, "1") != "0":
        # Before ContextService's init_child, which imports most of what a task needs: the
        # interpreter runs calls in order, so those imports already use the cache.
        context.call_no_reply(codecache.install)
    return context


def _connect_without_init_child(service: t.Any, key: t.Any, spec: dict, via: t.Any = None) -> dict:
    """ContextService._connect for a host's hop (plan.HOST_HOP_MARK): the same, less
    init_child. Its modules are still forwarded to it: the containers' interpreters, its
    children, import them from it rather than over SSH."""
    context = getattr(service.router, spec["method"])(via=via, unidirectional=True, **spec["kwargs"])
    mitogen.core.listen(context, "disconnect", lambda: service._on_context_disconnect(context))
    service._send_module_forwards(context)
    service._key_by_context[context] = key
    service._refs_by_context[context] = 0
    return {"context": context, "via": via, "init_child_result": None, "msg": None}


def install(pool: t.Any) -> None:
    """Called as the multiplexer sets up its service pool (strategy.py's hook)."""
    pool.router.nspawn_local = functools.partial(connect_via_host_pool, pool.router)
    contexts = pool.get_service(CONTEXT_SERVICE)
    connect = contexts._connect

    def connect_hop(key: t.Any, spec: dict, via: t.Any = None) -> dict:
        if spec.get(plan.HOST_HOP_MARK):
            return _connect_without_init_child(contexts, key, spec, via)
        return connect(key, spec, via)

    contexts._connect = connect_hop
    pool.add(NspawnService(pool.router, contexts))
