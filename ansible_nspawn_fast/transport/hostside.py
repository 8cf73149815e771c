"""Runs in the host's persistent interpreter (imported there by mitogen).

No Ansible here. The leader of each container is cached in this process; a
cached leader is reused only while /proc/PID/stat still shows the start time
it had, so a restarted container (new leader) or a reused PID is noticed
before a task runs, without starting a process. A miss runs the helper's
`lookup` verb once (machinectl show, wait until the container is booted).
"""
from __future__ import annotations

import os
import subprocess

from ansible_nspawn_fast import enter

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
