"""Processes of the controller that must not outlive it, even when it is SIGKILLed.

ansible_mitogen's multiplexer waits for its socket to the controller to close, but the
task workers hold that socket too, and a worker waits for its task's result from the
multiplexer (whose death it does not notice while it waits on a context routed through
it): after a SIGKILL of ansible-playbook nothing would end. With a parent-death signal
in both, the multiplexer and the workers go at once; the multiplexer's SSH connections
close, the host interpreters see EOF and exit, and their container interpreters with them.
"""
from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def exit_with_parent() -> None:
    """SIGTERM this process when its parent exits (Linux); a no-op elsewhere."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return
    if parent == 1 or os.getppid() != parent:  # the parent died before prctl
        os.kill(os.getpid(), signal.SIGTERM)
