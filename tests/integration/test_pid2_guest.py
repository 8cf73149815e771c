"""Containers without systemd. The lab's h1-pid2 (nspawn's stub init as PID 1, a shell script as
PID 2, started with ProcessTwo=yes): entered on both paths with no readiness protocol to ask,
stopped and waited for by `nspawn-fast stop` (the inventory plugin lists it:
test_inventory_plugin.py pings it through the discovered inventory). And a shell script as
PID 1 without systemctl, made by the nspawn_machine module: found by the inventory plugin,
entered on both paths, stopped by the module with SIGTERM and waited for, then removed.

A short boot timeout makes a wait that cannot end fail in seconds, not minutes.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import guest_sh, host_sh

from nspawn_fast_dev.lab.guests import APP_STARTED

BIN = Path(sys.executable).parent
BOOT_TIMEOUT = "15"
PLAY = """
- hosts: pid2
  gather_facts: false
  tasks:
    - name: PID 1 is nspawn's stub init, no systemd
      ansible.builtin.command: cat /proc/1/comm
      register: init
      changed_when: false
    - name: A module that writes a file (a later task of the same play, the cached leader)
      ansible.builtin.copy:
        content: "{{ marker }}\\n"
        dest: /tmp/nf-pid2-test
        mode: "0644"
    - name: Read it back
      ansible.builtin.slurp:
        src: /tmp/nf-pid2-test
      register: back
    - name: Report
      ansible.builtin.debug:
        msg: "INIT={{ init.stdout }} BACK={{ back.content | b64decode | trim }}"
"""


def pid2(lab):
    host = lab["hosts"][0]
    return host, host["special"]["pid2"]


def run_playbook(lab, tmp_path, strategy, marker):
    book = tmp_path / "pid2.yml"
    book.write_text(PLAY)
    env = {**os.environ, "ANSIBLE_CONFIG": lab["ansible_cfg"], "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_DEPRECATION_WARNINGS": "0", "ANSIBLE_STRATEGY": strategy}
    return subprocess.run([str(BIN / "ansible-playbook"), str(book), "-e", f"marker={marker}",
                           "-e", f"ansible_nspawn_boot_timeout={BOOT_TIMEOUT}"],
                          env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("strategy", ["linear", "nspawn_linear"])
def test_a_container_without_systemd_is_entered_as_it_is(lab, tmp_path, strategy):
    host, name = pid2(lab)
    marker = f"written-under-{strategy}"
    guest_sh(lab, host, name, "rm -f /tmp/nf-pid2-test")
    t0 = time.monotonic()
    proc = run_playbook(lab, tmp_path, strategy, marker)
    took = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert f"INIT=(sd-stubinit) BACK={marker}" in out, out[-3000:]
    assert re.search(rf"^{re.escape(name)}\s+: ok=4\s+changed=1\s+unreachable=0\s+failed=0\s", out, re.M), out[-2000:]
    assert took < 60, f"{took:.0f} s: something waited for a readiness that never comes"
    # really inside that container: its own /tmp
    assert guest_sh(lab, host, name, "cat /tmp/nf-pid2-test").stdout.strip() == marker
    assert host_sh(lab, host, "test -e /tmp/nf-pid2-test", check=False).returncode != 0


def test_nspawn_fast_stop_powers_it_off_and_waits_for_its_leader(lab):
    host, name = pid2(lab)
    leader = host_sh(lab, host, f"machinectl show -p Leader --value {name}").stdout.strip()
    assert leader.isdigit()
    try:
        cp = subprocess.run(
            [sys.executable, "-m", "ansible_nspawn_fast.cli", "stop", "--timeout", "20", "--ssh-args",
             f"-i {lab['key']} -o UserKnownHostsFile={lab['known_hosts']} -o StrictHostKeyChecking=yes "
             "-o BatchMode=yes", f"root@127.0.0.1:{host['port']}:{name}"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert cp.returncode == 0, cp.stderr
        # the stub init ignores SIGTERM: machined's poweroff is what it handles
        assert f"{name} stopped (poweroff" in cp.stderr, cp.stderr
        # when stop returns, that leader has exited and machined no longer lists the machine
        gone = host_sh(lab, host, f"test -e /proc/{leader} && echo alive; machinectl show {name} >/dev/null 2>&1 "
                                  "&& echo listed; true").stdout
        assert gone.strip() == "", gone
    finally:
        start_again(lab, host, name)


def start_again(lab, host, name):
    host_sh(lab, host, f"machinectl start {name}")
    deadline = time.monotonic() + 30
    while guest_sh(lab, host, name, f"test -s {APP_STARTED}", check=False).returncode != 0:
        assert time.monotonic() < deadline, f"{name} did not start again"
        time.sleep(0.3)


# --- a shell script as PID 1 (no stub init, no systemd, no systemctl), made by nspawn_machine --
SCRIPT_MACHINE = "nf-t-script"  # removed at the end (test_fleet.py's cleanup also finds nf-t-*)
SCRIPT_INIT = "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"
SCRIPT_PLAY = """
- hosts: nf-t-script
  gather_facts: false
  tasks:
    - name: PID 1 is the script's shell, and there is no systemctl to ask
      ansible.builtin.shell: "cat /proc/1/comm; command -v systemctl || echo no-systemctl"
      register: init
      changed_when: false
    - name: A module that writes a file
      ansible.builtin.copy:
        content: "{{ marker }}\\n"
        dest: /tmp/nf-script-test
        mode: "0644"
    - name: Report
      ansible.builtin.debug:
        msg: "INIT={{ init.stdout_lines | join(',') }} STATE={{ nspawn_state }} OS={{ nspawn_os_id }}"
