"""Hosts: booted nspawn containers that play "remote servers" with sshd and machined.

Top-level nspawn here needs --register=no --keep-unit (no system bus outside).  The
host's root is an overlay of the image; its guests' overlays are mounted on the outer
side under its machines dir and bound in as /var/lib/machines before it boots.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from . import files, guests, image, procs
from .config import BASE_MOUNT, TREES_MOUNT, Host, LabConfig, host_dir
from .mounts import mount_overlay
from .runner import LabError, progress, run

HOST_TIMEOUT = 120  # seconds for a host's systemd to reach running


def ssh_argv(cfg: LabConfig, port: int, *, connect_timeout: int = 5) -> list[str]:
    """ssh to a lab host as root with the lab's key, verifying the host key strictly."""
    return ["ssh", "-i", str(cfg.key_file), "-p", str(port),
            "-o", f"UserKnownHostsFile={cfg.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}",
            "-o", "LogLevel=ERROR", "root@127.0.0.1"]


def log_file(cfg: LabConfig, host: Host) -> Path:
    return host_dir(cfg.lab_dir, host.name) / "console.log"


def prepare(cfg: LabConfig, host: Host, image: Path, pubkey: str) -> None:
    """Mount the host's overlay root and its guests', and write their config."""
    d = host_dir(cfg.lab_dir, host.name)
    root = host.root(cfg.lab_dir)
    mount_overlay(image, d / "upper", d / "work", root)
    files.hostname_files(root, host.name)
    files.sshd_files(root, host.port, pubkey)
    for g in host.guests:
        files.write(root, f"/etc/systemd/nspawn/{g.name}.nspawn", guests.nspawn_settings(g))
        guests.prepare(cfg, host, g, image, pubkey)
    guests.machines_dir(cfg, host).mkdir(parents=True, exist_ok=True)
    if host.tree:
        guests.prepare_tree(cfg, host, image)


def nspawn_argv(cfg: LabConfig, host: Host) -> list[str]:
    argv = ["systemd-nspawn", "-q", "--register=no", "--keep-unit", "-b",
            "-D", str(host.root(cfg.lab_dir)), f"--machine={host.name}",
            "--console=read-only",  # passive: nobody drains the pty, a full buffer blocks systemd
            f"--bind={guests.machines_dir(cfg, host)}:/var/lib/machines",
            # the image as a read-only base for overlay machines made in the host (not the
            # lab's guests: theirs are mounted outside)
            f"--bind-ro={image.rootfs(cfg.cache_dir)}:{BASE_MOUNT}"]
    if host.tree:
        argv.append(f"--bind={guests.trees_dir(cfg, host)}:{TREES_MOUNT}")
    return argv


def boot(cfg: LabConfig, host: Host) -> int:
    """Start the host detached (own session, no stdin); return the nspawn PID."""
    with open(log_file(cfg, host), "ab") as log:
        proc = subprocess.Popen(nspawn_argv(cfg, host), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True)
    # Keep the Popen object from reaping or warning: the process outlives us on purpose.
    proc.returncode = 0
    return proc.pid


def _log_tail(cfg: LabConfig, host: Host) -> str:
    try:
        return "\n".join(log_file(cfg, host).read_text(errors="replace").splitlines()[-15:])
    except OSError:
        return ""


def wait_ready(cfg: LabConfig, host: Host, pid: int) -> int:
    """Wait until the host's systemd runs and its sshd answers; return the leader PID."""
    deadline = time.monotonic() + HOST_TIMEOUT
    hint = f"see {log_file(cfg, host)}; then `nspawn-fast lab down` and `up` again"
    leader = None
    state = ""
    while time.monotonic() < deadline:
        if not procs.alive(pid):
            raise LabError(f"host {host.name}: systemd-nspawn exited during boot:\n"
                           + _log_tail(cfg, host), hint)
        leader = leader or procs.container_leader(pid)
        if leader:
            cp = run(["nsenter", "-t", str(leader), "-m", "-u", "-i", "-n", "-p", "--",
                      "systemctl", "is-system-running", "--wait"], check=False, timeout=60)
            state = cp.stdout.strip()
            if state in ("running", "degraded"):
                break
        time.sleep(0.3)
    else:
        raise LabError(f"host {host.name} did not finish booting in {HOST_TIMEOUT} s "
                       f"(state: {state or 'no leader'})", hint)
    # sshd is usually up before "running"; retry briefly anyway.
    while True:
        cp = run([*ssh_argv(cfg, host.port), "true"], check=False, timeout=30)
        if cp.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise LabError(f"ssh to {host.name} (127.0.0.1:{host.port}) fails: "
                           f"{cp.stderr.strip()}", hint)
        time.sleep(0.3)
    if state == "degraded":
        # A nested host's early oneshot can fail on a transient cgroup attach at boot (seen with
        # systemd-remount-fs and systemd-sysusers on this kind of machine): start the failed
        # units again, once; what still fails stays failed (and `lab status` / the tests say so).
        ssh = ssh_argv(cfg, host.port)
        failed = run([*ssh, "systemctl", "--failed", "--no-legend", "--plain"], check=False).stdout
        units = [line.split()[0] for line in failed.splitlines() if line.split()]
        if units:
            progress(f"{host.name}: {', '.join(units)} failed at boot: starting again")
            run([*ssh, "systemctl", "restart", "--", *units], check=False, timeout=60)
        run([*ssh, "systemctl", "--failed", "--no-legend"], check=False)
    return leader  # type: ignore[return-value]


def stop(pids: list[int], timeout: float = 30) -> list[int]:
    """SIGTERM nspawn (the host shuts down cleanly, guests too), SIGKILL if it hangs.

    Returns the PIDs still alive at the end (should be none).
    """
    leaders = {p: procs.container_leader(p) for p in pids}
    for p in pids:
        _signal(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(procs.alive(p) for p in pids):
        time.sleep(0.2)
    left = [p for p in pids if procs.alive(p)]
    for p in left:
        # Killing the container's init kills its whole PID namespace.
        if leaders.get(p):
            _signal(leaders[p], signal.SIGKILL)  # type: ignore[arg-type]
        _signal(p, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(procs.alive(p) for p in left):
        time.sleep(0.2)
    return [p for p in pids if procs.alive(p)]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
