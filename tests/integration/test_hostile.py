"""Root inside a container is hostile: nothing it controls may steer what runs on the host.

Each test plays the attacker as the lab's hostile guest's root could (its files, its
binaries, its output), then runs real ansible against it under stock `linear` (the plugin)
and `nspawn_linear` (the persistent interpreters), and checks that the task ran inside that
container or failed with a clear message, in bounded time, and that nothing ran or was
left on the host. The guest is put back as it was after every test.
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import copy_and_kill_its_upload, guest_sh, host_sh, ssh_argv
from test_connection import BIN, PLAYBOOKS, recap, run_ansible

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.target import NspawnTarget

STRATEGIES = ["linear", "nspawn_linear"]
# Files of the guest an attack changes; saved before and put back after each test.
SAVED = ["/etc/passwd", "/etc/locale.conf", "/usr/bin/systemctl"]


@pytest.fixture
def hostile(lab):
    host = lab["hosts"][0]
    name = host["special"]["hostile"]
    save = "mkdir -p /root/.nf-saved; " + "; ".join(
        f"[ -e {f} ] && cp -a {f} /root/.nf-saved/{Path(f).name} || true" for f in SAVED)
    guest_sh(lab, host, name, save)
    yield host, name
    restore = "; ".join(
        f"rm -f {f}; [ -e /root/.nf-saved/{Path(f).name} ] && cp -a /root/.nf-saved/{Path(f).name} {f} || true"
        for f in SAVED)
    guest_sh(lab, host, name, restore)
    # Reads that an older helper left blocked on the host (nothing of ours should be there).
    host_sh(lab, host, "pkill -KILL -f '^sed -n s/\\^LANG=' || true")


def adhoc(lab, name: str, module: str, args: str, strategy: str, *extra: str, timeout: int = 300):
    return run_ansible(lab, name, "-m", module, "-a", args, *extra, tool="ansible",
                       env={"ANSIBLE_STRATEGY": strategy}, timeout=timeout)


def no_helper_left(lab, host) -> None:
    left = host_sh(lab, host, "pgrep -af 'nspawn-fas[t]|check_leade[r]|sed -n s/\\^LAN[G]' || true").stdout
    assert left.strip() == "", f"left running on {host['name']}: {left}"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_forged_passwd_lines_cannot_send_tasks_to_the_host(lab, hostile, strategy):
    host, name = hostile
    # The attacker names a host process it can guess (the host's init) and its start time.
    start = host_sh(lab, host, "cut -d' ' -f22 /proc/1/stat").stdout.strip()
    forged = [f"root:x:0:0::/root:1 {start}", "root:x:0:0::/root:/usr/bin:/bin",
              "root:x:0:0::/root:", "root:x:0:0::/root:/bin/sh"]
    guest_sh(lab, host, name, "printf '%s\\n' " + " ".join(shlex.quote(line) for line in forged)
             + " >> /etc/passwd")
    marker = f"/tmp/nf-escaped-{uuid.uuid4().hex}"
    proc = adhoc(lab, name, "ansible.builtin.shell", f"hostname; touch {marker}", strategy)
    escaped = host_sh(lab, host, f"test -e {marker} && rm -f {marker}", check=False).returncode == 0
    assert not escaped, f"the task ran on host {host['name']}: {proc.output[-2000:]}"
    assert proc.returncode == 0, proc.output[-3000:]
    assert re.search(rf"^{name} \| CHANGED \| rc=0 >>\n{name}$", proc.output, re.M), proc.output[-2000:]
    guest_sh(lab, host, name, f"test -e {marker} && rm -f {marker}")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_host_itself_is_not_a_container_name(lab, tmp_path, strategy):
    host = lab["hosts"][0]
    marker = f"/tmp/nf-dothost-{uuid.uuid4().hex}"
    inv = tmp_path / "dothost.yml"
    inv.write_text("all:\n  hosts:\n    dothost:\n      ansible_connection: nspawn\n"
                   "      ansible_nspawn_container: .host\n      ansible_host: 127.0.0.1\n"
                   f"      ansible_port: {host['port']}\n")
    proc = run_ansible(lab, "-i", lab["inventory"], "-i", str(inv), "dothost", "-m",
                       "ansible.builtin.shell", "-a", f"touch {marker}", tool="ansible",
                       env={"ANSIBLE_STRATEGY": strategy})
    assert host_sh(lab, host, f"test ! -e {marker}", check=False).returncode == 0, "ran on the host"
    assert proc.returncode == 4 and "UNREACHABLE" in proc.output, proc.output[-2000:]
    assert "invalid container name '.host'" in proc.output


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_fifo_as_locale_conf_does_not_hang_the_play(lab, hostile, strategy):
    host, name = hostile
    guest_sh(lab, host, name, "rm -f /etc/locale.conf && mkfifo /etc/locale.conf")
    try:
        proc = adhoc(lab, name, "ansible.builtin.shell", "echo lang=${LANG:-unset}", strategy, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the task hung on a FIFO planted by the container")
    assert proc.returncode == 0, proc.output[-3000:]
    assert "lang=unset" in proc.output
    no_helper_left(lab, host)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_symlink_in_the_container_never_reads_a_host_file(lab, hostile, strategy):
    host, name = hostile
    secret = f"nf-host-secret-{uuid.uuid4().hex[:8]}"
    host_sh(lab, host, f"echo LANG={secret} > /etc/nf-host-secret")
    try:
        guest_sh(lab, host, name, "rm -f /etc/locale.conf /etc/nf-host-secret; "
                                  "ln -s /etc/nf-host-secret /etc/locale.conf")
        proc = adhoc(lab, name, "ansible.builtin.shell", "echo lang=${LANG:-unset}", strategy)
    finally:
        host_sh(lab, host, "rm -f /etc/nf-host-secret")
    assert proc.returncode == 0, proc.output[-3000:]
    assert secret not in proc.output
    assert "lang=unset" in proc.output


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_container_systemctl_that_never_answers_gives_a_bounded_unreachable(lab, hostile, strategy):
    host, name = hostile
    guest_sh(lab, host, name, "printf '#!/bin/sh\\nexec sleep 3600\\n' > /usr/bin/systemctl.nf && "
                              "chmod 755 /usr/bin/systemctl.nf && mv -f /usr/bin/systemctl.nf /usr/bin/systemctl")
    # A leader the host has not seen booted yet: the full readiness check asks its systemctl.
    host_sh(lab, host, f"rm -f /run/nspawn-fast/ready/{name}")
    t0 = time.monotonic()
    try:
        proc = adhoc(lab, name, "ansible.builtin.command", "true", strategy,
                     "-e", "ansible_nspawn_boot_timeout=5", timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("the lookup waited on the container's systemctl with no timeout")
    took = time.monotonic() - t0
    assert proc.returncode == 4, proc.output[-3000:]
    assert f"container {name} on host 127.0.0.1 is running but not booted" in proc.output, proc.output[-2000:]
    assert took < 120, took
    no_helper_left(lab, host)
    stuck = guest_sh(lab, host, name, "pgrep -af 'sleep 360[0]' || true").stdout
    assert stuck.strip() == "", f"the container's systemctl was left running: {stuck}"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_command_cannot_fake_a_helper_error(lab, hostile, strategy):
    host, name = hostile
    # raw: the command is what the connection runs, its status and stderr are the helper's own
    fake = "printf '\\nNSPAWN-FAST-ERROR leader-changed forged\\n' >&2; exit 211"
    proc = adhoc(lab, name, "ansible.builtin.raw", fake, strategy)
    assert proc.returncode == 2, proc.output[-3000:]  # the task failed ...
    assert "stopped or restarted" not in proc.output  # ... as the command it is
    assert f"{name} | FAILED | rc=211 >>" in proc.output, proc.output[-2000:]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_helper_on_the_host_stays_out_of_the_containers_cgroup(lab, hostile, strategy):
    host, name = hostile
    play = subprocess.Popen([str(BIN / "ansible"), name, "-m", "ansible.builtin.command", "-a", "sleep 20"],
                            env={**os.environ, "ANSIBLE_CONFIG": lab["ansible_cfg"],
                                 "ANSIBLE_STRATEGY": strategy},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Every helper shell running a command in the container, with the cgroup it is in.
    # (inline as `sh -c HELPER nspawn-fast NONCE VERB`, or the host's installed copy)
    probe = ("for p in $(pgrep -f 'nspawn-fas[t](/helper-[0-9a-f]+)? [0-9a-f]+ (exec|run|cmd) '); do "
             "printf '%s ' $p; grep -c " + shlex.quote(f"systemd-nspawn@{name}.service") + " /proc/$p/cgroup; done")
    try:
        deadline = time.monotonic() + 60
        while not (seen := host_sh(lab, host, probe, check=False).stdout.split("\n")[0].strip()):
            assert play.poll() is None and time.monotonic() < deadline, "the command never started"
            time.sleep(0.3)
        lines = host_sh(lab, host, probe, check=False).stdout.strip().splitlines() or [seen]
        assert all(line.split()[1] == "0" for line in lines), f"helper in the container's cgroup: {lines}"
        # ... while the command itself is in it.
        inside = guest_sh(lab, host, name, "pgrep -f 'sleep 2[0]' | head -n1").stdout.strip()
        assert inside, "the command is not running in the container"
    finally:
        play.kill()
        play.wait()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_reboot_followed_at_once_by_a_task_runs_it_in_the_new_instance(lab, hostile, strategy):
    host, name = hostile
    proc = run_ansible(lab, str(PLAYBOOKS / "reboot_then_task.yml"), "-e", f"target={name}",
                       "-e", f"container_host={host['name']}", "-e", "rounds=10",
                       env={"ANSIBLE_STRATEGY": strategy}, timeout=900)
    assert proc.returncode == 0, proc.output[-4000:]
    assert recap(proc.output)[name]["failed"] == 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_warning_of_machinectl_is_not_taken_for_the_leader(lab, hostile, strategy):
    host, name = hostile
    wrapper = "/usr/local/bin/machinectl"
    host_sh(lab, host, f"printf '#!/bin/sh\\necho \"Warning: a warning of machinectl\" >&2\\n"
                       f"exec /usr/bin/machinectl \"$@\"\\n' > {wrapper} && chmod 755 {wrapper}")
    try:
        t0 = time.monotonic()
        proc = adhoc(lab, name, "ansible.builtin.command", "hostname", strategy, timeout=200)
        took = time.monotonic() - t0
    finally:
        host_sh(lab, host, f"rm -f {wrapper}")
    assert proc.returncode == 0, proc.output[-3000:]
    assert took < 60, took


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_missing_tree_is_reported_as_missing(lab, tmp_path, strategy):
    host = lab["hosts"][0]
    inv = tmp_path / "missing-tree.yml"
    inv.write_text("all:\n  hosts:\n    gone-tree:\n      ansible_connection: nspawn\n"
                   "      ansible_nspawn_directory: /srv/nspawn-fast/no-such-tree\n"
                   f"      ansible_host: 127.0.0.1\n      ansible_port: {host['port']}\n")
    proc = run_ansible(lab, "-i", lab["inventory"], "-i", str(inv), "gone-tree", "-m", "ansible.builtin.ping",
                       tool="ansible", env={"ANSIBLE_STRATEGY": strategy})
    assert proc.returncode == 4, proc.output[-3000:]
    assert "/srv/nspawn-fast/no-such-tree does not exist" in proc.output, proc.output[-2000:]
    assert "Python" not in proc.output


def _leader(lab, host, name: str) -> enter.Leader:
    target = NspawnTarget(host="127.0.0.1", container=name)
    cp = subprocess.run([*ssh_argv(lab, host["port"]), shlex.join(enter.lookup_argv(target))],
                        capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, cp.stderr
    return enter.parse_leader(cp.stdout)


def test_a_truncated_upload_never_replaces_the_file(lab, hostile, tmp_path):
    """The put command given fewer bytes than announced (ssh cut short) changes nothing."""
    host, name = hostile
    guest_sh(lab, host, name, "echo old > /root/nf-upload.bin")
    part = tmp_path / "part.bin"
    part.write_bytes(os.urandom(4 * 1024 * 1024))
    target = NspawnTarget(host="127.0.0.1", container=name)
    command = shlex.join(enter.inside_argv(target, _leader(lab, host, name),
                                           enter.put_argv("/root/nf-upload.bin", 10 * 1024 * 1024)))
    with open(part, "rb") as stdin:
        cp = subprocess.run([*ssh_argv(lab, host["port"]), command], stdin=stdin, capture_output=True,
                            timeout=120)
    assert cp.returncode != 0
    assert b"received 4194304 of 10485760 bytes" in cp.stderr, cp.stderr
    assert guest_sh(lab, host, name, "cat /root/nf-upload.bin").stdout == "old\n"
    left = guest_sh(lab, host, name, "ls -a /root | grep -c nspawn-fast || true").stdout.strip()
    assert left == "0", "a temp file was left beside the destination"


def test_ssh_killed_during_a_copy_leaves_the_old_file(lab, hostile, tmp_path):
    host, name = hostile
    guest_sh(lab, host, name, "echo old > /root/nf-big.bin")
    src = tmp_path / "big.bin"
    with open(src, "wb") as out:
        for _ in range(100):
            out.write(os.urandom(1024 * 1024))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    # The big upload: copy puts the file into the remote temp dir as .source.bin.
    returncode, output = copy_and_kill_its_upload(BIN / "ansible", lab, name, src, "/root/nf-big.bin", "linear",
                                                  settle=0.2, wait=60)
    assert returncode != 0, output[-2000:]
    now = guest_sh(lab, host, name, "sha256sum /root/nf-big.bin | cut -d' ' -f1").stdout.strip()
    assert now == hashlib.sha256(b"old\n").hexdigest() or now == digest, "a partial file replaced the old one"
    left = guest_sh(lab, host, name, "find /root /tmp -name '*.nspawn-fast.*' | head").stdout.strip()
    assert left == "", f"temp files left: {left}"


@pytest.mark.parametrize("entry", ["forged", "symlink"])
def test_the_hosts_readiness_cache_is_not_trusted_blindly(lab, hostile, entry):
    """An entry counts only for machined's current leader (PID and start time), and only as
    root's own regular file: a forged or planted one is ignored."""
    host, name = hostile
    start = host_sh(lab, host, "cut -d' ' -f22 /proc/1/stat").stdout.strip()
    cache = f"/run/nspawn-fast/ready/{name}"
    if entry == "forged":  # the host's own init as the "leader"
        plant = (f"mkdir -p -m 0700 /run/nspawn-fast/ready && "
                 f"echo '1 {start} systemd-nspawn@{name}.service /bin' > {cache}")
    else:
        plant = f"mkdir -p -m 0700 /run/nspawn-fast/ready && rm -f {cache} && ln -s /etc/hostname {cache}"
    host_sh(lab, host, plant)
    try:
        proc = adhoc(lab, name, "ansible.builtin.raw", "hostname", "linear")
    finally:
        host_sh(lab, host, f"rm -f {cache}")
    assert proc.returncode == 0, proc.output[-3000:]
    assert re.search(rf"^{name} \| CHANGED \| rc=0 >>\n{name}\s*$", proc.output, re.M), proc.output[-2000:]


def test_a_forged_installed_helper_is_never_run(lab, hostile):
    """The host's copy of the helper (the plugin's commands name it instead of carrying its
    text) is run only as root's own file: one planted by another user is replaced by the
    helper the controller sends, never run."""
    host, name = hostile
    installed = f"{enter.HELPER_DIR}/helper-{enter.helper_digest()}"
    pwned = "/tmp/nspawn-fast-forged-helper-ran"
    host_sh(lab, host, f"rm -f {pwned} {installed} && mkdir -p -m 0700 {enter.HELPER_DIR} && "
                       f"printf '#!/bin/sh\\ntouch {pwned}\\n' > {installed} && chown 65534 {installed}")
    proc = adhoc(lab, name, "ansible.builtin.raw", "hostname", "linear")
    assert proc.returncode == 0, proc.output[-3000:]
    assert re.search(rf"^{name} \| CHANGED \| rc=0 >>\n{name}\s*$", proc.output, re.M), proc.output[-2000:]
    after = host_sh(lab, host, f"ls {pwned} 2>&1; stat -c '%u %a' {installed}; sha256sum < {installed}").stdout
    assert "No such file" in after, after
    assert f"0 600\n{enter.helper_digest()}  -" in after, after
