"""Controller side of the host probes: one sampler (sampler.py) per lab host per run.

The sampler is started over ssh before ansible-playbook and stopped (stdin closed)
after it, so its own ssh session and process fall outside what it counts.
"""
from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("sampler.py")
READY_TIMEOUT = 30


class ProbeError(RuntimeError):
    pass


def ssh_argv(lab: dict[str, Any], port: int) -> list[str]:
    return ["ssh", "-i", lab["key"], "-p", str(port),
            "-o", f"UserKnownHostsFile={lab['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
            "-o", "ControlMaster=no", "-o", "ControlPath=none", "root@127.0.0.1"]


def remote_command() -> str:
    """One string for the remote shell: the sampler's source passed as `python3 -c`."""
    return shlex.join(["python3", "-u", "-c", SOURCE.read_text()])


class HostProbe:
    def __init__(self, lab: dict[str, Any], host: dict[str, Any]) -> None:
        self.name = host["name"]
        self.proc = subprocess.Popen([*ssh_argv(lab, host["port"]), remote_command()],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        # Wait for the baseline: nothing may start on the host before it is taken.
        line = _readline(self.proc, READY_TIMEOUT)
        if line.strip() != "READY":
            self.proc.kill()
            _, err = self.proc.communicate()
            raise ProbeError(f"probe on {self.name} did not start: {line!r} {err.strip()}")

    def stop(self) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(input="", timeout=30)
        except subprocess.TimeoutExpired as e:
            self.proc.kill()
            self.proc.communicate()
            raise ProbeError(f"probe on {self.name} did not stop") from e
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError) as e:
            raise ProbeError(f"probe on {self.name}: no result ({err.strip()})") from e


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    import select
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def pids_started(r: dict[str, Any]) -> int:
    """PIDs allocated between start and end, across a wrap of pid_max."""
    d = r["pid_end"] - r["pid_start"]
    return d if d >= 0 else d + r["pid_max"] - 300  # the kernel wraps to 300, not 0


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum of all hosts' probes: PIDs started, SSH connections, interpreter memory.

    RSS: the median interpreter's peak. PSS: per interpreter, the hosts' peak sums over
    the interpreters alive at those peaks (what one costs the machine among its peers).
    """
    rss = sorted(kb for r in results for kb in r["interp_rss_kb"])
    pss_n = sum(r.get("interp_pss_n", 0) for r in results)
    return {
        "host_pids": sum(pids_started(r) for r in results),
        "ssh_conns": sum(r["conns"] for r in results),
        "interpreters": len(rss),
        "interp_rss_kb": rss[len(rss) // 2] if rss else None,  # median
        "interp_pss_kb": sum(r.get("interp_pss_kb", 0) for r in results) / pss_n if pss_n else None,
    }
