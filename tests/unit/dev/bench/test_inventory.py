"""Benchmark inventories and environments, rendered from a lab.json fixture."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_nspawn_fast.plugins import CONNECTION_DIR, STRATEGY_DIR
from nspawn_fast_dev.bench import inventory
from nspawn_fast_dev.bench.plan import Case

LAB = {
    "key": "/lab/ssh/id_ed25519",
    "known_hosts": "/lab/ssh/known_hosts",
    "hosts": [
        {"name": "nf-host1", "port": 2401, "guests": ["h1-c1", "h1-c2"],
         "guest_sshd_ports": {"h1-c1": 2501, "h1-c2": 2502}},
        {"name": "nf-host2", "port": 2402, "guests": ["h2-c1", "h2-c2"],
         "guest_sshd_ports": {"h2-c1": 2503, "h2-c2": 2504}},
    ],
}


def bench_hosts(config: str, n: int) -> dict:
    inv = inventory.build(LAB, Case("mix", n, 10, 1, config))
    return inv["all"]["children"]["bench"]["hosts"]


def test_containers_alternate_hosts() -> None:
    assert [g for _, g in inventory.pick(LAB, 3)] == ["h1-c1", "h2-c1", "h1-c2"]
    with pytest.raises(ValueError):
        inventory.pick(LAB, 5)


def test_ssh_goes_to_each_guest_sshd() -> None:
    assert bench_hosts("ssh", 2) == {
        "ssh-h1-c1": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 2501},
        "ssh-h2-c1": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 2503},
    }


@pytest.mark.parametrize("config", ["nspawn", "nspawn_linear", "debug"])
def test_nspawn_configs_go_through_the_host(config: str) -> None:
    assert bench_hosts(config, 2) == {
        "h1-c1": {"ansible_connection": "nspawn", "ansible_host": "127.0.0.1", "ansible_port": 2401},
        "h2-c1": {"ansible_connection": "nspawn", "ansible_host": "127.0.0.1", "ansible_port": 2402},
    }


def test_mitogen_uses_machinectl_via_only_the_hosts_in_use() -> None:
    inv = inventory.build(LAB, Case("mix", 1, 10, 1, "mitogen"))
    children = inv["all"]["children"]
    assert children["bench"]["hosts"] == {
        "h1-c1": {"ansible_connection": "machinectl", "ansible_host": "h1-c1", "mitogen_via": "nf-host1"}}
    assert children["bench_via"]["hosts"] == {
        "nf-host1": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 2401}}


def test_local_floor_has_n_local_hosts_and_own_dirs() -> None:
    inv = inventory.build(LAB, Case("mix", 3, 10, 1, "local"))
    assert list(inv["all"]["children"]["bench"]["hosts"]) == ["local-1", "local-2", "local-3"]
    assert "inventory_hostname" in inv["all"]["vars"]["bench_dir"]
    assert inventory.build(LAB, Case("mix", 1, 10, 1, "ssh"))["all"]["vars"]["bench_dir"].startswith("/root/")


def test_env_sets_strategy_forks_and_fresh_control_path() -> None:
    env = inventory.env(Case("mix", 10, 50, 1, "mitogen"), mitogen_strategies=Path("/m/strategy"),
                        inventory=Path("/r/inv.yml"), run_dir=Path("/r"),
                        base={"PATH": "/bin", "ANSIBLE_STRATEGY": "free"})
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert env["ANSIBLE_FORKS"] == "50"
    assert env["ANSIBLE_STRATEGY_PLUGINS"] == f"{STRATEGY_DIR}:/m/strategy"
    assert env["ANSIBLE_CONNECTION_PLUGINS"] == str(CONNECTION_DIR)
    assert env["ANSIBLE_SSH_CONTROL_PATH_DIR"] == "/r/cp"
    assert env["ANSIBLE_CONFIG"] == "/r/ansible.cfg"
    assert env["PATH"] == "/bin"
    assert inventory.env(Case("mix", 1, 10, 1, "local"), mitogen_strategies=Path("/m"), inventory=Path("/i"),
                         run_dir=Path("/r"), base={})["ANSIBLE_STRATEGY"] == "nspawn_linear"
