"""Where the controller's processes may run: all CPUs on small machines.

ansible_mitogen pins its multiplexer to CPU 0 and, on a machine with fewer than 4
CPUs, the top-level process, every task worker and every ssh started by them to
CPU 1 (ansible_mitogen/affinity.py, FixedPolicy). On 2 CPUs that leaves all of
Ansible's own work one CPU, while the multiplexer's CPU mostly idles: measured here,
50 `debug` tasks on 10 hosts took 10.2 s under nspawn_linear and 5.4 s under stock
linear (benchmarks/, configurations `debug_nl` and `debug`). There we leave
placement to the kernel's scheduler; on 4 CPUs and more, where the reserved CPUs are
a smaller share (and we could not measure), mitogen's placement stays.
"""
from __future__ import annotations

import os

import ansible_mitogen.affinity

SMALL_MACHINE = 4  # FixedPolicy reserves a CPU for the top-level process from 4 CPUs on


def policy_for(cpu_count: int, mitogen_policy: ansible_mitogen.affinity.Policy) -> ansible_mitogen.affinity.Policy:
    """The base Policy places nothing: every process may run on every CPU."""
    return ansible_mitogen.affinity.Policy() if cpu_count < SMALL_MACHINE else mitogen_policy


def install() -> None:
    """Before the multiplexer and the first worker start: they read the module's policy."""
    current = ansible_mitogen.affinity.policy
    ansible_mitogen.affinity.policy = policy_for(os.cpu_count() or 1, current)
