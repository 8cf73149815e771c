"""planner_cache: the multiplexer's answers kept per process while a strategy runs."""
from __future__ import annotations

import types

import ansible_mitogen.planner
import pytest

from ansible_nspawn_fast.transport import planner_cache


@pytest.fixture
def asked(monkeypatch):
    """Fakes of ansible_mitogen's two round trips to the multiplexer, counting the calls."""
    calls = {"scan": 0, "push": []}

    def scan(self):
        calls["scan"] += 1
        self._module_map = {"builtin": ["ansible.module_utils.basic"], "custom": []}
        return self._module_map

    def push(invocation, planner, context):
        calls["push"].append(context.context_id)

    # ansible_mitogen's own functions come back at teardown, whatever forget() put there
    monkeypatch.setattr(ansible_mitogen.planner, "_propagate_deps", ansible_mitogen.planner._propagate_deps)
    monkeypatch.setattr(ansible_mitogen.planner.NewStylePlanner, "get_module_map",
                        ansible_mitogen.planner.NewStylePlanner.get_module_map)
    monkeypatch.setattr(planner_cache, "_original_module_map", scan)
    monkeypatch.setattr(planner_cache, "_original_propagate", push)
    forget = planner_cache.remember_answers()
    yield calls
    forget()


def planner(module="ping", search_path=("/lib",)):
    inv = types.SimpleNamespace(module_name=module, _overridden_sources={}, _extra_sys_paths=set())
    p = ansible_mitogen.planner.NewStylePlanner.__new__(ansible_mitogen.planner.NewStylePlanner)
    p._inv, p._module_map = inv, None
    p.get_search_path = lambda: search_path
    p.get_push_files = lambda: ["/modules/" + module + ".py"]
    return p


def test_a_module_is_scanned_once_per_name_and_search_path(asked):
    first = planner().get_module_map()
    again = planner().get_module_map()
    assert asked["scan"] == 1 and first == again and first is not again
    again["builtin"].append("changed by one caller")
    assert planner().get_module_map()["builtin"] == ["ansible.module_utils.basic"]
    planner(search_path=("/other",)).get_module_map()
    planner(module="copy").get_module_map()
    assert asked["scan"] == 3


def test_files_are_pushed_once_per_context(asked):
    ctx1, ctx2 = types.SimpleNamespace(context_id=7), types.SimpleNamespace(context_id=8)
    for ctx in (ctx1, ctx1, ctx2, ctx1):
        p = planner()
        ansible_mitogen.planner._propagate_deps(p._inv, p, ctx)
    assert asked["push"] == [7, 8]
    p = planner(module="copy")  # other files: pushed again
    ansible_mitogen.planner._propagate_deps(p._inv, p, ctx1)
    p = planner()
    p._inv._overridden_sources = {"/modules/ping.py": "changed source"}
    ansible_mitogen.planner._propagate_deps(p._inv, p, ctx1)
    assert asked["push"] == [7, 8, 7, 7]


def test_forgetting_restores_ansible_mitogens_own_functions():
    forget = planner_cache.remember_answers()
    assert ansible_mitogen.planner._propagate_deps is planner_cache._propagate_deps
    forget()
    assert ansible_mitogen.planner._propagate_deps is planner_cache._original_propagate
    assert ansible_mitogen.planner.NewStylePlanner.get_module_map is planner_cache._original_module_map
    assert not planner_cache._scans and not planner_cache._pushed
