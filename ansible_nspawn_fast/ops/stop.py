"""`nspawn-fast stop [HOST:]MACHINE [--timeout 60]`: a clean shutdown that waits for it.

The helper's stop verb asks the container to shut down (machined's poweroff for a systemd
init, SIGTERM on the leader for any other) and waits until the leader process - PID and start
time, so a reused PID is never taken for it - has exited. It kills nothing, which is what an
ExecStop= of systemd-nspawn@.service needs: systemd only kills what is left after it returns.
"""
from __future__ import annotations

import argparse
import sys

from .. import enter as helper_calls
from . import helper
from .errors import OpsError
from .place import parse_place

TIMEOUT_STATUS = 3  # the leader still ran when --timeout expired


def run(args: argparse.Namespace) -> int:
    if args.timeout < 0:
        raise OpsError("--timeout must be 0 or more seconds")
    place, name = parse_place(args.machine, args.ssh_args)
    target = helper.machine_target(place, name, sudo=args.sudo)
    argv = helper_calls.helper_argv(target, "stop", name, str(args.timeout))
    # The helper bounds each step (machinectl calls 10 s each, the wait --timeout).
    rc, out, err = helper.run_captured(place, argv, timeout=args.timeout + 60)
    found = helper_calls.parse_helper_error(rc, out, err)
    if found is not None and found[0] == "stop-timeout":
        raise helper.failure(place, name, *found, status=TIMEOUT_STATUS)
    helper.check(place, name, rc, out, err)
    if rc != 0:
        said = (err or out).decode("utf-8", "replace").strip()[-500:]
        raise OpsError(f"stopping {helper.where(place, name)} failed (exit {rc}): {said}")
    for line in out.decode("utf-8", "replace").splitlines():
        if line.strip():
            print(f"nspawn-fast: {line.strip()} on {place.describe()}", file=sys.stderr)
    return 0
