"""The nspawn connection as Ansible makes it, on either path, for tests that need its options.

Ansible loads the plugin file (which registers its DOCUMENTATION) and hands the connection the
inventory's variables; under nspawn_linear the strategy builds transport/connection.py's class
under the same plugin name. Nothing here connects anywhere.
"""
from __future__ import annotations

import types
import typing as t

import pytest
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader, init_plugin_loader
from ansible.utils.collection_loader import AnsibleCollectionConfig

from ansible_nspawn_fast.plugins import CONNECTION_DIR


@pytest.fixture(scope="session")
def plugin_loader() -> t.Any:
    """Ansible's connection loader, set up as ansible-playbook sets it up, with our plugin dir."""
    if AnsibleCollectionConfig.collection_finder is None:
        init_plugin_loader()  # ansible.builtin.ssh is found through the collection loader
    connection_loader.add_directory(str(CONNECTION_DIR))
    return connection_loader


@pytest.fixture
def nspawn_connection(plugin_loader: t.Any) -> t.Callable[..., t.Any]:
    """make(variables, linear=False): the `nspawn` connection with these inventory variables,
    the plugin path's class or (linear) nspawn_linear's."""

    def make(variables: dict[str, t.Any], linear: bool = False) -> t.Any:
        play_context = PlayContext()
        conn = plugin_loader.get("nspawn", play_context, "/dev/null")
        assert conn is not None, "the nspawn plugin did not load"
        if linear:
            from ansible_nspawn_fast.transport.connection import Connection as LinearConnection
            plugin, conn = conn, object.__new__(LinearConnection)
            # What the strategy does: our class, under the plugin's own name and options.
            for attr in ("_original_path", "_load_name", "_redirected_names", "ansible_aliases",
                         "ansible_name"):
                setattr(conn, attr, getattr(plugin, attr, None))
            LinearConnection.__init__(conn, play_context)
        conn.set_options(var_options=dict(variables))
        if linear:  # ansible_mitogen's action plugin hands it the task's variables, and itself
            conn.on_action_run(task_vars=dict(variables), delegate_to_hostname=None, loader_basedir=None)
            conn._action = types.SimpleNamespace(_mitogen_discovering_interpreter=False)
        return conn

    return make
