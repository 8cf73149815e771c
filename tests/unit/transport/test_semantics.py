"""Which tasks take the per-command path: ansible-core's own become plugins, as a task sets them."""
from __future__ import annotations

import types
import typing as t

import pytest
from ansible.plugins.loader import become_loader, init_plugin_loader
from ansible.utils.collection_loader import AnsibleCollectionConfig

from ansible_nspawn_fast.transport import semantics


def become(method: str, **variables: t.Any) -> t.Any:
    """A become plugin with the task's variables applied, as TaskExecutor applies them."""
    if AnsibleCollectionConfig.collection_finder is None:
        init_plugin_loader()
    plugin = become_loader.get(method)
    plugin.set_options(var_options=variables)
    return plugin


@pytest.mark.parametrize(("method", "variables"), [
    ("sudo", {"ansible_become_user": "app"}),                                           # default flags
    ("sudo", {"ansible_become_user": "app", "ansible_become_flags": "-H -S -n -E"}),
    ("sudo", {"ansible_become_user": "app", "ansible_become_flags": "--set-home --stdin --non-interactive"}),
    ("su", {"ansible_become_user": "app"}),
    ("sudo", {"ansible_become_user": "root", "ansible_become_flags": "--intermediate-user x"}),  # no hop
    ("su", {"ansible_become_flags": "-l"}),                                              # root: no hop
])
def test_what_mitogen_does_as_core_does_keeps_the_interpreter(method, variables):
    assert semantics.become_reason(become(method, **variables)) is None


@pytest.mark.parametrize(("method", "variables", "says"), [
    ("sudo", {"ansible_become_user": "app", "ansible_become_flags": "--intermediate-user x"},
     "Mitogen's sudo refuses them"),
    ("sudo", {"ansible_become_user": "app", "ansible_become_flags": "-H -S -n -k"}, "Mitogen's sudo refuses"),
    ("sudo", {"ansible_become_user": "app", "ansible_sudo_chdir": "/srv"}, "sudo_chdir"),
    ("su", {"ansible_become_user": "app", "ansible_become_flags": "-l"}, "Mitogen's su passes none on"),
    ("su", {"ansible_become_user": "app", "ansible_su_prompt_l10n": ["Passwort"]}, "prompts of one's own"),
    ("runas", {"ansible_become_user": "app"}, "no implementation"),
])
def test_what_mitogen_would_do_otherwise_takes_the_per_command_path(method, variables, says):
    assert says in (semantics.become_reason(become(method, **variables)) or "")


def test_async_tasks_take_the_per_command_path_and_others_do_not():
    assert "async" in semantics.plugin_path_reason(types.SimpleNamespace(async_val=10), None)
    assert semantics.plugin_path_reason(types.SimpleNamespace(async_val=0), None) is None
    assert semantics.plugin_path_reason(None, become("sudo", ansible_become_user="app")) is None


def test_ansible_core_stands_in_for_mitogens_local_connection_with_its_settings():
    """An async task on mitogen_local gets ansible-core's `local` plugin, set up as TaskExecutor
    set up mitogen_local (its options, its shell: remote_tmp, async_dir); the hook goes with
    the strategy."""
    import ansible_mitogen.connection
    from ansible.playbook.play_context import PlayContext
    from ansible_mitogen.plugins.connection import mitogen_local
    from ansible.plugins.connection.local import Connection as CoreLocal

    if AnsibleCollectionConfig.collection_finder is None:
        init_plugin_loader()
    undo = semantics.install()
    try:
        connection = mitogen_local.Connection(PlayContext(), None)
        connection.set_options(var_options={"ansible_pipelining": True})
        assert semantics._takes_core_plugins(connection)
        core = semantics._core_connection(connection)
        assert isinstance(core, CoreLocal) and core._shell is connection._shell
        assert core.get_option("pipelining") is True
    finally:
        undo()
    assert "set_options" not in vars(ansible_mitogen.connection.Connection)
