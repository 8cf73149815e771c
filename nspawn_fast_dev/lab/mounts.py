"""Overlay mounts and their removal, driven by /proc/self/mountinfo.

`down` finds what to unmount from mountinfo rather than from the state file, so it
also cleans up after an `up` that died before writing its state.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from .runner import LabError, run


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [_unescape(line.split()[4]) for line in f]


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first (the order to unmount them)."""
    p = str(path.resolve() if path.exists() else path).rstrip("/")
    found = {m for m in mount_points() if m == p or m.startswith(p + "/")}
    return sorted(found, key=lambda m: (m.count("/"), m), reverse=True)


def is_mounted(path: Path) -> bool:
    return str(path) in set(mount_points())


def mount_overlay(lower: Path, upper: Path, work: Path, target: Path) -> None:
    """Mount a writable overlay of the read-only image at `target`.

    upper/work must be on a real filesystem (an overlay upper cannot be an overlay).
    """
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    if is_mounted(target):
        return
    run(["mount", "-t", "overlay", "overlay",
         "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", str(target)],
        what=f"mounting the overlay at {target}",
        hint="the kernel needs overlayfs (modprobe overlay) and upper/work on a non-overlay fs")


def umount_all(path: Path, attempts: int = 10) -> None:
    """Unmount everything under `path`, deepest first; retry while busy."""
    for _ in range(attempts):
        left = mounts_under(path)
        if not left:
            return
        for m in left:
            subprocess.run(["umount", m], capture_output=True, check=False)
        if mounts_under(path):
            time.sleep(0.5)
    left = mounts_under(path)
    if left:
        raise LabError(f"{len(left)} mounts under {path} stay busy, e.g. {left[0]}",
                       "find what uses them (fuser -vm PATH), stop it, then run "
                       "`nspawn-fast lab down` again")
