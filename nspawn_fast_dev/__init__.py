"""Development tools of ansible-nspawn-fast, in its repository only (never in the wheel).

lab/     the built-in lab: "remote hosts" and nspawn guests on this machine
bench/   the benchmark suite's logic (benchmarks/ holds its pytest module)
collection.py   builds the Ansible collection from the package's plugin files

Run them as `nspawn-fast lab|bench ...` from the checkout's .venv (scripts/setup.sh puts the
checkout on its path) or `python -m nspawn_fast_dev lab|bench ...` from the checkout. They use
the runtime package ansible_nspawn_fast; it never imports them.
"""
from __future__ import annotations

from pathlib import Path

# This package exists only in a checkout, at its top: its parent is the checkout.
CHECKOUT = Path(__file__).resolve().parent.parent
