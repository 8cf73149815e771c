"""The `nspawn` inventory plugin against the lab: real ansible-inventory and ansible, real ssh.

The lab's hosts (nf-host1, nf-host2) run guests named h1-*/h2-*; h1-stopped is an image
that is not running. A third host on a port nothing listens on stands for a host that is down.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml
from conftest import host_sh

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOWN_PORT = 2299  # nothing listens here (as in test_connection.py)


def run(lab: dict, tool: str, *args: str, env: dict | None = None, timeout: int = 120):
    full = {**os.environ, "ANSIBLE_CONFIG": lab["ansible_cfg"], "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_INVENTORY_PLUGINS": str(REPO / "inventory_plugins"),
            # A source the plugin cannot parse fails the command instead of being skipped.
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1", **(env or {})}
    start = time.monotonic()
    proc = subprocess.run([str(BIN / tool), *args], env=full, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    proc.seconds = time.monotonic() - start  # type: ignore[attr-defined]
    proc.output = proc.stdout + proc.stderr  # type: ignore[attr-defined]
    return proc


def ssh_settings(lab: dict) -> dict:
    return {"user": "root", "private_key_file": lab["key"],
            "ssh_common_args": f"-o UserKnownHostsFile={lab['known_hosts']} "
                               "-o StrictHostKeyChecking=yes"}


def lab_hosts(lab: dict) -> list[dict]:
    return [{"name": "127.0.0.1", "port": h["port"], "alias": h["name"], **ssh_settings(lab)}
            for h in lab["hosts"]]


def config(tmp_path: Path, lab: dict, name: str = "lab.nspawn.yml", hosts=None, **options) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"plugin": "nspawn",
                                    "hosts": lab_hosts(lab) if hosts is None else hosts,
                                    **options}))
    return str(path)


def with_down_host(lab: dict) -> list[dict]:
    return lab_hosts(lab) + [{"name": "127.0.0.1", "port": DOWN_PORT, "alias": "nf-down",
                              **ssh_settings(lab)}]


def unwrap(value):
    """ansible-inventory --list writes inventory data as {"__ansible_unsafe": value}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def listed(proc) -> dict:
    assert proc.returncode == 0, proc.output[-4000:]
    return unwrap(json.loads(proc.stdout))


def members(data: dict, group: str) -> set[str]:
    return set(data.get(group, {}).get("hosts", []))


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_list_and_graph_every_machine_of_both_hosts_and_warn_of_the_down_host(lab, tmp_path):
    host1, host2 = lab["hosts"]
    special = host1["special"]
    cfg = config(tmp_path, lab, hosts=with_down_host(lab), os_pretty_name=True)
    proc = run(lab, "ansible-inventory", "-i", cfg, "--list")
    data = listed(proc)
    hostvars = data["_meta"]["hostvars"]
    running = set(host1["guests"]) | {special["nopy"], special["userns"], special["hostile"], special["pid2"]}
    expected = running | {special["stopped"]} | set(host2["guests"])
    assert expected <= set(hostvars), sorted(hostvars)
    # the host that is down: a warning naming it and ssh's error, not a failed inventory
    err = one_line(proc.stderr)
    assert re.search(r"cannot list the machines of host nf-down \(root@127\.0\.0\.1:2299\): "
                     r"ssh: connect to host 127\.0\.0\.1 port 2299: Connection refused", err), err

    c1 = hostvars[host1["guests"][0]]
    assert c1["ansible_connection"] == "nspawn" and c1["ansible_host"] == "127.0.0.1"
    assert c1["ansible_port"] == host1["port"] and c1["ansible_user"] == "root"
    assert c1["ansible_ssh_private_key_file"] == lab["key"]
    assert c1["ansible_nspawn_container"] == host1["guests"][0]
    assert (c1["nspawn_host"], c1["nspawn_state"], c1["nspawn_class"]) == (
        "nf-host1", "running", "container")
    assert (c1["nspawn_os_id"], c1["nspawn_os_version"]) == ("debian", "12")
    assert c1["nspawn_os_pretty_name"].startswith("Debian GNU/Linux 12")
    assert c1["nspawn_image_type"] == "directory"
    stopped = hostvars[special["stopped"]]
    assert stopped["nspawn_state"] == "stopped" and stopped["ansible_connection"] == "nspawn"
    assert stopped["ansible_nspawn_container"] == special["stopped"]
    assert hostvars[host2["guests"][0]]["ansible_port"] == host2["port"]

    assert members(data, "nspawn_host_nf_host1") == running | {special["stopped"]}
    assert members(data, "nspawn_host_nf_host2") == set(host2["guests"])
    assert members(data, "nspawn_stopped") == {special["stopped"]}
    assert members(data, "nspawn_running") == running | set(host2["guests"])
    assert members(data, "nspawn_os_debian") == running | set(host2["guests"])
    assert members(data, "nspawn_class_container") == running | set(host2["guests"])

    graph = run(lab, "ansible-inventory", "-i", cfg, "--graph")
    assert graph.returncode == 0, graph.output[-3000:]
    assert graph_members(graph.stdout, "nspawn_stopped") == {special["stopped"]}, graph.stdout
    # every guest of the lab's shape (3 by default, 25 with `lab up --guests 25`)
    assert graph_members(graph.stdout, "nspawn_host_nf_host2") == set(host2["guests"]), graph.stdout
    assert "nf-down" in graph.stderr


