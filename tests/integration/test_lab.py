"""The lab itself, checked from the outside with real ssh, machinectl and nsenter."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from conftest import LAB_DIR, guest_sh, host_sh, nspawn_fast, ssh_argv, up_args


def _host1(lab: dict[str, Any]) -> dict[str, Any]:
    return lab["hosts"][0]


def test_ssh_to_each_host(lab: dict[str, Any]) -> None:
    for h in lab["hosts"]:
        cp = host_sh(lab, h, "hostname; systemctl is-system-running; systemctl --failed --no-legend --plain")
        assert cp.stdout.splitlines()[:2] == [h["name"], "running"], f"{h['name']}:\n{cp.stdout}"


def test_machinectl_lists_running_guests(lab: dict[str, Any]) -> None:
    for h in lab["hosts"]:
        out = host_sh(lab, h, "machinectl list --no-legend --no-pager").stdout
        running = {ln.split()[0] for ln in out.splitlines() if ln.strip()}
        want = set(h["guests"]) | {v for k, v in h["special"].items() if k != "stopped"}
        assert running == want


def test_nsenter_runs_python3_in_each_guest(lab: dict[str, Any]) -> None:
    for h in lab["hosts"]:
        for g in h["guests"]:
            cp = guest_sh(lab, h, g, "python3 -c 'import socket; print(socket.gethostname())'; "
                                     "systemctl is-system-running")
            assert cp.stdout.split() == [g, "running"], cp.stdout


def test_userns_guest_has_shifted_uids(lab: dict[str, Any]) -> None:
    h = _host1(lab)
    g = h["special"]["userns"]
    uid_map = host_sh(lab, h, f"cat /proc/$(machinectl show -p Leader --value {g})/uid_map")
    inside, outside, count = uid_map.stdout.split()
    assert inside == "0" and int(outside) > 0 and int(count) == 65536
    cp = guest_sh(lab, h, g, "id -u; hostname; python3 -c 'print(1)'")
    assert cp.stdout.split() == ["0", g, "1"]


def test_nopy_guest_has_no_python3(lab: dict[str, Any]) -> None:
    h = _host1(lab)
    g = h["special"]["nopy"]
    cp = guest_sh(lab, h, g, "hostname; ls /usr/bin/python3* 2>/dev/null; "
                             "command -v python3 || echo none")
    assert cp.stdout.split() == [g, "none"]


def test_stopped_guest_is_an_image_only(lab: dict[str, Any]) -> None:
    h = _host1(lab)
    g = h["special"]["stopped"]
    cp = host_sh(lab, h, "machinectl list --no-legend; echo ---; "
                         "machinectl list-images --no-legend")
    running, _, images = cp.stdout.partition("---")
    assert g not in running.split()
    assert g in images.split()


def test_tree_runs_with_nspawn_directory_mode(lab: dict[str, Any]) -> None:
    h = _host1(lab)
    tree = h["tree"]["path"]
    cp = host_sh(lab, h, f"systemd-nspawn -q --register=no --pipe -D {tree} -- "
                         "python3 -c 'print(open(\"/etc/hostname\").read().strip())'; "
                         f"machinectl list --no-legend")
    assert cp.stdout.split()[0] == h["tree"]["name"]
    assert "buildroot" not in cp.stdout  # not a running machine afterwards


def test_guest_sshd_when_enabled(lab: dict[str, Any]) -> None:
    ports = {g: p for h in lab["hosts"] for g, p in h["guest_sshd_ports"].items()}
    if not lab["shape"]["guest_sshd"]:
        assert ports == {}
        return
    for g, p in ports.items():
        cp = subprocess.run([*ssh_argv(lab, p), "hostname"], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
        assert cp.stdout.strip() == g, cp.stderr


def test_ansible_uses_the_lab_config_as_is(lab: dict[str, Any]) -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": lab["ansible_cfg"]}
    bindir = os.path.dirname(sys.executable)
    inv = subprocess.run([f"{bindir}/ansible-inventory", "--list"], env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    groups = json.loads(inv.stdout)
    for name in ("containers", "lab_hosts", "nopython", "userns", "stopped", "trees"):
        assert name in groups, name
    assert set(groups["nf_host1"]["hosts"]) == set(lab["hosts"][0]["guests"])
    ping = subprocess.run([f"{bindir}/ansible", "lab_hosts", "-m", "ping"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count("SUCCESS") == len(lab["hosts"])


def test_status_lists_everything(lab: dict[str, Any]) -> None:
    cp = nspawn_fast("lab", "status", "--dir", str(LAB_DIR))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    for h in lab["hosts"]:
        assert f"{h['name']}" in cp.stdout and f"127.0.0.1:{h['port']}" in cp.stdout
        for g in h["guests"]:
            assert any(line.split()[:3] == [g, "normal", "running"]
                       for line in cp.stdout.splitlines() if line.strip())
    assert "h1-stopped     stopped  stopped" in cp.stdout


def test_up_twice_is_safe(lab: dict[str, Any]) -> None:
    before = json.loads((LAB_DIR / "state.json").read_text())["hosts"]
    cp = nspawn_fast(*up_args())
    assert cp.returncode == 0, cp.stderr
    assert "reusing it" in cp.stderr
    after = json.loads((LAB_DIR / "state.json").read_text())["hosts"]
    assert {n: h["pid"] for n, h in after.items()} == {n: h["pid"] for n, h in before.items()}
    test_machinectl_lists_running_guests(lab)
