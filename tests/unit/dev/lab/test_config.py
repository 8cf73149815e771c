"""Pure logic of the lab: names, ports, inventory and config rendering, recipe hash."""
from __future__ import annotations

import configparser
from pathlib import Path

import pytest
import yaml

from ansible_nspawn_fast import plugins
from nspawn_fast_dev.lab import image, inventory
from nspawn_fast_dev.lab.config import BASE_MOUNT, HOSTILE, NOPY, NORMAL, PID2, STOPPED, TREE_PATH, USERNS, LabConfig

LAB = Path("/tmp/nf-lab")


def cfg(**kw) -> LabConfig:
    return LabConfig(lab_dir=LAB, cache_dir=Path("/tmp/nf-cache"), connection_plugins=Path("/p/connection"),
                     strategy_plugins=Path("/p/strategy"), **kw)


def test_default_shape_names_and_ports() -> None:
    hosts = cfg().host_list()
    assert [(h.name, h.port, h.group) for h in hosts] == [
        ("nf-host1", 2201, "nf_host1"), ("nf-host2", 2202, "nf_host2")]
    assert [(g.name, g.kind) for g in hosts[0].guests] == [
        ("h1-c1", NORMAL), ("h1-c2", NORMAL), ("h1-c3", NORMAL),
        ("h1-nopy", NOPY), ("h1-userns", USERNS), ("h1-stopped", STOPPED), ("h1-hostile", HOSTILE),
        ("h1-pid2", PID2)]
    assert [g.name for g in hosts[1].guests] == ["h2-c1", "h2-c2", "h2-c3"]
    assert hosts[0].tree == "h1-tree" and hosts[1].tree is None
    assert all(g.host == h.name for h in hosts for g in h.guests)


def test_special_guests_flags() -> None:
    by = {g.kind: g for g in cfg().host_list()[0].guests}
    assert not by[STOPPED].started and by[NOPY].started
    assert by[USERNS].private_users and not by[NORMAL].private_users
    assert by[PID2].started and not by[PID2].runs_systemd and by[NORMAL].runs_systemd


@pytest.mark.parametrize("kw, port_of", [
    ({}, {}),
    ({"guest_sshd": True}, {"h1-c1": 2301, "h1-c3": 2303, "h2-c1": 2304, "h2-c3": 2306}),
    ({"guest_sshd": True, "guests": 25, "guest_port_base": 3000},
     {"h1-c25": 3024, "h2-c1": 3025, "h2-c25": 3049}),
])
def test_guest_sshd_ports_unique(kw: dict, port_of: dict) -> None:
    c = cfg(**kw)
    ports = {g.name: g.sshd_port for h in c.host_list() for g in h.guests}
    for name, port in port_of.items():
        assert ports[name] == port
    given = [p for p in ports.values() if p is not None]
    assert len(given) == len(set(given))
    assert ports["h1-nopy"] is None and ports["h1-stopped"] is None
    if not kw.get("guest_sshd"):
        assert not given


@pytest.mark.parametrize("kw", [
    {"hosts": 0}, {"guests": 0}, {"hosts": 10}, {"guests": 61},
    {"host_port_base": 80}, {"host_port_base": 65535},
    {"guest_sshd": True, "host_port_base": 2301},
])
def test_bad_shapes_are_rejected(kw: dict) -> None:
    with pytest.raises(ValueError):
        cfg(**kw)


def test_shape_is_what_up_compares() -> None:
    assert cfg().shape() == cfg().shape()
    assert cfg().shape() != cfg(guests=25).shape()
    assert cfg().shape() != cfg(guest_sshd=True).shape()
    assert cfg().shape() == LabConfig(lab_dir=Path("/elsewhere")).shape()