def graph_members(graph: str, group: str) -> set[str]:
    """The hosts `ansible-inventory --graph` shows right under `@group:` (a child of @all)."""
    lines = graph.splitlines()
    start = lines.index(f"  |--@{group}:") + 1
    found = set()
    for line in lines[start:]:
        if not line.startswith("  |  |--"):
            break
        found.add(line[len("  |  |--"):])
    return found


def fan_out(proc) -> tuple[list[float], float]:
    """-vvv: each host's round trip, and the whole fan-out."""
    assert proc.returncode == 0, proc.output[-3000:]
    per_host = [float(s) for s in re.findall(r"machines in ([0-9.]+) s", proc.output)]
    total = float(re.search(r"hosts asked in parallel in ([0-9.]+) s", proc.output).group(1))
    return per_host, total


def test_listing_the_lab_is_fast_and_hosts_are_asked_in_parallel(lab, tmp_path):
    cfg = config(tmp_path, lab)
    run(lab, "ansible-inventory", "-i", cfg, "--list")  # warm (ControlMaster)
    proc = run(lab, "ansible-inventory", "-vvv", "-i", cfg, "--list", "--output",
               str(tmp_path / "out.json"))
    per_host, total = fan_out(proc)
    assert len(per_host) == 2 and total < 2.0, proc.output[-2000:]
    assert proc.seconds < 10  # the whole ansible-inventory, even on a loaded machine
    # 8 hosts (each lab host 4 times, under other aliases), each with a new SSH session:
    # asked one after another, the fan-out would take the sum of their round trips.
    many = [{**h, "alias": f"{h['alias']}-{i}"} for i in range(4) for h in lab_hosts(lab)]
    cfg = config(tmp_path, lab, "many.nspawn.yml", hosts=many, ssh_args="",
                 name_template="{{ machine }}-{{ host }}")
    per_host, total = fan_out(run(lab, "ansible-inventory", "-vvv", "-i", cfg, "--list",
                                  "--output", str(tmp_path / "many.json")))
    assert len(per_host) == 8
    assert total < 0.6 * sum(per_host), (total, per_host)


def test_collision_with_the_default_template_is_a_warning_and_a_host_suffix(lab, tmp_path):
    """The same host listed twice (two aliases): every machine name is taken once already."""
    host1 = lab["hosts"][0]
    twice = lab_hosts(lab)[:1] + [{**lab_hosts(lab)[0], "alias": "again.example"}]
    data = listed(proc := run(lab, "ansible-inventory", "-i", config(tmp_path, lab, hosts=twice),
                              "--list"))
    hostvars = data["_meta"]["hostvars"]
    for guest in host1["guests"]:
        assert hostvars[guest]["nspawn_host"] == "nf-host1"
        assert hostvars[f"{guest}-again"]["nspawn_host"] == "again.example"
        assert hostvars[f"{guest}-again"]["ansible_nspawn_container"] == guest
    assert (f"machine {host1['guests'][0]} is on host nf-host1 and on host again.example: the "
            f"one on again.example is listed as {host1['guests'][0]}-again") in one_line(proc.stderr)


def test_the_same_machine_name_on_both_hosts_is_listed_twice_under_two_names(lab, tmp_path):
    """A real collision across hosts: an image of one name on each lab host (an empty directory
    in /var/lib/machines is an image machined lists, stopped)."""
    host1, host2 = lab["hosts"]
    twin = "nf-t-twin"
    try:
        for host in (host1, host2):
            host_sh(lab, host, f"mkdir -p /var/lib/machines/{twin}")
        proc = run(lab, "ansible-inventory", "-i", config(tmp_path, lab), "--list")
        hostvars = listed(proc)["_meta"]["hostvars"]
        first, second = hostvars[twin], hostvars[f"{twin}-{host2['name']}"]
        assert (first["nspawn_host"], first["ansible_port"]) == (host1["name"], host1["port"])
        assert (second["nspawn_host"], second["ansible_port"]) == (host2["name"], host2["port"])
        assert first["ansible_nspawn_container"] == second["ansible_nspawn_container"] == twin
        assert first["nspawn_state"] == second["nspawn_state"] == "stopped"
        assert (f"machine {twin} is on host {host1['name']} and on host {host2['name']}: the one on "
                f"{host2['name']} is listed as {twin}-{host2['name']}") in one_line(proc.stderr), proc.stderr
    finally:
        for host in (host1, host2):
            host_sh(lab, host, f"rmdir /var/lib/machines/{twin} 2>/dev/null; true")


