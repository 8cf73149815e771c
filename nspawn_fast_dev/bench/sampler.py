"""Runs ON a lab host for the length of one benchmark run; stdlib only, sent over ssh.

It polls the host's /proc (which sees every guest's processes too) until its stdin
closes, then prints one JSON line:
  pid_start, pid_end: the last-PID field of /proc/loadavg (PIDs allocated in the host's
      PID namespace, guests included: processes and threads started during the run);
  conns: sshd connection processes that appeared (children of an sshd listener, in the
      host or in a guest): SSH connections opened;
  interp_rss_kb: peak VmRSS of each mitogen interpreter (argv[0] "python3(mitogen:...)")
      that ran inside a container (another mount namespace than the host's);
  interp_pss_kb, interp_pss_n: the interpreters' summed PSS (/proc/PID/smaps_rollup) at
      the poll where that sum peaked, and how many were alive then. PSS divides each shared
      page among the processes mapping it, so the sum is what the interpreters together
      cost the machine (RSS counts a page shared by 25 interpreters 25 times).
Reading /proc starts no process, so the probe adds nothing to what it counts.
"""
from __future__ import annotations

import json
import os
import select
import sys

POLL = 0.2  # s; SSH connections and interpreters of a run live much longer than this


def last_pid(loadavg: str) -> int:
    return int(loadavg.split()[4])


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def _ppid(pid: int) -> int:
    stat = _read(f"/proc/{pid}/stat") or ")  0 0"
    return int(stat[stat.rfind(")") + 2:].split()[1])


def _rss_kb(pid: int) -> int:
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pss_kb(smaps_rollup: str) -> int:
    for line in smaps_rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def higher_peak(peak: tuple[int, int], values: list[int]) -> tuple[int, int]:
    """(sum, count) of this poll's PSS values if their sum beats the peak so far."""
    return (sum(values), len(values)) if sum(values) > peak[0] else peak


def classify(comm: str, argv0: str, parent_comm: str, parent_kind: str,
             foreign_mnt: bool) -> str:
    """'listener', 'conn', 'interp' or '' for one process (pure, unit-tested)."""
    if comm == "sshd":
        if parent_kind == "listener":
            return "conn"  # forked per accepted connection (then re-execs as sshd -R)
        return "" if parent_comm == "sshd" else "listener"
    # A fork of an interpreter (a module's subprocess before its exec) shows the same
    # argv[0]: only the topmost one is the container's interpreter.
    if foreign_mnt and "(mitogen:" in argv0 and parent_kind != "interp":
        return "interp"
    return ""


class Sampler:
    def __init__(self) -> None:
        self.own_mnt = os.readlink("/proc/self/ns/mnt")
        self.kind: dict[int, str] = {}
        self.rss: dict[int, int] = {}
        self.pss_peak = (0, 0)
        self.conns = 0
        self.scan(counting=False)

    def _classify(self, pid: int) -> str:
        comm = (_read(f"/proc/{pid}/comm") or "").strip()
        argv0 = (_read(f"/proc/{pid}/cmdline") or "").split("\0")[0]
        try:
            foreign = os.readlink(f"/proc/{pid}/ns/mnt") != self.own_mnt
        except OSError:
            foreign = False
        parent = _ppid(pid)
        pcomm = (_read(f"/proc/{parent}/comm") or "").strip()
        return classify(comm, argv0, pcomm, self.kind.get(parent, ""), foreign)

    def scan(self, counting: bool = True) -> None:
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        for pid in pids:  # ascending: a listener is classified before its children
            if pid not in self.kind:
                k = self.kind[pid] = self._classify(pid)
                if counting and k == "conn":
                    self.conns += 1
        pss = []
        for pid, k in self.kind.items():
            if k == "interp":
                self.rss[pid] = max(self.rss.get(pid, 0), _rss_kb(pid))
                kb = pss_kb(_read(f"/proc/{pid}/smaps_rollup") or "")
                if kb:  # 0: gone
                    pss.append(kb)
        self.pss_peak = higher_peak(self.pss_peak, pss)


def main() -> None:
    s = Sampler()
    start = last_pid(_read("/proc/loadavg") or "")
    print("READY", flush=True)
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], POLL)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break
        s.scan()
    end = last_pid(_read("/proc/loadavg") or "")
    s.scan()
    pid_max = int((_read("/proc/sys/kernel/pid_max") or "4194304").strip())
    print(json.dumps({"pid_start": start, "pid_end": end, "pid_max": pid_max,
                      "conns": s.conns, "interp_rss_kb": sorted(v for v in s.rss.values() if v),
                      "interp_pss_kb": s.pss_peak[0], "interp_pss_n": s.pss_peak[1]}),
          flush=True)


if __name__ == "__main__":
    main()