"""


def ansible(lab, tool, *args, strategy="linear"):
    env = {**os.environ, "ANSIBLE_CONFIG": lab["ansible_cfg"], "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_DEPRECATION_WARNINGS": "0", "ANSIBLE_STRATEGY": strategy}
    proc = subprocess.run([str(BIN / tool), *args], env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    proc.output = proc.stdout + proc.stderr  # type: ignore[attr-defined]
    return proc


def machine(lab, host, state, **options):
    args = json.dumps({"name": SCRIPT_MACHINE, "state": state, **options})
    return ansible(lab, "ansible", host["name"], "-m", "nspawn_machine", "-a", args)


def test_a_script_init_made_by_the_module_is_listed_entered_and_stopped_with_sigterm(lab, tmp_path):
    host = lab["hosts"][1]
    machine(lab, host, "absent")  # what an interrupted run left
    try:
        made = machine(lab, host, "started", overlay={"lower": [lab["base"]]}, private_users=False,
                       network={"mode": "host"}, boot=False, command=["/bin/sh", "-c", SCRIPT_INIT],
                       enabled=True)
        assert made.returncode == 0, made.output[-3000:]
        unit = f"systemd-nspawn@{SCRIPT_MACHINE}.service"
        assert host_sh(lab, host, f"systemctl is-enabled {unit}").stdout == "enabled\n"
        # no systemctl in it: a whiteout in its own upper dir (the base keeps it)
        host_sh(lab, host, f"rm /var/lib/machines/{SCRIPT_MACHINE}/usr/bin/systemctl")
        inventory = tmp_path / "script.nspawn.yml"
        inventory.write_text("plugin: nspawn\nhosts_from_group: lab_hosts\ninclude_stopped: false\n")
        book = tmp_path / "script.yml"
        book.write_text(SCRIPT_PLAY)
        for strategy in ("linear", "nspawn_linear"):
            proc = ansible(lab, "ansible-playbook", "-i", lab["inventory"], "-i", str(inventory), str(book),
                           "-e", f"marker=by-{strategy}", "-e", f"ansible_nspawn_boot_timeout={BOOT_TIMEOUT}",
                           strategy=strategy)
            assert proc.returncode == 0, proc.output[-4000:]
            assert "INIT=sh,no-systemctl STATE=running OS=debian" in proc.output, proc.output[-3000:]
            assert guest_sh(lab, host, SCRIPT_MACHINE, "cat /tmp/nf-script-test").stdout == f"by-{strategy}\n"

        leader = host_sh(lab, host, f"machinectl show -p Leader --value {SCRIPT_MACHINE}").stdout.strip()
        stop = machine(lab, host, "stopped", timeout=20)
        assert stop.returncode == 0 and "stopped (SIGTERM to its leader" in stop.output, stop.output[-3000:]
        # when the task returns, the leader has exited and machined no longer lists the machine
        gone = host_sh(lab, host, f"test -e /proc/{leader} && echo alive; machinectl show {SCRIPT_MACHINE} "
                                  ">/dev/null 2>&1 && echo listed; true").stdout
        assert gone.strip() == "", gone
        again = machine(lab, host, "stopped", timeout=20)
        assert again.returncode == 0 and '"changed": false' in again.output, again.output[-3000:]
    finally:
        gone = machine(lab, host, "absent")
    assert gone.returncode == 0, gone.output[-3000:]
    assert host_sh(lab, host, f"ls -d /var/lib/machines/{SCRIPT_MACHINE} /etc/systemd/nspawn/{SCRIPT_MACHINE}.nspawn "
                              f"/var/lib/machines/.overlay/{SCRIPT_MACHINE} /etc/systemd/system/machines.target.wants/"
                              f"systemd-nspawn@{SCRIPT_MACHINE}.service 2>/dev/null; true").stdout == ""
