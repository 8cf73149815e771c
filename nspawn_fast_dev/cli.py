"""`nspawn-fast lab up|status|down` and `nspawn-fast bench`: the development commands.

The runtime's console command (ansible_nspawn_fast.cli) hands `lab` and `bench` to main() here
when this package is importable, that is in a checkout; `python -m nspawn_fast_dev ...` runs it
directly."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .lab.config import LabConfig, default_cache_dir, default_lab_dir
from .lab.runner import LabError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nspawn-fast", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    lab = sub.add_parser("lab", help="the built-in lab: hosts and nspawn guests on this machine")
    lsub = lab.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", default=None,
                        help="lab state dir (default: $NSPAWN_FAST_LAB_DIR or "
                             "/var/lib/nspawn-fast/lab)")
    up = lsub.add_parser("up", parents=[common], help="build and boot the lab (idempotent)")
    up.add_argument("--hosts", type=int, default=2, help="number of hosts (default 2)")
    up.add_argument("--guests", type=int, default=3, help="normal guests per host (default 3)")
    up.add_argument("--guest-sshd", action="store_true",
                    help="run sshd in each normal guest on its own port (stock-ssh baseline)")
    up.add_argument("--host-port-base", type=int, default=2201,
                    help="sshd port of host 1; host N gets base+N-1 (default 2201)")
    up.add_argument("--guest-port-base", type=int, default=2301,
                    help="first guest sshd port with --guest-sshd (default 2301)")
    lsub.add_parser("status", parents=[common], help="show hosts, guests, ports and states")
    lsub.add_parser("down", parents=[common], help="stop and remove the lab (keeps the image)")
    bench = sub.add_parser("bench", help="run the benchmark suite against the bench lab and "
                                         "write benchmarks/RESULTS.md and the chart")
    from .bench.command import add_arguments
    add_arguments(bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)

    if args.cmd == "bench":
        from .bench.command import run
        try:
            return run(args, argv[1:])
        except LabError as e:
            print(f"nspawn-fast: error: {e}", file=sys.stderr)
            return 1

    from .lab import lab

    lab_dir = Path(args.dir) if args.dir else default_lab_dir()
    try:
        kw = {}
        if args.action == "up":
            kw = dict(hosts=args.hosts, guests=args.guests, guest_sshd=args.guest_sshd,
                      host_port_base=args.host_port_base, guest_port_base=args.guest_port_base)
        try:
            cfg = LabConfig(lab_dir=lab_dir.absolute(), cache_dir=default_cache_dir().absolute(),
                            **kw)
        except ValueError as e:
            raise LabError(str(e)) from e
        if args.action == "up":
            lab.up(cfg)
            return 0
        if args.action == "status":
            return lab.status(cfg)
        lab.down(cfg)
        return 0
    except LabError as e:
        print(f"nspawn-fast: error: {e}", file=sys.stderr)
        if e.hint:
            print(f"nspawn-fast: what to do: {e.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nspawn-fast: interrupted; `nspawn-fast lab down` cleans up a partial lab",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
