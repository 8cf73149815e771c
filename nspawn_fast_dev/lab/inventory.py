"""The lab's inventory.yml, ansible.cfg, lab.json and known_hosts, rendered from config.

Render functions are pure (config in, text/dicts out) so unit tests check them;
`write_all` puts them on disk.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .config import BASE_MOUNT, HOSTILE, NOPY, NORMAL, PID2, STOPPED, TREE_PATH, USERNS, Host, LabConfig

LOOPBACK = "127.0.0.1"

# Special guest kind -> inventory group.
SPECIAL_GROUPS = {NOPY: "nopython", USERNS: "userns", STOPPED: "stopped", HOSTILE: "hostile",
                  PID2: "pid2"}


def _via(host: Host) -> dict[str, Any]:
    """Vars of a container reached through `host` by the nspawn connection plugin."""
    return {"ansible_connection": "nspawn", "ansible_host": LOOPBACK, "ansible_port": host.port}


def build_inventory(cfg: LabConfig) -> dict[str, Any]:
    hosts = cfg.host_list()
    children: dict[str, Any] = {
        "lab_hosts": {"hosts": {h.name: {"ansible_connection": "ssh", "ansible_host": LOOPBACK,
                                          "ansible_port": h.port} for h in hosts}},
        "containers": {"children": {
            h.group: {"hosts": {g.name: _via(h) for g in h.guests if g.kind == NORMAL}}
            for h in hosts}},
    }
    for kind, group in SPECIAL_GROUPS.items():
        children[group] = {"hosts": {g.name: _via(h) for h in hosts for g in h.guests
                                     if g.kind == kind}}
    children["trees"] = {"hosts": {h.tree: {**_via(h), "ansible_nspawn_directory": TREE_PATH}
                                   for h in hosts if h.tree}}
    if cfg.guest_sshd:
        children["sshd_guests"] = {"hosts": {
            f"ssh-{g.name}": {"ansible_connection": "ssh", "ansible_host": LOOPBACK,
                              "ansible_port": g.sshd_port}
            for h in hosts for g in h.guests if g.sshd_port is not None}}
    return {"all": {
        "vars": {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(cfg.key_file),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={cfg.known_hosts} "
                                       "-o StrictHostKeyChecking=yes",
        },
        "children": children,
    }}


def render_inventory(cfg: LabConfig) -> str:
    head = "# Written by `nspawn-fast lab up`; rewritten on every up.\n"
    return head + yaml.safe_dump(build_inventory(cfg), sort_keys=False, default_flow_style=False)


def render_ansible_cfg(cfg: LabConfig) -> str:
    return f"""# Written by `nspawn-fast lab up`: use as ANSIBLE_CONFIG={cfg.ansible_cfg}
[defaults]
inventory = {cfg.inventory_file}
connection_plugins = {cfg.connection_plugins}
strategy_plugins = {cfg.strategy_plugins}
inventory_plugins = {cfg.inventory_plugins}
library = {cfg.library}
forks = 10
interpreter_python = /usr/bin/python3
host_key_checking = True

[inventory]
# the stock list, plus the nspawn inventory plugin (*.nspawn.yml)
enable_plugins = host_list, script, auto, yaml, ini, toml, nspawn

[ssh_connection]
control_path_dir = {cfg.control_path_dir}
"""


def lab_description(cfg: LabConfig, image: str = "") -> dict[str, Any]:
    """lab.json: the topology for tests and tools (no need to parse the inventory)."""
    return {
        "lab_dir": str(cfg.lab_dir),
        "image": image,
        "shape": cfg.shape(),
        "key": str(cfg.key_file),
        "known_hosts": str(cfg.known_hosts),
        "inventory": str(cfg.inventory_file),
        "ansible_cfg": str(cfg.ansible_cfg),
        "base": BASE_MOUNT,  # the image, read-only in every host
        "hosts": [{
            "name": h.name,
            "port": h.port,
            "group": h.group,
            "guests": [g.name for g in h.guests if g.kind == NORMAL],
            "special": {g.kind: g.name for g in h.guests if g.kind != NORMAL},
            "tree": {"name": h.tree, "path": TREE_PATH} if h.tree else None,
            "guest_sshd_ports": {g.name: g.sshd_port for g in h.guests
                                 if g.sshd_port is not None},
        } for h in cfg.host_list()],
    }


def render_known_hosts(cfg: LabConfig, host_keys: list[str]) -> str:
    """Every host and guest sshd shares the image's host keys."""
    ports = [h.port for h in cfg.host_list()]
    ports += [g.sshd_port for h in cfg.host_list() for g in h.guests if g.sshd_port]
    return "".join(f"[{LOOPBACK}]:{p} {k}\n" for p in ports for k in host_keys)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_all(cfg: LabConfig, host_keys: list[str], image: str) -> None:
    cfg.control_path_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _atomic_write(cfg.known_hosts, render_known_hosts(cfg, host_keys))
    _atomic_write(cfg.inventory_file, render_inventory(cfg))
    _atomic_write(cfg.ansible_cfg, render_ansible_cfg(cfg))
    _atomic_write(cfg.lab_json, json.dumps(lab_description(cfg, image), indent=2) + "\n")
