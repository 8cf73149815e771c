"""`nspawn-fast enter [HOST:]MACHINE [--no-network] [--no-pid] [-- COMMAND...]`.

The helper's lookup (waits for boot) and then its exec with that leader, so a shell or command
gets exactly what a task gets: the leader re-verified, its cgroup, its namespaces, the
container's environment. Without a command: root's login shell there, on a terminal.
"""
from __future__ import annotations

import argparse
import os

from .. import enter as helper_calls
from . import helper, ptyrelay
from .place import parse_place

# Run by the container's /bin/sh after the helper set SHELL from the container's /etc/passwd.
LOGIN_SHELL = 'cd "$HOME" 2>/dev/null || cd /; [ -x "$SHELL" ] || SHELL=/bin/sh; exec "$SHELL" -l'


def command_argv(args: argparse.Namespace) -> list[str]:
    """What runs inside: the command as given, or the login shell."""
    return list(args.command) or ["/bin/sh", "-c", LOGIN_SHELL, "nspawn-fast-login"]


def skipped(args: argparse.Namespace) -> str:
    """The enter-partial verb's SKIP, or '' to enter every namespace."""
    return ",".join(ns for ns, on in (("net", args.no_network), ("pid", args.no_pid)) if on)


def run(args: argparse.Namespace) -> int:
    place, name = parse_place(args.machine, args.ssh_args)
    target = helper.machine_target(place, name, boot_timeout=args.boot_timeout, sudo=args.sudo)
    leader = helper.lookup(place, target)
    inside = command_argv(args)
    skip = skipped(args)
    if skip:
        argv = helper_calls.helper_argv(target, "enter-partial", *leader.args(), skip, *inside)
    else:
        argv = helper_calls.inside_argv(target, leader, inside)
    interactive = args.tty or not args.command
    if interactive and os.isatty(0):
        if place.local:
            return ptyrelay.run_in_pty(argv)
        return helper.run_attached(place, name, argv, tty=True)
    return helper.run_attached(place, name, argv)
