"""Where an operator command runs: `[USER@]HOST[:PORT]:` over the user's own ssh, or here.

`ssh` is run as the user would run it, so ~/.ssh/config applies (ProxyJump, keys, ports,
ControlMaster); `--ssh-args` adds options (split like a shell would). IPv6 addresses go in
brackets (`[2001:db8::1]:web`). Without `HOST:` the machine is on this machine.
"""
from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Sequence

from .errors import OpsError

# USER@ and :PORT optional; a bracketed IPv6 address or a host without ':' or '@'; then ':' and
# the machine (or nothing, for `chroots HOST:`). Machine names never contain ':'.
_SPEC_RE = re.compile(r"(?:(?P<user>[^@:\s\[\]]+)@)?(?:\[(?P<ipv6>[0-9A-Fa-f:.%]+)\]|(?P<host>[^@:\s\[\]/]+))"
                      r"(?::(?P<port>[0-9]+))?:(?P<name>[^:]*)")


@dataclasses.dataclass(frozen=True)
class Place:
    """A host reached over ssh, or this machine (host None)."""

    host: str | None = None
    user: str | None = None
    port: int | None = None
    ssh_args: tuple[str, ...] = ()

    @property
    def local(self) -> bool:
        return self.host is None

    def describe(self) -> str:
        """'host db1' or 'this machine', for messages."""
        return "this machine" if self.host is None else f"host {self.host}"

    def argv(self, argv: Sequence[str], tty: bool = False) -> list[str]:
        """The local argv that runs `argv` there (over ssh: one shell-quoted command line)."""
        if self.host is None:
            return list(argv)
        dest = f"{self.user}@{self.host}" if self.user else self.host
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", "-t" if tty else "-T", *self.ssh_args, *port, "--", dest, shlex.join(argv)]


def parse_place(spec: str, ssh_args: str = "") -> tuple[Place, str]:
    """`[USER@]HOST[:PORT]:NAME` -> (Place over ssh, NAME); a plain `NAME` -> (this machine, NAME).

    NAME may be empty (`HOST:`). A host or user that ssh could take for an option is refused.
    """
    try:
        extra = tuple(shlex.split(ssh_args))
    except ValueError as e:
        raise OpsError(f"--ssh-args {ssh_args!r} cannot be split like a shell would: {e}") from None
    if ":" not in spec:
        return Place(ssh_args=extra), spec
    m = _SPEC_RE.fullmatch(spec)
    if m is None:
        raise OpsError(f"{spec!r} is not [USER@]HOST[:PORT]:NAME (an IPv6 address goes in brackets)")
    host = m["ipv6"] or m["host"]
    user, port = m["user"], m["port"]
    if host.startswith("-") or (user or "").startswith("-"):
        raise OpsError(f"{spec!r}: a host or user may not start with '-'")
    if port is not None and not 0 < int(port) < 65536:
        raise OpsError(f"{spec!r}: port {port} is out of range")
    return Place(host=host, user=user, port=int(port) if port else None, ssh_args=extra), m["name"]
