"""Session fixture: the lab, brought up once (idempotent `up`), left up at the end.

The lab must come up: if it cannot be built the tests FAIL (never skip), because
every claim of this project is only shown against real containers.
Set NSPAWN_FAST_LAB_DOWN=1 to take it down after the session; NSPAWN_FAST_LAB_DIR with
NSPAWN_FAST_LAB_HOST_PORT_BASE / NSPAWN_FAST_LAB_GUEST_PORT_BASE runs against a second lab.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nspawn_fast_dev import CHECKOUT

LAB_DIR = Path(os.environ.get("NSPAWN_FAST_LAB_DIR") or "/var/lib/nspawn-fast/lab")


def nspawn_fast(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (as a user would), in this checkout's interpreter. `lab` is a development
    command: the CLI hands it to nspawn_fast_dev, which `-m` finds in the checkout (the cwd)."""
    return subprocess.run([sys.executable, "-m", "ansible_nspawn_fast.cli", *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=CHECKOUT)


def up_args() -> list[str]:
    """`up` arguments that keep the shape of a lab that is already up (e.g. 2x25)."""
    args = ["lab", "up", "--dir", str(LAB_DIR)]
    try:
        shape = json.loads((LAB_DIR / "lab.json").read_text())["shape"]
    except (OSError, ValueError, KeyError):
        # A second lab beside the default one (e.g. a tox env per ansible-core version run
        # at the same time) needs its own dir and ports.
        for var, flag in (("NSPAWN_FAST_LAB_HOST_PORT_BASE", "--host-port-base"),
                          ("NSPAWN_FAST_LAB_GUEST_PORT_BASE", "--guest-port-base")):
            if os.environ.get(var):
                args += [flag, os.environ[var]]
        return args
    args += ["--hosts", str(shape["hosts"]), "--guests", str(shape["guests"]),
             "--host-port-base", str(shape["host_port_base"]),
             "--guest-port-base", str(shape["guest_port_base"])]
    return args + (["--guest-sshd"] if shape["guest_sshd"] else [])


def bring_up() -> dict[str, Any]:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root: they build and boot the lab")
    cp = nspawn_fast(*up_args())
    if cp.returncode != 0:
        pytest.fail(f"the lab could not be brought up (exit {cp.returncode}):\n{cp.stderr}")
    return json.loads((LAB_DIR / "lab.json").read_text())


@pytest.fixture(scope="session")
def lab() -> Iterator[dict[str, Any]]:
    """lab.json of a running lab: hosts, ports, guests, key paths."""
    yield bring_up()
    if os.environ.get("NSPAWN_FAST_LAB_DOWN") == "1":
        nspawn_fast("lab", "down", "--dir", str(LAB_DIR))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked lab_last (they take the lab down) run after everything else."""
    items.sort(key=lambda it: it.get_closest_marker("lab_last") is not None)


# --- helpers shared by the lab's tests and later integration tests ----------------------
def ssh_argv(lab: dict[str, Any], port: int) -> list[str]:
    return ["ssh", "-i", lab["key"], "-p", str(port),
            "-o", f"UserKnownHostsFile={lab['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
            "root@127.0.0.1"]


def host_sh(lab: dict[str, Any], host: dict[str, Any], script: str,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a shell script on a lab host over real ssh."""
    cp = subprocess.run([*ssh_argv(lab, host["port"]), script], capture_output=True,
                        text=True, timeout=120, stdin=subprocess.DEVNULL)
    if check and cp.returncode != 0:
        raise AssertionError(f"on {host['name']}: {script!r} exit {cp.returncode}: {cp.stderr}")
    return cp


def guest_sh(lab: dict[str, Any], host: dict[str, Any], guest: str, script: str,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a shell script inside a guest: ssh to its host, nsenter its leader."""
    wrapper = (f"L=$(machinectl show -p Leader --value {guest}) || exit 97; "
               'u=; [ "$(readlink /proc/$L/ns/user)" = "$(readlink /proc/self/ns/user)" ] || u=-U; '
               f"exec nsenter -t $L -m -u -i -n -p $u -- sh -c {_q(script)}")
    return host_sh(lab, host, wrapper, check)


def _q(s: str) -> str:
    import shlex
    return shlex.quote(s)


def controller_processes(needle: bytes) -> list[int]:
    """PIDs of this machine's processes whose command line contains `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def copy_and_kill_its_upload(ansible: Path, lab: dict[str, Any], name: str, src: Path, dest: str,
                             strategy: str, settle: float, wait: float) -> tuple[int, str]:
    """`ansible NAME -m copy` under `strategy`; `settle` s after the ssh that streams the file
    through the put script (its command line: copy's .source.bin and the script's temp name)
    appears (within `wait` s), that ssh is SIGKILLed. Returns the play's exit status and output."""
    env = {**os.environ, "ANSIBLE_CONFIG": lab["ansible_cfg"], "ANSIBLE_STRATEGY": strategy}
    play = subprocess.Popen([str(ansible), name, "-m", "ansible.builtin.copy", "-a", f"src={src} dest={dest}"],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline, killed = time.monotonic() + wait, False
        while not killed:
            assert play.poll() is None and time.monotonic() < deadline, "no upload seen"
            for pid in controller_processes(b".source.bin"):
                if _comm(pid) == "ssh" and pid in controller_processes(b"nspawn-fast.XXXXXX"):
                    time.sleep(settle)  # some of the bytes are through
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pytest.fail("the upload finished before it could be cut")
                    killed = True
                    break
            time.sleep(0.02)
        output, _ = play.communicate(timeout=120)
    finally:
        if play.poll() is None:
            play.kill()
            play.wait()
    return play.returncode, output
