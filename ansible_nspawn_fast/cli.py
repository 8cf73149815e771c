"""The `nspawn-fast` console command: the operator tools `enter`, `stop` and `chroots` (ops/),
`host-helper`, and `ansible-cfg` (the ansible.cfg lines for this install's Ansible plugins).

`lab` and `bench` are development tools: they live in the repository's nspawn_fast_dev package,
not in this one, and run from a checkout (`./run ...` sets that up)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# Subcommands served by the development package of a checkout (nspawn_fast_dev.cli).
DEV_COMMANDS = ("lab", "bench")
NOT_IN_THIS_INSTALL = "lab and bench are development tools: run them from a checkout (./run ...)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nspawn-fast", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("host-helper", help="print the host helper, to install it on a host for "
                                       "ansible_nspawn_host_helper (a sudoers rule can name it)")
    sub.add_parser("ansible-cfg", help="print the ansible.cfg lines that load this install's "
                                       "plugins and its module (and the collection's names)")
    from .ops.commands import add_parsers
    add_parsers(sub)  # enter, stop, chroots
    return p


def _dev_main(argv: list[str]) -> int:
    try:
        import nspawn_fast_dev  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != "nspawn_fast_dev":
            raise
        print(f"nspawn-fast: error: {NOT_IN_THIS_INSTALL}", file=sys.stderr)
        return 2
    from nspawn_fast_dev.cli import main as dev_main
    return dev_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in DEV_COMMANDS:
        return _dev_main(argv)
    from .ops import commands as ops
    words, tail = ops.split_argv(argv)
    args = _parser().parse_args(words)

    if args.cmd in ops.COMMANDS:
        return ops.run(args, tail)

    if args.cmd == "ansible-cfg":
        from .plugins import ansible_cfg
        sys.stdout.write(ansible_cfg())
        return 0

    from .enter import host_helper
    sys.stdout.write(host_helper())
    return 0


if __name__ == "__main__":
    sys.exit(main())
