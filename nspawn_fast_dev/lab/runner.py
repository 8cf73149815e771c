"""Subprocess helpers, progress output and the lab's one error type.

Expected failures raise LabError (what failed + what to do); the CLI prints it
without a traceback.  Progress goes to stderr so stdout stays parseable.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

_T0 = time.monotonic()


class LabError(Exception):
    """An expected failure: `str()` says what failed, `hint` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def progress(msg: str) -> None:
    """One progress line on stderr, prefixed with seconds since start."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    print(f"nspawn-fast: warning: {msg}", file=sys.stderr, flush=True)


# Tool -> Debian package, so a missing tool names what to apt-get install.
TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "nsenter": "util-linux",
    "mount": "mount",
    "umount": "mount",
    "chroot": "coreutils",
    "setsid": "util-linux",
}


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it mounts overlays and boots containers)",
                       "run as root, e.g. `sudo nspawn-fast lab ...`")


def require_tools(names: Sequence[str]) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    elsewhere = [d for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
                 if any(os.access(f"{d}/{n}", os.X_OK) for n in missing)]
    if missing and elsewhere:
        raise LabError(f"tools not on PATH: {', '.join(missing)}",
                       f"add {':'.join(elsewhere)} to PATH (root's PATH normally has it)")
    if missing:
        pkgs = sorted({TOOLS.get(n, n) for n in missing})
        raise LabError(f"missing tools: {', '.join(missing)}",
                       f"install them: apt-get install {' '.join(pkgs)}")


def require_space(path: Path, need_mb: int, what: str) -> None:
    """Fail early with a clear message instead of half-way through with ENOSPC."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    free_mb = shutil.disk_usage(probe).free // 2**20
    if free_mb < need_mb:
        raise LabError(f"not enough disk space for {what} in {probe}: {free_mb} MB free, "
                       f"about {need_mb} MB needed",
                       "free some space, or point the lab elsewhere "
                       "(--dir / NSPAWN_FAST_LAB_DIR, NSPAWN_FAST_CACHE_DIR)")


def os_error(e: OSError, doing: str) -> LabError:
    """Translate an OSError into a LabError that says what to do."""
    if e.errno == errno.ENOSPC:
        return LabError(f"disk full while {doing}: {e}",
                        "free some disk space, then run `nspawn-fast lab down` and `up` again")
    if e.errno in (errno.EPERM, errno.EACCES):
        return LabError(f"permission denied while {doing}: {e}", "run as root")
    return LabError(f"{doing} failed: {e}")


def _tail(text: str | bytes | None, lines: int = 15) -> str:
    if not text:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(argv: Sequence[str], *, check: bool = True, input: str | None = None,
        timeout: float | None = 300, what: str | None = None,
        hint: str = "") -> subprocess.CompletedProcess[str]:
    """Run argv (never through a shell), capture output, raise LabError on failure."""
    try:
        stdin = None if input is not None else subprocess.DEVNULL
        cp = subprocess.run(list(argv), input=input, capture_output=True, text=True,
                            timeout=timeout, stdin=stdin)
    except FileNotFoundError as e:
        require_tools([argv[0]])
        raise LabError(f"cannot run {argv[0]}: {e}") from e
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{what or argv[0]} timed out after {timeout:.0f} s",
                       hint or "see the output above; `nspawn-fast lab down` cleans up") from e
    if check and cp.returncode != 0:
        out = _tail(cp.stderr) or _tail(cp.stdout)
        raise LabError(f"{what or ' '.join(argv[:4])} failed (exit {cp.returncode}):\n{out}",
                       hint)
    return cp
