"""ansible_mitogen's per-module questions to the multiplexer, asked once per process.

Before every module call to a target, ansible_mitogen's planner asks the multiplexer two
things over its socket:

- which module_utils the module imports (ModuleDepService.scan). The multiplexer keeps each
  answer for its lifetime, by module name and search path, and serves every caller behind
  one lock;
- to make sure the module's file (and custom module_utils) reached the target
  (PushFileService.propagate_paths_and_modules), which does nothing after the first time
  for a context.

A forked worker forgets the answers with its task; the task threads of inprocess.py share
one process. While a strategy runs, the first answer is kept here: the scan by the
multiplexer's own key, the push by (context, files, overridden sources, sys paths) - a new
interpreter is a new context. That is two round trips less per task and per loop item.
"""
from __future__ import annotations

import typing as t

import ansible_mitogen.planner

_scans: dict[tuple[t.Any, ...], dict[str, list[t.Any]]] = {}
_pushed: set[tuple[t.Any, ...]] = set()

# ansible_mitogen's own functions, called through these names.
_original_module_map: t.Callable[..., t.Any] = ansible_mitogen.planner.NewStylePlanner.get_module_map
_original_propagate: t.Callable[..., t.Any] = ansible_mitogen.planner._propagate_deps


def _copy(module_map: dict[str, list[t.Any]]) -> dict[str, list[t.Any]]:
    return {kind: list(entries) for kind, entries in module_map.items()}


def _get_module_map(self: t.Any) -> dict[str, list[t.Any]]:
    if self._module_map is None:
        key = (self._inv.module_name, self.get_search_path())
        if key not in _scans:
            _scans[key] = _copy(_original_module_map(self))
        self._module_map = _copy(_scans[key])
    return self._module_map


def _propagate_deps(invocation: t.Any, planner: t.Any, context: t.Any) -> None:
    key = (context.context_id, tuple(planner.get_push_files()),
           tuple(sorted(invocation._overridden_sources.items())),
           tuple(sorted(invocation._extra_sys_paths)))
    if key in _pushed:
        return
    _original_propagate(invocation, planner, context)
    _pushed.add(key)


def remember_answers() -> t.Callable[[], None]:
    """Keep the multiplexer's answers until the returned function is called."""
    ansible_mitogen.planner.NewStylePlanner.get_module_map = _get_module_map
    ansible_mitogen.planner._propagate_deps = _propagate_deps

    def forget() -> None:
        ansible_mitogen.planner.NewStylePlanner.get_module_map = _original_module_map
        ansible_mitogen.planner._propagate_deps = _original_propagate
        _scans.clear()
        _pushed.clear()
    return forget
