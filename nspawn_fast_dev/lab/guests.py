"""Guests: overlay roots prepared on the outer side, booted and awaited from inside a host.

A guest's root is an overlay (shared image + its own upper dir) mounted under the
host's machines dir before the host boots; the host sees the whole dir as
/var/lib/machines (binds are recursive).  Booting is `machinectl start a b c ...` in
the host (machined, systemd-nspawn@.service); readiness is `systemctl
is-system-running --wait` inside each guest, awaited in parallel (in the pid2 guest, which
runs no systemd: its application script has written its start file).
"""
from __future__ import annotations

import shlex
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from . import files
from .config import NOPY, NORMAL, PID2, TREE_NAME, Guest, Host, LabConfig, host_dir
from .mounts import mount_overlay
from .runner import LabError

GUEST_TIMEOUT = 180  # seconds for one guest to reach running; 50 guests boot in ~1 min

# The pid2 guest's payload: PID 2 under nspawn's stub init, no systemd. The stub turns
# `machinectl poweroff` into SIGTERM + SIGHUP for it; `sleep & wait` lets the trap run at once.
APP_SCRIPT = "/usr/local/sbin/lab-app"
APP_STARTED = "/run/lab-app.started"
APP_SCRIPT_TEXT = f"""#!/bin/sh
# The lab's application container (written by nspawn-fast lab): PID 2 under nspawn's stub init.
trap 'exit 0' TERM HUP INT
echo $$ > {APP_STARTED}
while :; do sleep 1 & wait $!; done
"""


def nspawn_settings(guest: Guest) -> str:
    """The per-guest .nspawn file in the host (overrides the unit's --boot --network-veth -U).

    The host lacks CAP_NET_ADMIN for veth, so guests share its network namespace.
    PrivateUsers=pick works nested here (see LAB-NOTES.md).
    """
    users = "pick" if guest.private_users else "no"
    start = ""
    if guest.kind == PID2:
        start = f"Boot=no\nProcessTwo=yes\nParameters={APP_SCRIPT}\n"
    return f"[Exec]\n{start}PrivateUsers={users}\n\n[Network]\nVirtualEthernet=no\n"


def machines_dir(cfg: LabConfig, host: Host) -> Path:
    return host_dir(cfg.lab_dir, host.name) / "machines"


def trees_dir(cfg: LabConfig, host: Host) -> Path:
    return host_dir(cfg.lab_dir, host.name) / "trees"


def prepare(cfg: LabConfig, host: Host, guest: Guest, image: Path, pubkey: str) -> None:
    """Mount the guest's overlay and write its identity (outer side, host not yet booted)."""
    base = host_dir(cfg.lab_dir, host.name) / "guests" / guest.name
    root = machines_dir(cfg, host) / guest.name
    mount_overlay(image, base / "upper", base / "work", root)
    files.hostname_files(root, guest.name)
    # authorized_keys in every guest: sshd can be enabled later without rebuilding.
    if guest.sshd_port is not None:
        files.sshd_files(root, guest.sshd_port, pubkey)
    else:
        files.mask_unit(root, "ssh.service")
        (root / "root" / ".ssh").mkdir(mode=0o700, exist_ok=True)
        files.write(root, "/root/.ssh/authorized_keys", pubkey.strip() + "\n", 0o600)
    if guest.kind == NOPY:
        # Whiteouts in the upper dir: the image keeps its python3.
        for p in (root / "usr" / "bin").glob("python3*"):
            p.unlink()
    if guest.kind == PID2:
        files.write(root, APP_SCRIPT, APP_SCRIPT_TEXT, 0o755)


def prepare_tree(cfg: LabConfig, host: Host, image: Path) -> Path:
    """A not-running tree for `systemd-nspawn -D` mode, bound into the host."""
    base = host_dir(cfg.lab_dir, host.name) / f"tree-{TREE_NAME}"
    root = trees_dir(cfg, host) / TREE_NAME
    mount_overlay(image, base / "upper", base / "work", root)
    files.hostname_files(root, host.tree or TREE_NAME)
    files.mask_unit(root, "ssh.service")
    return root