def test_inventory_groups_and_vars() -> None:
    inv = yaml.safe_load(inventory.render_inventory(cfg()))["all"]
    v = inv["vars"]
    assert v["ansible_user"] == "root"
    assert v["ansible_ssh_private_key_file"] == str(LAB / "ssh/id_ed25519")
    assert f"UserKnownHostsFile={LAB}/ssh/known_hosts" in v["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in v["ansible_ssh_common_args"]
    ch = inv["children"]
    assert ch["lab_hosts"]["hosts"]["nf-host2"] == {
        "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 2202}
    per_host = ch["containers"]["children"]
    assert list(per_host) == ["nf_host1", "nf_host2"]
    assert list(per_host["nf_host1"]["hosts"]) == ["h1-c1", "h1-c2", "h1-c3"]
    assert per_host["nf_host2"]["hosts"]["h2-c3"] == {
        "ansible_connection": "nspawn", "ansible_host": "127.0.0.1", "ansible_port": 2202}
    assert list(ch["nopython"]["hosts"]) == ["h1-nopy"]
    assert list(ch["pid2"]["hosts"]) == ["h1-pid2"]
    assert list(ch["userns"]["hosts"]) == ["h1-userns"]
    assert list(ch["stopped"]["hosts"]) == ["h1-stopped"]
    tree = ch["trees"]["hosts"]["h1-tree"]
    assert tree["ansible_nspawn_directory"] == TREE_PATH
    assert tree["ansible_connection"] == "nspawn" and tree["ansible_port"] == 2201
    assert "sshd_guests" not in ch


def test_inventory_sshd_guests() -> None:
    ch = yaml.safe_load(inventory.render_inventory(cfg(guest_sshd=True)))["all"]["children"]
    hosts = ch["sshd_guests"]["hosts"]
    assert len(hosts) == 6
    assert hosts["ssh-h2-c1"] == {"ansible_connection": "ssh", "ansible_host": "127.0.0.1",
                                  "ansible_port": 2304}


def test_ansible_cfg() -> None:
    cp = configparser.ConfigParser()
    cp.read_string(inventory.render_ansible_cfg(cfg()))
    d = cp["defaults"]
    assert d["inventory"] == str(LAB / "inventory.yml")
    assert d["connection_plugins"] == "/p/connection"
    assert d["strategy_plugins"] == "/p/strategy"
    assert d["library"] == str(plugins.MODULES_DIR)
    assert d["forks"] == "10" and d["interpreter_python"] == "/usr/bin/python3"
    assert d["host_key_checking"] == "True"
    assert cp["ssh_connection"]["control_path_dir"] == str(LAB / "cp")


def test_default_plugin_dirs_are_the_installed_packages() -> None:
    assert (LabConfig().connection_plugins / "nspawn.py").is_file()
    assert (LabConfig().strategy_plugins / "nspawn_linear.py").is_file()
    assert LabConfig().connection_plugins == Path(plugins.__file__).parent / "connection"


def test_known_hosts_lines() -> None:
    keys = ["ssh-ed25519 AAAAC3", "ecdsa-sha2-nistp256 AAAAE2"]
    text = inventory.render_known_hosts(cfg(guest_sshd=True), keys)
    lines = text.splitlines()
    assert "[127.0.0.1]:2201 ssh-ed25519 AAAAC3" in lines
    assert "[127.0.0.1]:2306 ecdsa-sha2-nistp256 AAAAE2" in lines
    assert len(lines) == (2 + 6) * 2


def test_lab_description() -> None:
    d = inventory.lab_description(cfg(), "abc")
    h1, h2 = d["hosts"]
    assert d["image"] == "abc" and d["key"] == str(LAB / "ssh/id_ed25519")
    assert h1["guests"] == ["h1-c1", "h1-c2", "h1-c3"]
    assert h1["special"] == {"nopy": "h1-nopy", "userns": "h1-userns", "stopped": "h1-stopped",
                             "hostile": "h1-hostile", "pid2": "h1-pid2"}
    assert d["base"] == BASE_MOUNT
    assert h1["tree"] == {"name": "h1-tree", "path": TREE_PATH}
    assert h2["special"] == {} and h2["tree"] is None


def test_recipe_hash_follows_the_recipe() -> None:
    base = dict(image.RECIPE)
    assert image.recipe_hash(base) == image.recipe_hash(dict(base))
    changed = {**base, "include": [*base["include"], "curl"]}
    assert image.recipe_hash(changed) != image.recipe_hash(base)
    assert image.recipe_hash({**base, "suite": "trixie"}) != image.recipe_hash(base)
    assert image.image_dir(Path("/c"), changed) == Path("/c") / image.recipe_hash(changed)


def test_nspawn_settings() -> None:
    from nspawn_fast_dev.lab.guests import nspawn_settings
    by = {g.kind: g for g in cfg().host_list()[0].guests}
    assert "PrivateUsers=no" in nspawn_settings(by[NORMAL])
    assert "PrivateUsers=pick" in nspawn_settings(by[USERNS])
    assert "VirtualEthernet=no" in nspawn_settings(by[USERNS])
    # no systemd in the pid2 guest: its script as PID 2 under nspawn's stub init
    pid2 = nspawn_settings(by[PID2])
    assert "Boot=no\nProcessTwo=yes\nParameters=/usr/local/sbin/lab-app\n" in pid2
    assert "Boot=" not in nspawn_settings(by[NORMAL])
