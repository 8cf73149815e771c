"""The fleet example (examples/fleet/) and the nspawn_machine module against the lab: real
ansible-playbook, plain ssh to the hosts, the nspawn inventory plugin, nspawn_linear.

Everything these tests make on the hosts is named fleet-* or nf-t-* and removed at the end.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import guest_sh, host_sh

REPO = Path(__file__).resolve().parents[2]
FLEET = REPO / "examples" / "fleet"
BIN = Path(sys.executable).parent
SIZE = 2  # containers per host
PROVISION = "Containers over the shared base, sharing the host's network"
# What a host holds of machines: machined's lists, the machines dir, settings and units.
SNAPSHOT = """
machinectl list --no-legend --no-pager | awk '{print "running", $1}'
machinectl list-images --no-legend --no-pager | awk '{print "image", $1}'
for d in /var/lib/machines /var/lib/machines/.overlay /etc/systemd/nspawn; do
  [ -d "$d" ] && ls -A "$d" | sed "s|^|$d/|"
done
find /etc/systemd/system /run/systemd/system -name '*fleet*' -o -name '*nf?t?*' 2>/dev/null
true
"""


def run(lab, *args, tool="ansible-playbook", timeout=600):
    env = {**os.environ, "ANSIBLE_CONFIG": lab["ansible_cfg"], "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_DEPRECATION_WARNINGS": "0"}
    proc = subprocess.run([str(BIN / tool), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    proc.output = proc.stdout + proc.stderr  # type: ignore[attr-defined]
    return proc


def fleet(lab, *extra):
    return run(lab, "-i", lab["inventory"], "-i", str(FLEET / "fleet.nspawn.yml"), str(FLEET / "fleet.yml"),
               "-e", f"fleet_size={SIZE}", "-e", f"fleet_base={lab['base']}", *extra)


def recap(output):
    return {host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
            for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M)}


def task_results(output, task):
    """The result lines ('ok: [...]', 'changed: [...]') of one task."""
    section = output.split(f"TASK [{task}]", 1)[1].split("\nTASK [", 1)[0].split("\nPLAY ", 1)[0]
    return [line for line in section.splitlines() if re.match(r"^(ok|changed|failed|skipping|fatal):", line)]


def names(lab):
    return {h["name"]: [f"fleet-{h['name']}-{i}" for i in range(1, SIZE + 1)] for h in lab["hosts"]}


def snapshot(lab):
    return {h["name"]: host_sh(lab, h, SNAPSHOT).stdout for h in lab["hosts"]}


def ours(text):
    return [line for line in text.splitlines() if "fleet-" in line or "nf-t-" in line]


def remove_all(lab):
    """Whatever an earlier, interrupted run left: every fleet-*/nf-t-* machine, with the module."""
    for h in lab["hosts"]:
        left = host_sh(lab, h, "machinectl list-images --no-legend | awk '{print $1}' | grep -E '^(fleet|nf-t)-'; "
                               "rmdir /var/lib/machines/.overlay 2>/dev/null; true").stdout.split()
        for name in left:
            host_sh(lab, h, f"machinectl terminate {name} 2>/dev/null; true")
            run(lab, h["name"], "-m", "nspawn_machine", "-a", f"name={name} state=absent", tool="ansible")
        if left:
            host_sh(lab, h, "rmdir /var/lib/machines/.overlay 2>/dev/null; true")  # only when empty


@pytest.fixture
def clean(lab):
    remove_all(lab)
    yield
    remove_all(lab)


def test_fleet_check_mode_reports_and_changes_nothing(lab, clean):
    before = snapshot(lab)
    proc = fleet(lab, "--check")
    assert proc.returncode == 0, proc.output[-4000:]
    counts = recap(proc.output)
    for host in lab["hosts"]:
        # it says what it would do: create and start, stop (absent has nothing to remove yet)
        assert counts[host["name"]]["changed"] == 2, proc.output[-3000:]
    assert "changed: [nf-host1] => (item=1)" in task_results(proc.output, PROVISION)
    assert snapshot(lab) == before


def test_fleet_provision_configure_then_again_with_teardown_provisioning_unchanged(lab, clean):
    # Run 1: make and configure them, keep them.
    proc = fleet(lab, "-e", "fleet_teardown=false")
    assert proc.returncode == 0, proc.output[-5000:]
    counts = recap(proc.output)
    for host, machines in names(lab).items():
        assert counts[host]["changed"] == 1 and counts[host]["failed"] == 0, proc.output[-3000:]
        for name in machines:  # found by the inventory plugin after refresh_inventory, configured
            assert counts.get(name, {}).get("changed") == 1, f"{name}: {proc.output[-3000:]}"
    host1 = lab["hosts"][0]
    first = names(lab)[host1["name"]][0]
    role = guest_sh(lab, host1, first, "cat /etc/fleet-role").stdout
    assert f"machine={first}\nhost={host1['name']}\n" in role
    assert host_sh(lab, host1, "test -e /etc/fleet-role", check=False).returncode != 0
    # an overlay: the base is untouched, the container's change is in its own upper dir
    assert host_sh(lab, host1, f"test -e {lab['base']}/etc/fleet-role", check=False).returncode != 0
    assert host_sh(lab, host1, f"test -f /var/lib/machines/.overlay/{first}/upper/etc/fleet-role",
                   check=False).returncode == 0
    running = host_sh(lab, host1, "machinectl list --no-legend").stdout.split()
    assert set(names(lab)[host1["name"]]) <= set(running)

    # Run 2: the whole example (provision, refresh, configure, stop, remove): nothing to
    # provision or configure, so the hosts' only changes are stopping and removing.
    proc = fleet(lab)
    assert proc.returncode == 0, proc.output[-5000:]
    counts = recap(proc.output)
    provision = task_results(proc.output, PROVISION)
    assert len(provision) == 2 * SIZE and all(line.startswith("ok:") for line in provision), provision
    for host, machines in names(lab).items():
        assert counts[host]["changed"] == 2, proc.output[-3000:]  # stop, remove
        for name in machines:
            assert counts[name]["changed"] == 0 and counts[name]["ok"] == 3, proc.output[-3000:]
    assert not [line for text in snapshot(lab).values() for line in ours(text)]


SOURCES = """
- hosts: nf-host1
  gather_facts: false
  vars:
    machines:
      - {name: nf-t-tar, image: /tmp/nf-t-src.tar}
      - {name: nf-t-raw, image: /tmp/nf-t-src.raw}
      - {name: nf-t-dir, directory: /tmp/nf-t-src}
      - {name: nf-t-clone, clone: nf-t-tar}
  tasks:
    - name: A small tree with symlinks out of it (to the host's /etc), as tar, raw and directory
      ansible.builtin.shell: |
        set -e
        mkdir -p /tmp/nf-t-src/etc && cp /etc/os-release /tmp/nf-t-src/etc/
        ln -sfn /etc/hostname /tmp/nf-t-src/to-hostname && ln -sfn /etc /tmp/nf-t-src/to-etc
        tar -C /tmp/nf-t-src -cf /tmp/nf-t-src.tar . && truncate -s 1M /tmp/nf-t-src.raw
      args:
        creates: /tmp/nf-t-src.raw
      check_mode: false
      changed_when: false
    - name: The machines
      nspawn_machine:
        name: "{{ item.name }}"
        state: "{{ want }}"
        image: "{{ item.image | default(omit) }}"
        directory: "{{ item.directory | default(omit) }}"
        clone: "{{ item.clone | default(omit) }}"
        bind_ro: ["/srv:/srv/host"]
        network: {mode: none}
      loop: "{{ machines }}"
      loop_control: {label: "{{ item.name }}"}
"""


def test_module_imports_tar_raw_directory_and_clone_idempotently_and_removes_only_them(lab, clean, tmp_path):
    book = tmp_path / "sources.yml"
    book.write_text(SOURCES)
    host1 = lab["hosts"][0]
    before = snapshot(lab)
    check = run(lab, str(book), "-e", "want=present", "--check", "--diff")
    assert check.returncode == 0 and recap(check.output)["nf-host1"]["changed"] == 1, check.output[-3000:]
    assert "+BindReadOnly=/srv:/srv/host" in check.output  # the diff of the .nspawn file
    assert snapshot(lab) == before
    first = run(lab, str(book), "-e", "want=present", "-v")  # -v: each machine's actions
    assert first.returncode == 0 and recap(first.output)["nf-host1"]["changed"] == 1, first.output[-3000:]
    for action in ("machinectl import-tar /tmp/nf-t-src.tar nf-t-tar", "machinectl import-raw /tmp/nf-t-src.raw",
                   "machinectl import-fs /tmp/nf-t-src nf-t-dir", "machinectl clone nf-t-tar nf-t-clone"):
        assert action in first.output, first.output[-3000:]
    images = host_sh(lab, host1, "machinectl list-images --no-legend").stdout
    assert {"nf-t-tar", "nf-t-raw", "nf-t-dir", "nf-t-clone"} <= set(images.split())
    settings = host_sh(lab, host1, "cat /etc/systemd/nspawn/nf-t-dir.nspawn").stdout
    assert "[Files]\nBindReadOnly=/srv:/srv/host\n" in settings and "Private=yes\n" in settings
    second = run(lab, str(book), "-e", "want=present")
    assert second.returncode == 0 and recap(second.output)["nf-host1"]["changed"] == 0, second.output[-3000:]

    gone = run(lab, str(book), "-e", "want=absent")
    assert gone.returncode == 0 and recap(gone.output)["nf-host1"]["changed"] == 1, gone.output[-3000:]
    assert not ours(snapshot(lab)["nf-host1"])
    # the trees' symlinks to the host were removed, not followed
    assert host_sh(lab, host1, "test -s /etc/hostname && test -f /etc/os-release && echo kept").stdout == "kept\n"
    host_sh(lab, host1, "rm -rf /tmp/nf-t-src /tmp/nf-t-src.tar /tmp/nf-t-src.raw")


def test_module_stop_timeout_bad_names_and_a_failed_overlay_are_reported_and_leave_nothing(lab, clean):
    host2 = lab["hosts"][1]
    args = json.dumps({"name": "nf-t-stubborn", "state": "started", "overlay": {"lower": [lab["base"]]},
                       "private_users": False, "network": {"mode": "host"}, "boot": False, "as_pid2": True,
                       # a payload that ignores what the stub init sends it on poweroff
                       "command": ["/bin/sh", "-c", "trap '' TERM HUP; while :; do sleep 1; done"]})
    started = run(lab, host2["name"], "-m", "nspawn_machine", "-a", args, tool="ansible")
    assert started.returncode == 0, started.output[-3000:]
    leader = host_sh(lab, host2, "machinectl show -p Leader --value nf-t-stubborn").stdout.strip()
    stop = run(lab, host2["name"], "-m", "nspawn_machine", "-a", "name=nf-t-stubborn state=stopped timeout=2",
               tool="ansible")
    assert stop.returncode != 0
    assert ("nspawn_machine on nf-host2, machine nf-t-stubborn: it did not stop within 2 s after machinectl "
            f"poweroff: its leader (PID {leader}) is still running; nothing was killed; next: raise timeout, "
            "or force it: machinectl terminate nf-t-stubborn") in stop.output, stop.output[-3000:]
    assert host_sh(lab, host2, "machinectl show -p Leader --value nf-t-stubborn").stdout.strip() == leader

    for bad in (".host", "web;touch /tmp/nf-t-pwned"):
        proc = run(lab, host2["name"], "-m", "nspawn_machine", "-a", f"name='{bad}' state=absent", tool="ansible")
        assert proc.returncode != 0 and "is not a valid machine name" in proc.output, proc.output[-2000:]
    assert host_sh(lab, host2, "test -e /tmp/nf-t-pwned", check=False).returncode != 0

    # an overlay that cannot be mounted (its upper dir on the host's root, itself an overlayfs in
    # the lab) fails saying so and leaves nothing: no dirs, unit, link or failed unit
    bad = json.dumps({"name": "nf-t-bad", "state": "started",
                      "overlay": {"lower": [lab["base"]], "data_dir": "/var/tmp/nf-t-ovl"}})
    proc = run(lab, host2["name"], "-m", "nspawn_machine", "-a", bad, tool="ansible")
    assert proc.returncode != 0 and "could not set up the overlay root of nf-t-bad" in proc.output, proc.output[-3000:]
    assert host_sh(lab, host2, "ls -d /var/tmp/nf-t-ovl /var/lib/machines/nf-t-bad "
                               "/etc/systemd/system/machines.target.wants/*nf*t*bad* 2>/dev/null; "
                               "systemctl --failed --no-legend --plain | grep nf; true").stdout == ""

    # forced to stop, it is removed with its unit's failed state: the host is not left degraded
    host_sh(lab, host2, "machinectl terminate nf-t-stubborn")
    gone = run(lab, host2["name"], "-m", "nspawn_machine", "-a", "name=nf-t-stubborn state=absent", tool="ansible")
    assert gone.returncode == 0 and "reset-failed" in gone.output, gone.output[-3000:]
    assert not ours(snapshot(lab)[host2["name"]])
    assert host_sh(lab, host2, "systemctl --failed --no-legend --plain | grep nf-t-; true").stdout == ""
