"""Plugin lookups kept while a strategy runs, and plugin loading from several threads."""
from __future__ import annotations

import threading
import typing as t

from ansible.plugins.loader import PluginLoader, action_loader, module_loader

from ansible_nspawn_fast.transport import plugin_cache


def counting(monkeypatch: t.Any) -> list[str]:
    """Names that reached ansible-core's own lookup (under the cache)."""
    calls: list[str] = []
    original = plugin_cache._original_find

    def spy(self: t.Any, name: str, *args: t.Any) -> t.Any:
        calls.append(name)
        return original(self, name, *args)

    monkeypatch.setattr(plugin_cache, "_original_find", spy)
    return calls


def test_lookups_are_kept_while_remembering_and_handed_out_as_copies(plugin_loader, monkeypatch):
    calls = counting(monkeypatch)
    forget = plugin_cache.remember_lookups()
    try:
        first = module_loader.find_plugin_with_context("ansible.builtin.command")
        again = module_loader.find_plugin_with_context("ansible.builtin.command")
        missing = action_loader.find_plugin_with_context("ansible.builtin.lineinfile")
        missing_again = action_loader.find_plugin_with_context("ansible.builtin.lineinfile")
    finally:
        forget()
    assert first.resolved and again.resolved and again is not first
    assert again.plugin_resolved_path == first.plugin_resolved_path
    assert not missing.resolved and not missing_again.resolved
    assert calls == ["ansible.builtin.command", "ansible.builtin.lineinfile"]
    # Not remembering any more: every lookup is ansible-core's.
    module_loader.find_plugin_with_context("ansible.builtin.command")
    assert calls[-1] == "ansible.builtin.command" and len(calls) == 3


def test_a_plugin_directory_added_forgets_every_lookup(plugin_loader, monkeypatch, tmp_path):
    calls = counting(monkeypatch)
    forget = plugin_cache.remember_lookups()
    try:
        action_loader.find_plugin_with_context("my_action")
        (tmp_path / "my_action.py").write_text("from ansible.plugins.action import ActionBase\n"
                                               "class ActionModule(ActionBase):\n    pass\n")
        action_loader.add_directory(str(tmp_path))  # as a role's action_plugins/ is added
        found = action_loader.find_plugin_with_context("my_action")
    finally:
        forget()
    assert calls == ["my_action", "my_action"]
    assert found.resolved


def test_plugin_files_load_one_at_a_time(monkeypatch, tmp_path):
    plugin_cache.serialize_loading()
    inside, most = [0], [0]
    lock = threading.Lock()

    def slow_load(self: t.Any, *args: t.Any, **kwargs: t.Any) -> None:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        threading.Event().wait(0.05)
        with lock:
            inside[0] -= 1

    monkeypatch.setattr(plugin_cache, "_original_load", slow_load)
    wrapper = PluginLoader._load_module_source
    threads = [threading.Thread(target=wrapper, args=(None,), kwargs={"python_module_name": "x", "path": "y"})
               for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert most[0] == 1


def test_the_list_of_plugin_files_is_kept_until_a_directory_is_added(plugin_loader, monkeypatch, tmp_path):
    from ansible.plugins.loader import connection_loader
    listed: list[int] = []
    original = plugin_cache._original_all

    def spy(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        listed.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(plugin_cache, "_original_all", spy)
    forget = plugin_cache.remember_lookups()
    try:
        first = list(connection_loader.all(path_only=True))
        again = list(connection_loader.all(path_only=True))
        (tmp_path / "myconn.py").write_text("")
        connection_loader.add_directory(str(tmp_path))
        after = list(connection_loader.all(path_only=True))
    finally:
        forget()
    assert first == again and any(p.endswith("/ssh.py") for p in first)
    assert len(listed) == 2  # the second list came from the cache; the added directory cleared it
    assert str(tmp_path / "myconn.py") in after
