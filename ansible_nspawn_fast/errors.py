"""The runtime's own errors, each naming the host, the container and the next step.

The Ansible adapter translates them in one place (connection.py): an
`Unreachable` becomes AnsibleConnectionFailure (the host is UNREACHABLE), any
other `NspawnError` becomes AnsibleError (the task FAILED).
"""
from __future__ import annotations


class NspawnError(Exception):
    """Base class: message names what failed, where, and what to do next."""


class ConfigError(NspawnError):
    """The inventory or options are invalid; nothing was run."""


class Unreachable(NspawnError):
    """The container cannot be entered: unknown, stopped, host tools missing, SSH down."""


class ContainerRestarted(NspawnError):
    """The container's leader changed while a task was using it."""


class TransferError(NspawnError):
    """A put_file/fetch_file did not complete; nothing partial was left behind."""


class RemoteFileNotFound(TransferError):
    """The file to fetch does not exist in the container."""
