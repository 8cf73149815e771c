"""Strategy integration: ansible_mitogen's StrategyMixin plus one loader hook.

ansible_mitogen's mixin starts the multiplexer, wraps action plugins and
redirects `ssh`, `local`, ... to its own connections; other connection types
in the play keep working exactly as under mitogen_linear. On top of that,
while the strategy runs, a connection plugin whose class is the nspawn plugin's
is instantiated as MitogenNspawnConnection instead, under the plugin's own
name, so its options (the shim's DOCUMENTATION) are resolved as usual. On machines
with fewer than 4 CPUs, no process is pinned to a CPU (affinity.py).
"""
from __future__ import annotations

import typing as t

import ansible_mitogen.loaders
import ansible_mitogen.process
import ansible_mitogen.strategy

from ansible.utils.display import Display

from ..connection import Connection as PluginConnection
from . import affinity, inprocess, lifetime, muxside, semantics
from .connection import Connection as MitogenNspawnConnection

_loader = ansible_mitogen.loaders.connection_loader
display = Display()


def _get_with_context(original: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    def get_with_context(name: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        found = original(name, *args, class_only=True, collection_list=kwargs.get("collection_list"))
        cls, context = found.object, found.plugin_load_context
        if kwargs.get("class_only") or cls is None or not issubclass(cls, PluginConnection):
            return original(name, *args, **kwargs)
        kwargs.pop("collection_list", None)
        # What PluginLoader.get_with_context does for a class it found, with our class.
        instance = object.__new__(MitogenNspawnConnection)
        _loader._update_object(obj=instance, name=context.plugin_resolved_name,
                               path=context.plugin_resolved_path,
                               redirected_names=context.redirect_list or [],
                               resolved=context.resolved_fqcn)
        MitogenNspawnConnection.__init__(instance, *args, **kwargs)
        return type(found)(instance, context)
    return get_with_context


def _install_mux_hooks() -> None:
    """Hooks that run in the multiplexer as it starts (its responder and pool setup).

    They let it serve our package to the host interpreters (hostside.py), add our
    service and router method (muxside.py) and tie its life to the controller's.
    The multiplexer is forked from this process on the first strategy start, so the
    hooks must be in place before it; installing them twice is harmless.
    """
    setup = ansible_mitogen.process._setup_responder
    if getattr(setup, "nspawn_fast", False):
        return

    def setup_responder(responder: t.Any) -> None:
        setup(responder)
        responder.whitelist_prefix("ansible_nspawn_fast")
        lifetime.exit_with_parent()

    setup_pool = ansible_mitogen.process.setup_pool

    def setup_pool_and_ours(pool: t.Any) -> None:
        setup_pool(pool)
        muxside.install(pool)

    setup_responder.nspawn_fast = True  # type: ignore[attr-defined]
    ansible_mitogen.process._setup_responder = setup_responder
    ansible_mitogen.process.setup_pool = setup_pool_and_ours


class NspawnStrategyMixin(ansible_mitogen.strategy.StrategyMixin):
    def run(self, iterator: t.Any, play_context: t.Any, result: int = 0) -> t.Any:
        # ansible_mitogen's own wrapper delegates names it does not redirect to
        # loaders.connection_loader__get_with_context: hook there.
        _install_mux_hooks()
        affinity.install()
        original = ansible_mitogen.loaders.connection_loader__get_with_context
        ansible_mitogen.loaders.connection_loader__get_with_context = _get_with_context(original)
        undo_threads = inprocess.install()
        undo_semantics = semantics.install()  # ansible-core's behaviour where Mitogen's differs
        try:
            return super().run(iterator, play_context, result)
        finally:
            undo_semantics()
            undo_threads()
            ansible_mitogen.loaders.connection_loader__get_with_context = original
            _loader.get_with_context = original

    def _queue_task(self, host: t.Any, task: t.Any, task_vars: t.Any, play_context: t.Any) -> t.Any:
        reason = inprocess.fork_reason(host, task, task_vars)
        if reason is None:
            with inprocess.on_a_thread():
                # Past ansible_mitogen's _queue_task: it warms the loaders for forked workers,
                # which a thread of this process does not need.
                return super(ansible_mitogen.strategy.StrategyMixin, self)._queue_task(
                    host, task, task_vars, play_context)
        if reason != inprocess.OTHER_CONNECTION:
            display.vvv(f"NSPAWN: task '{task.get_name()}' runs in a forked worker ({reason})",
                        host=host.name)
        return super()._queue_task(host, task, task_vars, play_context)
