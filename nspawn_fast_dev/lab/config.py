"""Lab topology as plain, frozen data: names, ports and paths in one place.

Everything else (image, hosts, guests, inventory, status) derives from a LabConfig,
so the unit tests can check names and ports without root or a running lab.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ansible_nspawn_fast.plugins import CONNECTION_DIR, INVENTORY_DIR, MODULES_DIR, STRATEGY_DIR

DEFAULT_LAB_DIR = Path("/var/lib/nspawn-fast/lab")
DEFAULT_CACHE_DIR = Path("/var/cache/nspawn-fast/images")
LAB_DIR_ENV = "NSPAWN_FAST_LAB_DIR"
CACHE_DIR_ENV = "NSPAWN_FAST_CACHE_DIR"

MAX_HOSTS = 9
MAX_GUESTS = 60

# The lab's image, bound read-only into every host: a shared base for overlay machines that
# playbooks create there (the fleet example).
BASE_MOUNT = "/srv/nspawn-fast/base"

# Where the not-running tree shows up inside host 1 (for `systemd-nspawn -D` mode).
TREES_MOUNT = "/srv/nspawn-fast/trees"
TREE_NAME = "buildroot"
TREE_PATH = f"{TREES_MOUNT}/{TREE_NAME}"

# Kinds of guest.  "normal" guests are the bulk; the others exist once, on host 1.
# The hostile guest is one whose root the security tests play as an attacker.  The pid2 guest
# runs no systemd: nspawn's stub init is its PID 1 and a shell script its PID 2 (an application
# container, `--as-pid2`).
NORMAL, NOPY, USERNS, STOPPED, HOSTILE, PID2 = "normal", "nopy", "userns", "stopped", "hostile", "pid2"
# Bumped whenever the set of guests of a lab changes: a running lab of another layout is rebuilt.
LAYOUT = 4


@dataclass(frozen=True)
class Guest:
    """One container inside a host; its machine name is also its inventory hostname."""

    name: str
    host: str
    kind: str = NORMAL
    sshd_port: int | None = None  # only with --guest-sshd, normal guests only

    @property
    def started(self) -> bool:
        """Whether `up` boots it (the stopped guest exists only as an image)."""
        return self.kind != STOPPED

    @property
    def private_users(self) -> bool:
        return self.kind == USERNS

    @property
    def runs_systemd(self) -> bool:
        """Whether its init is systemd (readiness: `systemctl is-system-running`)."""
        return self.kind != PID2


@dataclass(frozen=True)
class Host:
    """One "remote host": a booted nspawn container reached by ssh on 127.0.0.1:port."""

    index: int  # 1-based
    name: str
    port: int
    guests: tuple[Guest, ...]
    tree: str | None = None  # inventory name of the not-running tree, host 1 only

    @property
    def group(self) -> str:
        """Inventory group of its normal guests (no dashes: Ansible warns on them)."""
        return self.name.replace("-", "_")

    def root(self, lab_dir: Path) -> Path:
        return host_dir(lab_dir, self.name) / "root"


def host_dir(lab_dir: Path, name: str) -> Path:
    return lab_dir / "hosts" / name


@dataclass(frozen=True)
class LabConfig:
    """The shape of a lab plus where it lives.  `shape()` is what `up` compares."""

    lab_dir: Path = DEFAULT_LAB_DIR
    cache_dir: Path = DEFAULT_CACHE_DIR
    hosts: int = 2
    guests: int = 3
    guest_sshd: bool = False
    host_port_base: int = 2201
    guest_port_base: int = 2301
    # The plugin dirs the lab's ansible.cfg names: those of the installed package.
    connection_plugins: Path = CONNECTION_DIR
    strategy_plugins: Path = STRATEGY_DIR
    inventory_plugins: Path = INVENTORY_DIR
    library: Path = MODULES_DIR  # the nspawn_machine module

    def __post_init__(self) -> None:
        # Validate here so a bad shape fails before anything is mounted.
        if not 1 <= self.hosts <= MAX_HOSTS:
            raise ValueError(f"--hosts must be 1..{MAX_HOSTS}, got {self.hosts}")
        if not 1 <= self.guests <= MAX_GUESTS:
            raise ValueError(f"--guests must be 1..{MAX_GUESTS}, got {self.guests}")
        for what, base, count in (
            ("host port base", self.host_port_base, self.hosts),
            ("guest port base", self.guest_port_base, self.hosts * self.guests),
        ):
            if not (1024 <= base and base + count - 1 <= 65535):
                raise ValueError(f"{what} {base} out of range 1024..65535")
        hp = set(range(self.host_port_base, self.host_port_base + self.hosts))
        if self.guest_sshd and hp & set(self.guest_ports()):
            raise ValueError("host ports and guest sshd ports overlap; change a port base")

    # --- names and ports -------------------------------------------------------------
    def host_name(self, i: int) -> str:
        return f"nf-host{i}"

    def host_port(self, i: int) -> int:
        return self.host_port_base + i - 1

    def guest_ports(self) -> list[int]:
        return [self.guest_port_base + n for n in range(self.hosts * self.guests)]

    def host_list(self) -> list[Host]:
        """All hosts with their guests; special guests live on host 1 only."""
        out = []
        for i in range(1, self.hosts + 1):
            name = self.host_name(i)
            guests = []
            for j in range(1, self.guests + 1):
                port = None
                if self.guest_sshd:
                    port = self.guest_port_base + (i - 1) * self.guests + (j - 1)
                guests.append(Guest(f"h{i}-c{j}", name, NORMAL, port))
            tree = None
            if i == 1:
                guests += [Guest("h1-nopy", name, NOPY), Guest("h1-userns", name, USERNS),
                           Guest("h1-stopped", name, STOPPED), Guest("h1-hostile", name, HOSTILE),
                           Guest("h1-pid2", name, PID2)]
                tree = "h1-tree"
            out.append(Host(i, name, self.host_port(i), tuple(guests), tree))
        return out

    # --- paths -----------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.lab_dir / "state.json"

    @property
    def key_file(self) -> Path:
        return self.lab_dir / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.lab_dir / "ssh" / "known_hosts"

    @property
    def inventory_file(self) -> Path:
        return self.lab_dir / "inventory.yml"

    @property
    def ansible_cfg(self) -> Path:
        return self.lab_dir / "ansible.cfg"

    @property
    def lab_json(self) -> Path:
        return self.lab_dir / "lab.json"

    @property
    def control_path_dir(self) -> Path:
        return self.lab_dir / "cp"

    def shape(self) -> dict[str, Any]:
        """What must match for `up` to reuse a running lab."""
        d = asdict(self)
        return {"layout": LAYOUT, **{k: d[k] for k in ("hosts", "guests", "guest_sshd",
                                                        "host_port_base", "guest_port_base")}}


def default_lab_dir() -> Path:
    return Path(os.environ.get(LAB_DIR_ENV) or DEFAULT_LAB_DIR)


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)
