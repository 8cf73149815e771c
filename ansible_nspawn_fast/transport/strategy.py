"""Strategy integration: ansible_mitogen's StrategyMixin plus one loader hook.

ansible_mitogen's mixin starts the multiplexer, wraps action plugins and
redirects `ssh`, `local`, ... to its own connections; other connection types
in the play keep working exactly as under mitogen_linear. On top of that,
while the strategy runs, a connection plugin whose class is the nspawn plugin's
is instantiated as MitogenNspawnConnection instead, under the plugin's own
name, so its options (the shim's DOCUMENTATION) are resolved as usual.
"""
from __future__ import annotations

import ctypes
import os
import signal
import typing as t

import ansible_mitogen.loaders
import ansible_mitogen.process
import ansible_mitogen.strategy

from ..connection import Connection as PluginConnection
from .connection import Connection as MitogenNspawnConnection

_loader = ansible_mitogen.loaders.connection_loader


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


PR_SET_PDEATHSIG = 1


def _exit_with_parent() -> None:
    """In the multiplexer: die when the controller dies, even by SIGKILL.

    ansible_mitogen's multiplexer waits for its socket to the controller to close, but
    the task workers hold that socket too and a worker waits for its task's result
    from the multiplexer: after a SIGKILL of ansible-playbook nothing ends. With a
    parent-death signal the multiplexer goes at once; its SSH connections close, the
    host interpreters see EOF and exit, and their container interpreters with them.
    """
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return  # not Linux: keep ansible_mitogen's own behaviour
    if parent == 1 or os.getppid() != parent:  # the controller died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def _install_mux_hooks() -> None:
    """Hooks that run in the multiplexer as it starts (ansible_mitogen's responder setup).

    They let it serve our package to the host interpreters (hostside.py) and tie its
    life to the controller's. The multiplexer is forked from this process on the first
    strategy start, so the hook must be in place before it; installing it twice is
    harmless.
    """
    setup = ansible_mitogen.process._setup_responder
    if getattr(setup, "nspawn_fast", False):
        return

    def setup_responder(responder: t.Any) -> None:
        setup(responder)
        responder.whitelist_prefix("ansible_nspawn_fast")
        _exit_with_parent()

    setup_responder.nspawn_fast = True  # type: ignore[attr-defined]
    ansible_mitogen.process._setup_responder = setup_responder


class NspawnStrategyMixin(ansible_mitogen.strategy.StrategyMixin):
    def run(self, iterator: t.Any, play_context: t.Any, result: int = 0) -> t.Any:
        # ansible_mitogen's own wrapper delegates names it does not redirect to
        # loaders.connection_loader__get_with_context: hook there.
        _install_mux_hooks()
        original = ansible_mitogen.loaders.connection_loader__get_with_context
        ansible_mitogen.loaders.connection_loader__get_with_context = _get_with_context(original)
        try:
            return super().run(iterator, play_context, result)
        finally:
            ansible_mitogen.loaders.connection_loader__get_with_context = original
            _loader.get_with_context = original