def test_collision_from_name_template_fails_naming_both_hosts(lab, tmp_path):
    colliding = config(tmp_path, lab, "collide.nspawn.yml",
                       name_template="{{ machine | regex_replace('^h[0-9]-', '') }}")
    proc = run(lab, "ansible-inventory", "-i", colliding, "--list")
    assert proc.returncode != 0, proc.output[-3000:]
    err = one_line(proc.stderr)
    assert ("name_template gives 'c1' for machine h1-c1 on host nf-host1 and for machine h2-c1 "
            "on host nf-host2") in err, err
    assert "{{ machine }}-{{ host }}" in err
    # the documented fix
    fixed = config(tmp_path, lab, "fixed.nspawn.yml",
                   name_template="{{ machine | regex_replace('^h[0-9]-', '') }}-{{ host }}")
    hostvars = listed(run(lab, "ansible-inventory", "-i", fixed, "--list"))["_meta"]["hostvars"]
    assert hostvars["c1-nf-host1"]["ansible_nspawn_container"] == "h1-c1"
    assert hostvars["c1-nf-host2"]["ansible_nspawn_container"] == "h2-c1"
    assert hostvars["c1-nf-host2"]["ansible_port"] == lab["hosts"][1]["port"]


def test_keyed_groups_compose_and_groups(lab, tmp_path):
    host1 = lab["hosts"][0]
    cfg = config(tmp_path, lab, include_stopped=False,
                 keyed_groups=[{"key": "nspawn_os_id ~ '_' ~ nspawn_os_version", "prefix": "os"},
                               {"key": "nspawn_host", "prefix": "on"}],
                 compose={"container_fqdn": "ansible_nspawn_container ~ '.' ~ nspawn_host",
                          "ansible_pipelining": "true"},
                 groups={"without_python": "'nopy' in ansible_nspawn_container"})
    data = listed(run(lab, "ansible-inventory", "-i", cfg, "--list"))
    every = set(data["_meta"]["hostvars"])
    assert host1["special"]["stopped"] not in every  # include_stopped: false
    assert members(data, "os_debian_12") == every
    assert members(data, "on_nf_host1") | members(data, "on_nf_host2") == every
    assert members(data, "without_python") == {host1["special"]["nopy"]}
    c1 = data["_meta"]["hostvars"][host1["guests"][0]]
    # without os_pretty_name: the OS from `machinectl list`, no PRETTY_NAME
    assert (c1["nspawn_os_id"], c1["nspawn_os_version"], c1["nspawn_os_pretty_name"]) == ("debian", "12", None)
    assert c1["container_fqdn"] == f"{host1['guests'][0]}.nf-host1"
    assert c1["ansible_pipelining"] is True


def test_hosts_from_a_group_of_the_lab_inventory(lab, tmp_path):
    cfg = config(tmp_path, lab, hosts=[], hosts_from_group="lab_hosts",
                 name_template="{{ machine }}-{{ host }}")
    data = listed(run(lab, "ansible-inventory", "-i", lab["inventory"], "-i", cfg, "--list"))
    hostvars = data["_meta"]["hostvars"]
    for host in lab["hosts"]:
        name = f"{host['guests'][0]}-{host['name']}"
        assert hostvars[name]["ansible_port"] == host["port"], name
        assert hostvars[name]["ansible_nspawn_container"] == host["guests"][0]
        assert hostvars[name]["ansible_ssh_private_key_file"] == lab["key"]
        assert name in members(data, f"nspawn_host_{host['group']}")


def test_ping_through_the_discovered_inventory(lab, tmp_path):
    """Real modules in every running machine, through the plugin's hosts and ansible_connection
    nspawn; the stopped image is UNREACHABLE with the connection's own message."""
    host1, host2 = lab["hosts"]
    cfg = config(tmp_path, lab, hosts=with_down_host(lab))
    proc = run(lab, "ansible", "-i", cfg, "nspawn_running:nspawn_stopped", "-m", "ansible.builtin.ping",
               env={"ANSIBLE_INVENTORY_ENABLED": "nspawn,host_list,script,auto,yaml,ini,toml"})
    result = dict(re.findall(r"^(\S+) \| (SUCCESS|FAILED!?|UNREACHABLE!?)", proc.stdout, re.M))
    # h1-pid2 runs no systemd (nspawn's stub init and a script): entered as it is
    for name in [*host1["guests"], *host2["guests"], host1["special"]["userns"], host1["special"]["pid2"]]:
        assert result.get(name) == "SUCCESS", f"{name}: {proc.output[-4000:]}"
    assert result.get(host1["special"]["nopy"], "").startswith("FAILED")  # no python in it
    assert result.get(host1["special"]["stopped"], "").startswith("UNREACHABLE")
    assert f"container {host1['special']['stopped']} on host 127.0.0.1 is not running" in proc.output
    assert "nf-down" in proc.stderr and "Traceback" not in proc.output
