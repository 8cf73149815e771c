"""How a host command line reaches the host: over ansible-core's ssh plugin, or locally.

The SSH hop is ansible-core's own `ssh` connection plugin, configured from the
same variables as a stock ssh host (ansible_host, ansible_user, ControlPersist,
ProxyJump in ansible_ssh_common_args, passwords, host key checking, retries).
This module only adds streaming: put/fetch hand the file to ssh's stdin/stdout
instead of reading it into memory.
"""
from __future__ import annotations

import os
import subprocess
from typing import IO, Any, Protocol


class HostShell(Protocol):
    def run(self, command: str, in_data: bytes | None = None,
            sudoable: bool = True) -> tuple[int, bytes, bytes]:
        """Run a host command line; become prompts are handled as by the stock plugin."""

    def stream(self, command: str, stdin: IO[bytes] | None,
               stdout: IO[bytes] | None) -> tuple[int, bytes]:
        """Run a host command line with stdin/stdout bound to files; returns (rc, stderr)."""


def _stream_argv(argv: list[Any], stdin: IO[bytes] | None, stdout: IO[bytes] | None,
                 env: dict[str, str] | None = None) -> tuple[int, bytes]:
    proc = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                            stdout=stdout if stdout is not None else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    _, stderr = proc.communicate()
    return proc.returncode, stderr


class SshHost:
    """A host reached through an `ansible.builtin.ssh` connection instance."""

    def __init__(self, ssh_connection: Any) -> None:
        self.ssh = ssh_connection

    def run(self, command: str, in_data: bytes | None = None,
            sudoable: bool = True) -> tuple[int, bytes, bytes]:
        return self.ssh.exec_command(command, in_data=in_data, sudoable=sudoable)

    def stream(self, command: str, stdin: IO[bytes] | None,
               stdout: IO[bytes] | None) -> tuple[int, bytes]:
        if self.ssh.get_option("password"):
            # The ssh plugin feeds passwords through sshpass/askpass plumbing of
            # its own; go through it and accept buffering in memory for this case.
            data = stdin.read() if stdin is not None else None
            rc, out, err = self.ssh.exec_command(command, in_data=data, sudoable=False)
            if stdout is not None:
                stdout.write(out)
            return rc, err
        self.ssh.host = self.ssh.get_option("host")
        argv = self.ssh._build_command(self.ssh.get_option("ssh_executable"), "ssh",
                                       self.ssh.host, command)
        return _stream_argv(argv, stdin, stdout)


class LocalHost:
    """The controller itself runs the containers: no SSH hop."""

    def __init__(self, local_connection: Any) -> None:
        self.local = local_connection

    def run(self, command: str, in_data: bytes | None = None,
            sudoable: bool = True) -> tuple[int, bytes, bytes]:
        return self.local.exec_command(command, in_data=in_data, sudoable=sudoable)

    def stream(self, command: str, stdin: IO[bytes] | None,
               stdout: IO[bytes] | None) -> tuple[int, bytes]:
        return _stream_argv(["/bin/sh", "-c", command], stdin, stdout, env=dict(os.environ))
