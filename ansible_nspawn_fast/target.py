"""The one place where connection options become a connection spec.

`target_from_options` reads the plugin's options (declared in the connection
plugin's DOCUMENTATION) and returns a frozen `NspawnTarget` of plain values,
validated before anything runs. Everything downstream (command building, the
host transport, the strategy's interpreter spec) takes this object, never
`get_option` or the PlayContext.
"""
from __future__ import annotations

import dataclasses
import posixpath
import shlex
from collections.abc import Callable
from typing import Any

from .errors import ConfigError
from .names import is_valid_machine_name
from .nspawn_args import check_nspawn_args


@dataclasses.dataclass(frozen=True)
class NspawnTarget:
    """Where commands run: a running machine or a directory tree, on a host."""

    host: str
    container: str | None = None
    directory: str | None = None
    nspawn_args: tuple[str, ...] = ()
    local: bool = False
    host_sudo: bool = False
    boot_timeout: int = 90
    host_helper: str | None = None  # the helper installed on the host, else sent with each command

    @property
    def is_directory(self) -> bool:
        return self.directory is not None

    @property
    def place(self) -> str:
        """'host 10.0.0.5', or 'the controller' (ansible_nspawn_local)."""
        return "the controller" if self.local else f"host {self.host}"

    @property
    def inside(self) -> str:
        """'container web', or 'directory tree /srv/tree'."""
        return f"directory tree {self.directory}" if self.is_directory else f"container {self.container}"

    @property
    def where(self) -> str:
        """'container web on host 10.0.0.5' — used in every message."""
        return f"{self.inside} on {self.place}"


def _split_args(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(shlex.split(value))
    return tuple(str(v) for v in value)


def target_from_options(get_option: Callable[[str], Any]) -> NspawnTarget:
    """Build and validate the spec from the connection plugin's options."""
    host = str(get_option("host") or "localhost")
    local = bool(get_option("nspawn_local"))
    directory = get_option("nspawn_directory") or None
    container = None if directory else get_option("nspawn_container")
    nspawn_args = _split_args(get_option("nspawn_args"))
    boot_timeout = int(get_option("nspawn_boot_timeout"))
    target = NspawnTarget(host=host, container=container, directory=directory,
                          nspawn_args=nspawn_args, local=local,
                          host_sudo=bool(get_option("nspawn_host_sudo")),
                          boot_timeout=boot_timeout,
                          host_helper=get_option("nspawn_host_helper") or None)
    validate(target)
    return target


def validate(target: NspawnTarget) -> None:
    where = target.place
    if target.directory is not None:
        d = target.directory
        if not isinstance(d, str) or not posixpath.isabs(d) or "\0" in d or "\n" in d:
            raise ConfigError(f"ansible_nspawn_directory {d!r} for {where} must be an absolute path "
                              "to the tree's root directory")
        try:
            check_nspawn_args(target.nspawn_args)
        except ConfigError as err:
            raise ConfigError(f"ansible_nspawn_args for directory tree {d} on {where}: {err}") from None
    elif not is_valid_machine_name(target.container):
        raise ConfigError(f"invalid container name {target.container!r} for {where}: machine names "
                          "are hostnames (letters, digits, '-', dots between labels, at most 64 "
                          "characters); set ansible_nspawn_container to the name `machinectl list` "
                          "shows")
    helper = target.host_helper
    if helper is not None and (not isinstance(helper, str) or not posixpath.isabs(helper)
                               or any(c.isspace() or c == "\0" for c in helper)):
        raise ConfigError(f"ansible_nspawn_host_helper {helper!r} for {target.where} must be the "
                          "absolute path of the helper installed on the host")
    if target.boot_timeout < 0:
        raise ConfigError(f"ansible_nspawn_boot_timeout for {target.where} must be >= 0")
