"""A terminal of its own for a command on this machine: what `ssh -t` gives a remote one.

The command gets a new pty (allocated here, on the host) as its controlling terminal, never
the user's: a process in a container holding the user's terminal could type into it. This
terminal is put in raw mode and relayed both ways, so Ctrl-C, Ctrl-Z and the rest reach the
container's foreground job through the pty's line discipline; window size changes follow.
"""
from __future__ import annotations

import fcntl
import os
import select
import signal
import sys
import termios
import time
import tty
from collections.abc import Sequence


def _copy_winsize(src: int, dst: int) -> None:
    try:
        fcntl.ioctl(dst, termios.TIOCSWINSZ, fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _spawn(argv: Sequence[str], slave: int) -> int:
    pid = os.fork()
    if pid == 0:  # child: new session, the pty as controlling terminal and stdio
        try:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.execvp(argv[0], list(argv))
        finally:
            os._exit(127)
    return pid


def run_in_pty(argv: Sequence[str]) -> int:
    """Run argv on a new pty relayed to this terminal (stdin must be one); its exit status."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    master, slave = os.openpty()
    _copy_winsize(stdin, slave)  # before the command starts: its first look is right
    old_winch = signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(stdin, master))
    mode = termios.tcgetattr(stdin)
    pid = _spawn(argv, slave)
    os.close(slave)
    status = None
    tty.setraw(stdin)
    try:
        inputs = [master, stdin]
        while status is None:
            ready, _, _ = select.select(inputs, [], [], 0.2)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every holder of the pty closed it
                    data = b""
                if not data:
                    inputs.remove(master)
                _write_all(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if data:
                    _write_all(master, data)
                else:
                    inputs.remove(stdin)
            done, wstatus = os.waitpid(pid, os.WNOHANG)
            if done:
                status = wstatus
            elif master not in inputs:
                status = os.waitpid(pid, 0)[1]
        # The command exited; what it wrote last may still be in the pty (bounded: a process it
        # left behind may hold the pty open and keep writing).
        end = time.monotonic() + 0.5
        while time.monotonic() < end and select.select([master], [], [], 0.05)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            _write_all(stdout, data)
    finally:
        termios.tcsetattr(stdin, termios.TCSAFLUSH, mode)
        signal.signal(signal.SIGWINCH, old_winch)
        os.close(master)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
