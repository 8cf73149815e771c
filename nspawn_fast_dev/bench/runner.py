"""One case = one real `ansible-playbook` run, with everything the report needs.

prepare() writes the run's inventory and starts the host probes (not timed);
play() runs ansible-playbook (the timed part); finish() closes what the run left
open, collects controller CPU time and the probes' figures, and cleans up.

Controller CPU: os.wait4 gives ansible-playbook's rusage with all its reaped
descendants. ssh ControlPersist masters daemonize away from it, so the runner
makes itself a child subreaper: they are re-parented here, asked to exit at the
end of the run, and their rusage is added when they are reaped.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import inventory, probe, timing
from .plan import CONFIGS, WORKLOADS, Case

PR_SET_CHILD_SUBREAPER = 36
BIG_FILE_MB = 100
LOG_TAIL = 40


class RunFailed(RuntimeError):
    pass


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


@dataclass
class Context:
    """What every case of a session shares."""

    lab: dict[str, Any]  # lab.json
    work: Path           # short temp root (ControlPath sockets live under it)
    playbooks: Path
    big_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.big_file = self.work / "big.bin"

    @property
    def mitogen_strategies(self) -> Path:
        import ansible_mitogen
        return Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"


def make_big_file(path: Path, mb: int = BIG_FILE_MB) -> None:
    """Random bytes: ssh's default compression must not make the copy cheap."""
    if path.exists() and path.stat().st_size == mb << 20:
        return
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1 << 20))


@dataclass
class Run:
    case: Case
    dir: Path
    argv: list[str]
    env: dict[str, str]
    probes: list[probe.HostProbe]
    wall: float = 0.0
    rc: int | None = None
    cpu_user: float = 0.0
    cpu_sys: float = 0.0
    load1: float = 0.0  # the machine's 1-min load average when the run started


def prepare(case: Case, ctx: Context) -> Run:
    d = Path(tempfile.mkdtemp(prefix="r-", dir=ctx.work))
    for sub in ("cp", "tmp", "fetch"):
        (d / sub).mkdir()
    (d / "ansible.cfg").write_text("")
    inv = d / "inventory.yml"
    inv.write_text(yaml.safe_dump(inventory.build(ctx.lab, case), sort_keys=False))
    env = inventory.env(case, mitogen_strategies=ctx.mitogen_strategies,
                        inventory=inv, run_dir=d, base=dict(os.environ))
    playbook = CONFIGS[case.config].playbook or WORKLOADS[case.workload].playbook
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(ctx.playbooks / playbook),
            "-e", f"bench_run={d.name}", "-e", f"bench_big_file={ctx.big_file}",
            "-e", f"bench_fetch_dir={d / 'fetch'}", "-e", f"bench_local_root={ctx.work / 'local'}"]
    probes: list[probe.HostProbe] = []
    try:
        for h in ctx.lab["hosts"]:
            probes.append(probe.HostProbe(ctx.lab, h))
    except BaseException:
        for p in probes:
            p.proc.kill()
            p.proc.communicate()
        raise
    return Run(case, d, argv, env, probes, load1=os.getloadavg()[0])


def play(run: Run) -> Run:
    """The timed part: ansible-playbook from start to exit."""
    with open(run.dir / "ansible.log", "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(run.argv, env=run.env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=run.dir)
        _, status, ru = os.wait4(proc.pid, 0)
        run.wall = time.perf_counter() - t0
    proc.returncode = run.rc = os.waitstatus_to_exitcode(status)
    run.cpu_user, run.cpu_sys = ru.ru_utime, ru.ru_stime
    return run


def _exit_masters(cp_dir: Path) -> None:
    for sock in cp_dir.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "bench-master"],
                       capture_output=True, check=False, timeout=10)


def _reap_orphans(timeout: float = 10) -> tuple[float, float]:
    """Wait for what ansible-playbook left behind (re-parented to us); their CPU time."""
    user = sys_ = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break  # no children left
        if pid == 0:
            time.sleep(0.05)
            continue
        user += ru.ru_utime
        sys_ += ru.ru_stime
    return user, sys_


def stop_probes(run: Run) -> dict[str, Any]:
    results, errors = [], []
    for p in run.probes:
        try:
            results.append(p.stop())
        except probe.ProbeError as e:
            errors.append(str(e))
    if errors:
        raise probe.ProbeError("; ".join(errors))
    return probe.combine(results)


def timed_parts(run: Run) -> dict[str, float | None]:
    """The workload's timed parts from the timing callback's record (absent: all None)."""
    try:
        record = json.loads((run.dir / timing.RECORD).read_text())
    except (OSError, ValueError):
        record = {}
    return timing.figures(record, WORKLOADS[run.case.workload], run.case.containers)


def finish(run: Run, ctx: Context, keep: bool = False) -> dict[str, Any]:
    """Close the run; return its figures (raises RunFailed if the playbook failed)."""
    try:
        _exit_masters(run.dir / "cp")
        hosts = stop_probes(run)
        user, sys_ = _reap_orphans()
    finally:
        shutil.rmtree(run.dir / "fetch", ignore_errors=True)
        shutil.rmtree(ctx.work / "local", ignore_errors=True)
    if run.rc != 0:
        log = (run.dir / "ansible.log").read_text(errors="replace").splitlines()
        raise RunFailed(f"{run.case.id}: ansible-playbook exit {run.rc}; log {run.dir}/ansible.log:\n"
                        + "\n".join(log[-LOG_TAIL:]))
    figures = {
        **run.case.to_dict(),
        "tasks": WORKLOADS[run.case.workload].tasks,
        "wall_s": run.wall,
        "cpu_s": run.cpu_user + run.cpu_sys + user + sys_,
        "load1": run.load1,
        **hosts,
        **timed_parts(run),
    }
    if not keep:
        shutil.rmtree(run.dir, ignore_errors=True)
    return figures
