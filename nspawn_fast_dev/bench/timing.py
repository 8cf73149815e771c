"""A run's timed parts, from the timing callback's record (callback/bench_timing.py).

Pure: the callback's JSON and a workload in, {figure: seconds} out. A part spans from the
start of one task to the last host result of another (or the same) task, so what happens
between tasks (the strategy's own work) is inside it, and ansible-playbook's start-up and
the tasks outside it are not.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .plan import Part, Workload

CALLBACK_DIR = Path(__file__).with_name("callback")
CALLBACK = "bench_timing"
OUT_ENV = "NSPAWN_FAST_BENCH_TIMING"  # the callback's own OUT_ENV (it imports nothing from here)
RECORD = "timing.json"  # in the run's dir


def span(tasks: list[dict[str, Any]], part: Part, hosts: int) -> float | None:
    """Seconds from `part.first`'s start to `part.last`'s last result; None unless both
    tasks ran and every host answered both (another playbook, e.g. the debug floor's)."""
    names = [t["name"] for t in tasks]
    if part.first not in names:
        return None
    i = names.index(part.first)
    later = [t for t in tasks[i:] if t["name"] == part.last]
    if not later:
        return None
    start, end = tasks[i], later[0]
    if end["end"] is None or start["results"] < hosts or end["results"] < hosts:
        return None
    return end["end"] - start["start"]


def figures(record: dict[str, Any], workload: Workload, hosts: int) -> dict[str, float | None]:
    tasks = record.get("tasks", [])
    return {p.figure: span(tasks, p, hosts) for p in workload.parts}
