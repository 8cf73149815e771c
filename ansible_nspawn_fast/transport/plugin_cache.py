"""ansible-core's plugin loaders in a process that runs tasks on threads and lives on.

A forked worker starts from the controller's loaders and throws its own lookups away; the
task threads of inprocess.py share the controller's. Two things differ there:

- Loading a plugin's file is not safe from two threads at once: the second finds the module
  in sys.modules before it has run (a filter plugin without its FilterModule, skipped with a
  warning). `serialize_loading` makes it one load at a time.
- Finding a plugin by its fully qualified name lists the collection's plugin directory on
  every call (ansible-core caches short names only): a few milliseconds per task and host,
  on the one CPU the controller's threads share (an action plugin is looked up, and not
  found, for every module task). While a strategy runs, `remember_lookups` keeps each
  lookup's result and hands out copies of it, until the loaders clear their own caches (a
  plugin directory added: a role's, when an include_role loads it): then they are all
  forgotten. The same holds for the list of a loader's plugin files (`all(path_only=True)`),
  which ansible-core's fact cleaning asks for, globbing every plugin directory, for every
  host of every task.
"""
from __future__ import annotations

import copy
import threading
import typing as t

from ansible.plugins.loader import PluginLoader

_load_lock = threading.RLock()
_lookups: dict[tuple[t.Any, ...], t.Any] = {}
_remembering = False

# ansible-core's own methods, called through these names (tests replace them).
_original_load: t.Callable[..., t.Any] = PluginLoader._load_module_source
_original_find: t.Callable[..., t.Any] = PluginLoader.find_plugin_with_context
_original_clear: t.Callable[..., t.Any] = PluginLoader._clear_caches
_original_all: t.Callable[..., t.Any] = PluginLoader.all


def _load_module_source(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
    with _load_lock:
        return _original_load(self, *args, **kwargs)


def _find_plugin_with_context(self: t.Any, name: str, mod_type: str = "",
                              ignore_deprecated: bool = False, check_aliases: bool = False,
                              collection_list: t.Any = None) -> t.Any:
    if not _remembering:
        return _original_find(self, name, mod_type, ignore_deprecated, check_aliases, collection_list)
    key = (id(self), self.type, self.package, name, mod_type, ignore_deprecated, check_aliases,
           tuple(collection_list) if collection_list else None)
    found = _lookups.get(key)
    if found is None:
        found = _lookups[key] = _original_find(self, name, mod_type, ignore_deprecated,
                                               check_aliases, collection_list)
    return copy.copy(found)


def _all(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
    if not _remembering or args or kwargs != {"path_only": True}:
        return _original_all(self, *args, **kwargs)
    key = (id(self), "all-paths")
    paths = _lookups.get(key)
    if paths is None:
        paths = _lookups[key] = tuple(_original_all(self, path_only=True))
    return iter(paths)


def _clear_caches(self: t.Any) -> None:
    _lookups.clear()
    _original_clear(self)


def serialize_loading() -> None:
    PluginLoader._load_module_source = _load_module_source


def remember_lookups() -> t.Callable[[], None]:
    """Keep plugin lookups until the returned function is called (the strategy's end)."""
    global _remembering
    PluginLoader.find_plugin_with_context = _find_plugin_with_context
    PluginLoader.all = _all
    PluginLoader._clear_caches = _clear_caches
    _remembering = True

    def forget() -> None:
        global _remembering
        _remembering = False
        _lookups.clear()
    return forget
