"""The ssh arguments of the host connection under nspawn_linear (mitogen's `ssh` method).

- The variables `ansible_ssh_args`, `ansible_ssh_common_args` and `ansible_ssh_extra_args`
  as ansible_mitogen reads them; for the last two, when unset, the ssh plugin's own setting
  (ansible.cfg `[ssh_connection]`, environment), as the plugin path's ssh hop gets it (a
  ProxyJump in ansible.cfg reaches the host on both paths). `ssh_args`' default is not taken:
  it asks for compression (mitogen_ssh_compression decides that here) and a ControlMaster.
- Never a shared ControlMaster (`ControlPath=none`, ahead of the user's arguments: ssh takes
  the first value of an option). The host's interpreters must end with the connection when
  the controller dies: a multiplexed session outlives its client (the master keeps the
  channel and the remote process open); in a trial with a shared master, a killed run left
  its interpreters behind.
"""
from __future__ import annotations

import functools
import typing as t

import ansible.utils.shlex
from ansible import constants as C
from ansible.plugins.loader import connection_loader

OWN_CONNECTION = ("-o", "ControlPath=none")


@functools.cache
def _ssh_definitions_loaded() -> bool:
    # Loaded by its short name, the plugin's option definitions are known as "ssh".
    return connection_loader.get("ssh", class_only=True) is not None


def ssh_plugin_setting(name: str, variables: dict[str, t.Any]) -> t.Any:
    """ansible-core's ssh plugin's value of `name` for these variables (its variables,
    ansible.cfg, environment, default)."""
    _ssh_definitions_loaded()
    return C.config.get_config_value(name, plugin_type="connection", plugin_name="ssh", variables=variables)


def host_ssh_args(option: t.Callable[[str], t.Any], variables: dict[str, t.Any]) -> list[str]:
    """The argument list for mitogen's ssh, from the nspawn plugin's options."""
    words = list(OWN_CONNECTION)
    for name in ("ssh_args", "ssh_common_args", "ssh_extra_args"):
        value = option(name)
        if value is None and name != "ssh_args":
            value = ssh_plugin_setting(name, variables)
        words += ansible.utils.shlex.shlex_split(value or "")
    return [str(word) for word in words]
