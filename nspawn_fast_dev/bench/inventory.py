"""Inventory and environment of one configuration at one scale, rendered from lab.json.

Pure functions: lab description (the lab's lab.json) and a case in, dicts out.
Every configuration sees the same containers (spread round-robin over the hosts)
in an inventory group `bench`; only how they are reached differs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible_nspawn_fast.plugins import CONNECTION_DIR, STRATEGY_DIR

from . import timing
from .plan import CONFIGS, LOCAL, MACHINECTL, NSPAWN, SSH, Case

LOOPBACK = "127.0.0.1"
PYTHON = "/usr/bin/python3"
# Where the play writes, per run (unique per run so every round does the same work).
CONTAINER_DIR = "/root/nf-bench/{{ bench_run }}"
LOCAL_DIR = "{{ bench_local_root }}/{{ inventory_hostname }}/{{ bench_run }}"


def pick(lab: dict[str, Any], n: int) -> list[tuple[dict[str, Any], str]]:
    """n normal guests as (host, guest), alternating hosts: h1-c1, h2-c1, h1-c2, ..."""
    hosts = lab["hosts"]
    depth = max(len(h["guests"]) for h in hosts)
    order = [(h, h["guests"][i]) for i in range(depth) for h in hosts if i < len(h["guests"])]
    if n > len(order):
        raise ValueError(f"the lab has {len(order)} guests, {n} wanted")
    return order[:n]


def _ssh_vars(lab: dict[str, Any]) -> dict[str, Any]:
    return {"ansible_user": "root",
            "ansible_ssh_private_key_file": lab["key"],
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={lab['known_hosts']} "
                                       "-o StrictHostKeyChecking=yes"}


def build(lab: dict[str, Any], case: Case) -> dict[str, Any]:
    shape = CONFIGS[case.config].shape
    chosen = pick(lab, case.containers)
    bench: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if shape == SSH:
        for h, g in chosen:
            bench[f"ssh-{g}"] = {"ansible_connection": "ssh", "ansible_host": LOOPBACK,
                                 "ansible_port": h["guest_sshd_ports"][g]}
    elif shape == NSPAWN:
        for h, g in chosen:
            bench[g] = {"ansible_connection": "nspawn", "ansible_host": LOOPBACK,
                        "ansible_port": h["port"]}
    elif shape == MACHINECTL:
        for h, g in chosen:
            bench[g] = {"ansible_connection": "machinectl", "ansible_host": g,
                        "mitogen_via": h["name"]}
        used = {h["name"]: h for h, _ in chosen}
        extra["bench_via"] = {"hosts": {
            name: {"ansible_connection": "ssh", "ansible_host": LOOPBACK, "ansible_port": h["port"]}
            for name, h in used.items()}}
    elif shape == LOCAL:
        for i in range(1, case.containers + 1):
            bench[f"local-{i}"] = {"ansible_connection": "local"}
    else:
        raise ValueError(f"unknown inventory shape {shape!r}")
    bench_dir = LOCAL_DIR if shape == LOCAL else CONTAINER_DIR
    return {"all": {
        "vars": {**_ssh_vars(lab), "ansible_python_interpreter": PYTHON, "bench_dir": bench_dir},
        "children": {"bench": {"hosts": bench}, **extra},
    }}


def env(case: Case, *, mitogen_strategies: Path, inventory: Path, run_dir: Path,
        base: dict[str, str], connection_plugins: Path = CONNECTION_DIR,
        strategy_plugins: Path = STRATEGY_DIR) -> dict[str, str]:
    """ansible-playbook's environment: everything set explicitly, no ansible.cfg read. The
    plugins are the installed package's (the checkout's, installed editable)."""
    cfg = CONFIGS[case.config]
    out = dict(base)
    out.update({
        "ANSIBLE_CONFIG": str(run_dir / "ansible.cfg"),  # an empty file: no stray config
        "ANSIBLE_INVENTORY": str(inventory),
        "ANSIBLE_CONNECTION_PLUGINS": str(connection_plugins),
        "ANSIBLE_STRATEGY_PLUGINS": f"{strategy_plugins}:{mitogen_strategies}",
        "ANSIBLE_STRATEGY": cfg.strategy,
        "ANSIBLE_FORKS": str(case.forks),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # A fresh ControlPath dir per run: no run reuses a master left by the previous one.
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(run_dir / "cp"),
        "ANSIBLE_LOCAL_TEMP": str(run_dir / "tmp"),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        # ansible-core 2.19 warns about every non-builtin strategy: noise, not signal.
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_NOCOLOR": "True",
        # Mitogen's default cap of 20 interpreters per via host would make it evict and
        # reconnect at 25 containers per host: lift it, the peer deserves its best setting.
        "MITOGEN_MAX_INTERPRETERS": "128",
        # Task start and last-result times, for the workloads' timed parts (timing.py).
        "ANSIBLE_CALLBACK_PLUGINS": str(timing.CALLBACK_DIR),
        "ANSIBLE_CALLBACKS_ENABLED": timing.CALLBACK,
        timing.OUT_ENV: str(run_dir / timing.RECORD),
    })
    return out
