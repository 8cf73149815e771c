"""Process identity from /proc: is this PID still the nspawn we started?

PIDs are reused, so a recorded PID counts as ours only if its start time matches
and its command line is systemd-nspawn booting a root inside our lab dir.
"""
from __future__ import annotations

import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    return stat[stat.rfind(")") + 2:].split()


def alive(pid: int) -> bool:
    """True for a running process (a zombie has already exited)."""
    f = _stat_fields(pid)
    return f is not None and f[0] not in ("Z", "X")


def starttime(pid: int) -> int | None:
    f = _stat_fields(pid)
    return int(f[19]) if f else None


def ppid(pid: int) -> int | None:
    f = _stat_fields(pid)
    return int(f[1]) if f else None


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def nspawn_root(pid: int) -> str | None:
    """The -D directory of a systemd-nspawn process, or None if it is not one."""
    argv = cmdline(pid)
    if not argv or not argv[0].endswith("systemd-nspawn"):
        return None
    for i, a in enumerate(argv):
        if a in ("-D", "--directory") and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--directory="):
            return a.split("=", 1)[1]
    return None


def is_ours(pid: int, root: Path, start: int | None = None) -> bool:
    """The recorded nspawn PID still runs our host root (and, if known, started then)."""
    if not alive(pid) or nspawn_root(pid) != str(root):
        return False
    return start is None or starttime(pid) == start


def nspawns_under(lab_dir: Path) -> list[int]:
    """Every live systemd-nspawn whose root is inside lab_dir (state file or not)."""
    prefix = str(lab_dir).rstrip("/") + "/"
    return [p for p in all_pids()
            if alive(p) and (nspawn_root(p) or "").startswith(prefix)]


def children(pid: int) -> list[int]:
    return [p for p in all_pids() if ppid(p) == pid]


def container_leader(nspawn_pid: int) -> int | None:
    """The container's init: the child of nspawn that runs systemd in a new PID namespace."""
    try:
        own_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    for c in children(nspawn_pid):
        try:
            if os.readlink(f"/proc/{c}/ns/pid") != own_ns and comm(c) == "systemd":
                return c
        except OSError:
            continue
    return None