def _wait_script(to_start: list[str], to_stop: list[str], timeout: int,
                 apps: tuple[str, ...] = ()) -> str:
    """Shell run in the host: start guests, then await each one in parallel (`apps`: guests
    without systemd, ready once their application wrote its start file)."""
    start = " ".join(shlex.quote(g) for g in to_start)
    app_names = " ".join(shlex.quote(g) for g in apps)
    lines = ["set -u"]
    if to_start:
        lines.append(f"machinectl start {start} || echo 'STARTFAILED'")
    for g in to_stop:
        q = shlex.quote(g)
        lines.append(f"machinectl show {q} >/dev/null 2>&1 && machinectl terminate {q}")
    lines.append(f"""
wait_one() {{
  g=$1; s=""; end=$(( $(date +%s) + {timeout} ))
  while [ "$(date +%s)" -lt "$end" ]; do
    l=$(machinectl show -p Leader --value "$g" 2>/dev/null || true)
    if [ -n "$l" ] && [ "$l" != 0 ]; then
      u=""
      # Join the user namespace only when it is not ours (private-users guest).
      [ "$(readlink /proc/$l/ns/user)" != "$(readlink /proc/self/ns/user)" ] && u=-U
      case " {app_names} " in
        *" $g "*) s=$(timeout 10 nsenter -t "$l" -m -u -i -n -p $u -- \
            sh -c 'test -s {APP_STARTED} && echo running' 2>/dev/null || true) ;;
        *) s=$(timeout 60 nsenter -t "$l" -m -u -i -n -p $u -- \
            systemctl is-system-running --wait 2>/dev/null || true) ;;
      esac
      case "$s" in running|degraded) echo "READY $g $s $l"; return 0;; esac
    fi
    sleep 0.3
  done
  echo "NOTREADY $g ${{s:-no-leader}}"
}}
for g in {start}; do wait_one "$g" & done
wait
echo DONE""")
    return "\n".join(lines) + "\n"


def start_and_wait(ssh_argv: list[str], host: Host, report: Callable[[str], None],
                   timeout: int = GUEST_TIMEOUT) -> dict[str, str]:
    """Boot the host's guests and wait until each runs; returns {guest: state}."""
    to_start = [g.name for g in host.guests if g.started]
    to_stop = [g.name for g in host.guests if not g.started]
    apps = tuple(g.name for g in host.guests if g.started and not g.runs_systemd)
    script = _wait_script(to_start, to_stop, timeout, apps)
    proc = subprocess.Popen([*ssh_argv, "sh", "-s"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # stderr is drained by a thread so a chatty machinectl cannot block the pipe.
    err: list[str] = []
    t = threading.Thread(target=lambda: err.extend(proc.stderr or []), daemon=True)
    t.start()
    assert proc.stdin and proc.stdout
    proc.stdin.write(script)
    proc.stdin.close()
    states: dict[str, str] = {}
    ready = 0
    for line in proc.stdout:
        w = line.split()
        if not w:
            continue
        if w[0] == "READY":
            ready += 1
            states[w[1]] = w[2]
            report(f"{host.name}: {w[1]} {w[2]} ({ready}/{len(to_start)})")
        elif w[0] == "NOTREADY":
            states[w[1]] = "not-ready:" + " ".join(w[2:])
        elif w[0] == "STARTFAILED":
            report(f"{host.name}: machinectl start reported an error")
    try:
        rc = proc.wait(timeout=60)  # stdout closed: the script is done or ssh died
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    t.join(timeout=5)
    bad = {g: s for g, s in states.items() if not s.startswith(("running", "degraded"))}
    missing = [g for g in to_start if g not in states]
    if rc != 0 or bad or missing:
        detail = ", ".join(f"{g}: {s}" for g, s in bad.items()) or ", ".join(missing)
        raise LabError(
            f"guests on {host.name} did not come up ({detail}); ssh exit {rc}\n"
            + "".join(err[-10:]),
            f"look inside the host: ssh -p {host.port} root@127.0.0.1 "
            "'machinectl list; journalctl -u systemd-nspawn@GUEST -n 50'; "
            "then `nspawn-fast lab down` and `up`")
    return states


def is_normal(g: Guest) -> bool:
    return g.kind == NORMAL
