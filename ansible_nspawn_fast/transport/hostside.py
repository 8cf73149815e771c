"""Runs in the host's persistent interpreter (imported there by mitogen).

No Ansible here. The leader of each container is cached in this process; a
cached leader is reused only while /proc/PID/stat still shows the start time
it had, so a restarted container (new leader) or a reused PID is noticed
before a task runs, without starting a process. A miss runs the helper's
`lookup` verb once (machinectl show, wait until the container is booted).

HostService answers on a thread pool, not on the interpreter's main thread
(where mitogen runs plain calls one at a time): the containers of one host are
looked up and their interpreters started in parallel.
"""
from __future__ import annotations

import os
import subprocess

import mitogen.core
import mitogen.parent
import mitogen.service

from ansible_nspawn_fast import enter

# Threads of the host's service pool: how many containers of one host start at once.
POOL_SIZE = 16

# name -> enter.Leader fields as a plain tuple (mitogen only unpickles plain types)
_leaders: dict[str, tuple] = {}


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])


def leader(name: str, boot_timeout: int, sudo: bool = False) -> dict:
    """{"leader": enter.Leader fields, "cached": bool} or {"rc", "stdout", "stderr"} on failure."""
    cached = _leaders.get(name)
    if cached is not None:
        if _start_time(cached[0]) == cached[1]:
            return {"leader": cached, "cached": True}
        del _leaders[name]
    argv = ["sh", "-c", enter.HOST_HELPER, "nspawn-fast", "lookup", name, str(boot_timeout)]
    if sudo:
        argv = ["sudo", "-n", "--", *argv]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True)
    if proc.returncode != 0:
        return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
    found = tuple(enter.parse_leader(proc.stdout))
    _leaders[name] = found
    return {"leader": found, "cached": False}


@mitogen.core.takes_econtext
def prepare(econtext: mitogen.core.ExternalContext) -> None:
    """Once per host interpreter, on its main thread, before HostService is used."""
    global _econtext
    _econtext = econtext
    # Make this interpreter a parent able to start children, then size its service pool
    # (created with 2 threads on first use otherwise); both are no-ops the second time.
    mitogen.parent.upgrade_router(econtext)
    mitogen.service.get_or_create_pool(size=POOL_SIZE, router=econtext.router)


_econtext: mitogen.core.ExternalContext | None = None


class HostService(mitogen.service.Service):
    """Leader lookups and container interpreter starts, on the pool's threads."""

    @mitogen.service.expose(mitogen.service.AllowParents())
    def leader(self, name: str, boot_timeout: int, sudo: bool) -> dict:
        return leader(name, boot_timeout, sudo)

    @mitogen.service.expose(mitogen.service.AllowParents())
    def connect(self, name: str | None, connection_method: str, kwargs: dict) -> dict:
        """What mitogen's Router.proxy_connect asks of the intermediary, off the main thread."""
        return mitogen.parent._proxy_connect(name, connection_method, kwargs, econtext=_econtext)


def has_program(root: str, program: str, search_path: str) -> bool:
    """Whether `program` (absolute, or a name looked up in `search_path`) exists under `root`.

    `root` is /proc/LEADER/root of a running container or a tree's directory: a lookup
    through it needs no process inside, so it also works where python is missing.
    """
    if program.startswith("/"):
        candidates = [program]
    else:
        candidates = [f"{d}/{program}" for d in search_path.split(":") if d.startswith("/")]
    return any(os.access(root + c, os.X_OK) for c in candidates)


def forget(name: str) -> None:
    _leaders.pop(name, None)
