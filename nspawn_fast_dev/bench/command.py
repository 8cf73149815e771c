"""`nspawn-fast bench`: bring the bench lab up, run the pytest-benchmark suite, report.

The bench lab is its own lab (own dir and ports, guests with sshd), so it never
touches the default lab that the integration tests use.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import CHECKOUT as REPO
from . import machine, plan, report, session


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--smoke", action="store_true",
                   help="CI's smoke round: 1 container, 1 round, every workload and configuration")
    p.add_argument("--extended", action="store_true",
                   help="every workload at 1 and 10 containers, (a) and (f) at 50 (about 50 min)")
    p.add_argument("--full", action="store_true",
                   help="the whole matrix (scales 1 10 50 x forks 10 50 x every workload; hours)")
    p.add_argument("--scales", type=int, nargs="+", help="container counts (e.g. 1 10 50)")
    p.add_argument("--forks", type=int, nargs="+", help="fork settings (e.g. 10 50)")
    p.add_argument("--workloads", nargs="+", choices=list(plan.WORKLOADS))
    p.add_argument("--configs", nargs="+", choices=list(plan.CONFIGS))
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds per configuration (default 2, and 3 for the debug pair of the "
                        "default plan; smoke and extended 1)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks",
                   help="where RESULTS.md, the chart and results.json go (default: benchmarks/)")
    p.add_argument("--lab-dir", type=Path, default=session.DEFAULT_LAB_DIR,
                   help=f"the bench lab's dir (default {session.DEFAULT_LAB_DIR}; ports "
                        f"{session.HOST_PORT_BASE}+ and {session.GUEST_PORT_BASE}+)")
    p.add_argument("--lab-down", action="store_true", help="take the bench lab down afterwards")


WHY = {
    "default": "left out of the default run to keep it near 25-30 minutes on 2 cores "
               "(`--extended` or `--full` run more)",
    "extended": "left out to keep the run near 50 minutes on 2 cores: at 50 containers "
                "`ssh` and `nspawn` take 5-10 min per workload (`--full` runs everything)",
    "smoke": "smoke round: 1 container only",
    "custom": "not requested",
}


def not_run(cells: list[plan.Cell], label: str) -> list[str]:
    """What the full matrix has and this plan leaves out, and why."""
    have: dict[tuple[str, int, int], set[str]] = {}
    for c in cells:  # a point may come in two cells (the debug pair's own rounds)
        have.setdefault((c.workload, c.containers, c.forks), set()).update(c.configs)
    out = []
    for full in plan.matrix([1, 10, 50], [10, 50], list(plan.WORKLOADS)):
        key = (full.workload, full.containers, full.forks)
        missing = [c for c in full.configs
                   if plan.applies(c, full.workload) and c not in have.get(key, set())]
        if not missing:
            continue
        if full.forks == 50 and full.containers <= 10:
            continue  # identical to forks 10: never more forks busy than containers
        what = "every configuration" if len(missing) == len(
            [c for c in full.configs if plan.applies(c, full.workload)]) else ", ".join(missing)
        out.append(f"workload {plan.WORKLOADS[full.workload].about[:3]} at {full.containers} "
                   f"containers, forks {full.forks}: {what}")
    if out:
        out = [f"why: {WHY.get(label, WHY['custom'])}", *out]
    return out + ["forks 50 at 1 and 10 containers: the same run as forks 10 (no more forks "
                  "are busy than there are containers), so it is not repeated"]


def make_plan(args: argparse.Namespace) -> session.Plan:
    custom = args.scales or args.forks or args.workloads
    if args.smoke:
        cells, label = plan.smoke_cells(), "smoke"
    elif args.full or custom:
        cells = plan.without_idle_forks(plan.matrix(args.scales or [1, 10, 50], args.forks or [10, 50],
                                                     args.workloads or list(plan.WORKLOADS)))
        label = "full" if args.full and not custom else "custom"
    elif args.extended:
        cells, label = plan.extended_cells(), "extended"
    else:
        cells, label = plan.default_cells(), "default"
    if args.configs:
        cells = plan.with_configs(cells, args.configs)
    rounds = args.rounds or {"smoke": 1, "extended": 1}.get(label, 2)
    return session.Plan(cells, rounds, args.lab_dir.absolute(), args.out.absolute(), label,
                        not_run(cells, label if not args.configs else "custom"))


def lab_up(p: session.Plan) -> None:
    """Reuse the bench lab if it is big enough, else (re)create it with the shape needed."""
    from ..lab import lab
    from ..lab.config import LabConfig, default_cache_dir
    guests = plan.guests_needed(p.cells)
    try:
        shape = json.loads((p.lab_dir / "lab.json").read_text())["shape"]
        if (shape["guest_sshd"] and shape["hosts"] == 2 and shape["guests"] >= guests
                and shape["host_port_base"] == session.HOST_PORT_BASE
                and shape["guest_port_base"] == session.GUEST_PORT_BASE):
            guests = shape["guests"]
    except (OSError, ValueError, KeyError):
        pass
    lab.up(LabConfig(lab_dir=p.lab_dir, cache_dir=default_cache_dir().absolute(), hosts=2,
                     guests=guests, guest_sshd=True, host_port_base=session.HOST_PORT_BASE,
                     guest_port_base=session.GUEST_PORT_BASE))


def lab_down(p: session.Plan) -> None:
    from ..lab import lab
    from ..lab.config import LabConfig, default_cache_dir
    lab.down(LabConfig(lab_dir=p.lab_dir, cache_dir=default_cache_dir().absolute(),
                       host_port_base=session.HOST_PORT_BASE, guest_port_base=session.GUEST_PORT_BASE))


def run(args: argparse.Namespace, argv: list[str]) -> int:
    p = make_plan(args)
    n_cases = len(plan.cases(p.cells, p.rounds))
    print(f"nspawn-fast bench: {p.label} plan, {len(p.cells)} cells, {p.rounds} rounds, "
          f"{n_cases} ansible-playbook runs; lab {p.lab_dir}", flush=True)
    try:
        lab_up(p)
        with tempfile.TemporaryDirectory(prefix="nfb-session-") as tmp:
            p.save(Path(tmp) / "plan.json")
            raw = Path(tmp) / "benchmark.json"
            commit = machine.commit(REPO)  # what the suite runs, taken before it starts
            t0 = time.monotonic()
            rc = subprocess.call(
                [sys.executable, "-m", "pytest", str(REPO / "benchmarks"), "-p", "no:cacheprovider",
                 "-q", "-rfE", f"--benchmark-json={raw}", "--benchmark-columns=median,min,max,rounds",
                 "--benchmark-sort=name"],
                cwd=REPO, env={**os.environ, session.PLAN_ENV: str(p.path)}, stdin=subprocess.DEVNULL)
            print(f"nspawn-fast bench: suite finished in {(time.monotonic() - t0) / 60:.1f} min, "
                  f"pytest exit {rc}", flush=True)
            if not raw.exists():
                print("nspawn-fast bench: error: no benchmark data was written", file=sys.stderr)
                return rc or 1
            meta = {"label": p.label, "rounds": p.rounds, "not_run": p.not_run,
                    "command": shlex.join(["nspawn-fast", "bench", *argv]),
                    "machine": machine.describe(), "versions": machine.versions(),
                    "commit": commit,
                    "failures": session.load_failures(p.failures_file) if p.failures_file else []}
            # The repository's README shows the figures of the repository's report only.
            readme = REPO / "README.md" if p.out_dir.resolve() == (REPO / "benchmarks").resolve() else None
            md = report.write(p.out_dir, raw, meta, readme)
            print(f"nspawn-fast bench: wrote {md} and {p.out_dir / report.CHART}", flush=True)
        return rc
    finally:
        if args.lab_down:
            lab_down(p)
