"""The operator subcommands of `nspawn-fast`: enter, stop, chroots (argparse wiring only)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .errors import OpsError

COMMANDS = ("enter", "stop", "chroots")

_SPEC = "[USER@]HOST[:PORT]:MACHINE over your own ssh (~/.ssh/config applies), or MACHINE on this machine"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ssh-args", default="", metavar="ARGS",
                   help="extra ssh options, split like a shell would (e.g. \"-i key -o ProxyJump=bastion\")")


def add_parsers(sub: Any) -> None:
    enter = sub.add_parser("enter", usage="nspawn-fast enter [options] [HOST:]MACHINE [-- COMMAND...]",
                           epilog="COMMAND runs instead of root's login shell.",
                           help="a login shell, or a command, inside a running container",
                           description="Enter a running container as a task would (leader verified, "
                                       "its cgroup, namespaces and environment). Exit status: the "
                                       "command's; 1 when nspawn-fast could not enter.")
    enter.add_argument("machine", metavar="[HOST:]MACHINE", help=_SPEC)
    enter.add_argument("--no-network", action="store_true",
                       help="stay in the host's network namespace (debugging; the command gets the "
                            "host's network)")
    enter.add_argument("--no-pid", action="store_true", help="stay in the host's PID namespace (debugging)")
    enter.add_argument("-t", "--tty", action="store_true", help="a terminal for COMMAND too (as ssh -t)")
    enter.add_argument("--boot-timeout", type=int, default=90, metavar="S",
                       help="seconds to wait for a booting container (default 90; 0: enter as it is)")
    enter.add_argument("--sudo", action="store_true", help="run the host side through sudo -n")
    _common(enter)

    stop = sub.add_parser("stop", help="shut a container down cleanly and wait until it has",
                          description="Ask a container to shut down (poweroff for systemd, SIGTERM to "
                                      "the leader otherwise) and wait until its leader exited. Kills "
                                      "nothing. Exit status: 0 stopped (or not running), 3 still "
                                      "running when --timeout expired, 1 error.")
    stop.add_argument("machine", metavar="[HOST:]MACHINE", help=_SPEC)
    stop.add_argument("--timeout", type=int, default=60, metavar="S",
                      help="seconds to wait for the leader to exit (default 60)")
    stop.add_argument("--sudo", action="store_true", help="run the host side through sudo -n")
    _common(stop)

    chroots = sub.add_parser("chroots", usage="nspawn-fast chroots [options] [[USER@]HOST[:PORT]:] "
                                              "[-- ANSIBLE-PLAYBOOK-ARGS...]",
                             epilog="ANSIBLE-PLAYBOOK-ARGS are passed on (e.g. -- -e x=1 -v).",
                             help="create and update OS trees, one playbook each",
                             description="Run PLAYBOOKS/NAME.yml against the tree DIR/NAME for every "
                                         "such playbook (creating missing trees from its "
                                         "nspawn_chroot_create), all in one ansible-playbook run. "
                                         "Exit status: 0 all fine, 1 a tree failed or an error.")
    chroots.add_argument("place", nargs="?", metavar="[USER@]HOST[:PORT]:",
                         help="the builder host, over your own ssh (default: this machine)")
    chroots.add_argument("--dir", default="/var/lib/nspawn-fast/chroots",
                         help="where the trees are, on the builder (default /var/lib/nspawn-fast/chroots)")
    chroots.add_argument("--playbooks", default=".", help="where NAME.yml are, here (default: .)")
    _common(chroots)


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(our words, the words after the first '--') for enter and chroots.

    The tail is a command line of its own (the command to run, ansible-playbook's options);
    argparse would take its options for ours.
    """
    if argv[:1] in (["enter"], ["chroots"]) and "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def run(args: argparse.Namespace, tail: list[str]) -> int:
    try:
        if args.cmd == "enter":
            from . import enter
            args.command = tail
            return enter.run(args)
        if args.cmd == "stop":
            from . import stop
            return stop.run(args)
        from . import chroots
        args.ansible_args = tail
        return chroots.run(args)
    except OpsError as e:
        print(f"nspawn-fast: error: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        print("nspawn-fast: interrupted", file=sys.stderr)
        return 130
