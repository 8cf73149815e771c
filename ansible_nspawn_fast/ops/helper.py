"""Running the host helper's verbs on a Place, and its errors as one line for the operator.

Command lines come from `ansible_nspawn_fast.enter` (the one builder of helper calls); the
messages here name the next step an operator takes at a shell, not an inventory variable.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import IO

from .. import enter
from ..errors import NextSteps, helper_failure
from ..names import is_valid_machine_name
from ..target import NspawnTarget
from .errors import OpsError
from .place import Place


def machine_target(place: Place, name: str, *, boot_timeout: int = 90, sudo: bool = False) -> NspawnTarget:
    """The target for machine `name` at `place`, checked before anything runs."""
    if not name:
        raise OpsError("name the machine: MACHINE, or [USER@]HOST[:PORT]:MACHINE for one on another host")
    if not is_valid_machine_name(name):
        raise OpsError(f"{name!r} is not a machine name: machined takes a hostname (letters, digits, "
                       f"'-', dots between labels, at most 64 characters); `machinectl list` on "
                       f"{place.describe()} shows the names")
    if boot_timeout < 0:
        raise OpsError("--boot-timeout must be 0 or more seconds")
    if place.local and not sudo and os.geteuid() != 0:
        raise OpsError("entering or stopping a machine on this machine needs root: run nspawn-fast as "
                       "root, or pass --sudo")
    return NspawnTarget(host=place.host or "localhost", container=name, local=place.local,
                        host_sudo=sudo, boot_timeout=boot_timeout)


def where(place: Place, name: str) -> str:
    return f"machine {name} on {place.describe()}"


# The next steps of the helper's errors in the operator's words (errors.HELPER_FAILURES).
OPERATOR_STEPS = NextSteps(
    work="command",
    again="run the command again",
    fix_name="check the name",
    boot_timeout="--boot-timeout",
    directory="the tree's path",
    helper="this nspawn-fast sent arguments its own helper refuses: please report it",
    stop_timeout="--timeout",
)


def failure(place: Place, name: str, code: str, message: str, status: int = 1) -> OpsError:
    """The helper's error code as one line with the next step."""
    err = helper_failure(code, message, where=where(place, name), name=name, steps=OPERATOR_STEPS)
    return OpsError(str(err), status)


def ssh_failed(place: Place, stderr: bytes) -> OpsError:
    """ssh itself failed (exit 255): its last line, and what to try."""
    said = stderr.decode("utf-8", "replace").strip().splitlines()
    return OpsError(f"cannot reach {place.describe()} over ssh: {said[-1] if said else 'exit 255'}. "
                    "Check that plain `ssh` to it works")


def not_installed(e: FileNotFoundError) -> OpsError:
    """A local program (ssh, sudo, sh) this command needs is missing."""
    return OpsError(f"cannot run {e.filename}: it is not installed here")


def run_captured(place: Place, argv: list[str], timeout: float) -> tuple[int, bytes, bytes]:
    """Run a helper call there, output captured; bounded (the helper bounds its own waits)."""
    try:
        cp = subprocess.run(place.argv(argv), capture_output=True, stdin=subprocess.DEVNULL,
                            timeout=timeout)
    except FileNotFoundError as e:
        raise not_installed(e) from None
    except subprocess.TimeoutExpired:
        raise OpsError(f"no answer from {place.describe()} within {timeout:.0f}s") from None
    return cp.returncode, cp.stdout, cp.stderr


def check(place: Place, name: str, rc: int, out: bytes, err: bytes) -> None:
    """Raise the helper's own error, or ssh's; return when neither failed."""
    found = enter.parse_helper_error(rc, out, err)
    if found is not None:
        raise failure(place, name, *found)
    if rc == 255 and not place.local:
        raise ssh_failed(place, err)


def lookup(place: Place, target: NspawnTarget) -> enter.Leader:
    """The machine's leader, once it is booted (up to the target's boot timeout)."""
    name = str(target.container)
    rc, out, err = run_captured(place, enter.lookup_argv(target), timeout=target.boot_timeout + 60)
    check(place, name, rc, out, err)
    try:
        if rc != 0:
            raise ValueError(f"exit {rc}")
        return enter.parse_leader(out)
    except ValueError as e:
        said = (err or out).decode("utf-8", "replace").strip()[-500:]
        raise failure(place, name, "lookup-failed", f"{e}: {said}") from None


class HelperLineFilter:
    """Passes a stream on as it comes, except the helper's own error line (this run's nonce).

    An unfinished line is held back only while it may still become that line, and a blank
    line only while the helper's line (which it prints after a blank line) may follow.
    """

    def __init__(self, nonce: str = enter.RUN_NONCE) -> None:
        self.mark = enter.HELPER_ERROR_MARK + nonce.encode() + b" "
        self.found: bytes | None = None
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        lines = (self.pending + data).split(b"\n")
        tail = lines.pop()  # the unfinished line, b"" after a newline
        out: list[bytes] = []
        for line in lines:
            if line.startswith(self.mark):
                self.found = line
                if out and out[-1] == b"":
                    out.pop()
            else:
                out.append(line)
        self.pending = b""
        if self.mark.startswith(tail) or tail.startswith(self.mark):
            self.pending, tail = tail, b""
            if out and out[-1] == b"":
                self.pending = b"\n" + self.pending
                out.pop()
        return b"".join(line + b"\n" for line in out) + tail

    def close(self) -> bytes:
        rest, self.pending = self.pending, b""
        if rest.lstrip(b"\n").startswith(self.mark):
            self.found = rest.lstrip(b"\n")
            return b""
        return rest


def _pump(src: IO[bytes], filt: HelperLineFilter, dst: IO[bytes]) -> None:
    while chunk := os.read(src.fileno(), 65536):
        dst.write(filt.feed(chunk))
        dst.flush()
    dst.write(filt.close())
    dst.flush()


def run_attached(place: Place, name: str, argv: list[str], tty: bool = False) -> int:
    """Run a helper call there with this terminal's stdin and stdout; its exit status.

    Without a tty, stderr passes through a filter that turns the helper's own error into
    OpsError; with one (ssh -t) every stream is the terminal's and goes to the user as is.
    Ctrl-C is the child's business: this process only waits for it.
    """
    # A handler, not SIG_IGN: an ignored SIGINT would be inherited by ssh and the command.
    old = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        try:
            proc = subprocess.Popen(place.argv(argv, tty=tty),
                                    stderr=None if tty else subprocess.PIPE,
                                    restore_signals=True)
        except FileNotFoundError as e:
            raise not_installed(e) from None
        filt = HelperLineFilter()
        pump = None
        if proc.stderr is not None:
            pump = threading.Thread(target=_pump, args=(proc.stderr, filt, sys.stderr.buffer), daemon=True)
            pump.start()
        rc = proc.wait()
        if pump is not None:
            pump.join()
    finally:
        signal.signal(signal.SIGINT, old)
    found = enter.parse_helper_error(rc, b"", filt.found or b"")
    if found is not None:
        raise failure(place, name, *found)
    return rc
