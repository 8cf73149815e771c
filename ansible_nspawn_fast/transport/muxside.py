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
import typing as t

import mitogen.core
import mitogen.service

from ..enter import Leader
from ..target import NspawnTarget
from . import hostside, plan

CONTEXT_SERVICE = "ansible_mitogen.services.ContextService"
HOST_SERVICE = "ansible_nspawn_fast.transport.hostside.HostService"


class NspawnService(mitogen.service.Service):
    """The worker's one call per task: host, leader and container interpreter."""

    def __init__(self, router: t.Any, contexts: t.Any) -> None:
        super().__init__(router)
        self._contexts = contexts  # ansible_mitogen's ContextService of this multiplexer
        self._prepared: set[t.Any] = set()  # host contexts whose HostService pool is sized

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

        On failure: {"msg"} (the host cannot be reached) or {"lookup"} (the helper's rc,
        stdout and stderr, for the worker to turn into a message).
        """
        spec = NspawnTarget(**target)
        leader, cached = None, False
        if not spec.is_directory:
            host, dct = self._host(host_stack)
            if host is None:
                return {"msg": dct["msg"], "stack": host_stack}
            try:
                found = host.call_service(HOST_SERVICE, "leader", name=spec.container,
                                          boot_timeout=spec.boot_timeout, sudo=spec.host_sudo)
            except mitogen.core.ChannelError as e:
                return {"msg": f"lost the connection to host {spec.host}: {e}", "stack": host_stack}
            if "leader" not in found:
                return {"lookup": found, "stack": host_stack}
            leader, cached = found["leader"], found["cached"]
        stack = [*host_stack,
                 plan.container_hop(spec, Leader(*leader) if leader else None, python, connect_timeout),
                 *extra_hops]
        result = {"stack": stack, "leader": leader, "cached": cached, "msg": None}
        if connect:
            if spec.is_directory:
                self._host(host_stack)  # sizes the host's pool before the tree's hop uses it
            result.update(self._contexts.get(stack=stack))
        return result


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
    return context


def install(pool: t.Any) -> None:
    """Called as the multiplexer sets up its service pool (strategy.py's hook)."""
    pool.router.nspawn_local = functools.partial(connect_via_host_pool, pool.router)
    pool.add(NspawnService(pool.router, pool.get_service(CONTEXT_SERVICE)))
