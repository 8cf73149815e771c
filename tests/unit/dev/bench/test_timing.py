"""Timed parts of a run from the timing callback's record."""
from __future__ import annotations

import pytest
import yaml

from nspawn_fast_dev import CHECKOUT
from nspawn_fast_dev.bench import timing
from nspawn_fast_dev.bench.plan import WORKLOADS, Part


def task(name: str, start: float, end: float | None, results: int = 2) -> dict:
    return {"name": name, "start": start, "end": end, "results": results}


def test_facts_cold_and_warm_are_each_task_alone() -> None:
    rec = {"tasks": [task("Gather facts, cold", 10.0, 10.8), task("Gather facts again, warm", 10.9, 11.2)]}
    got = timing.figures(rec, WORKLOADS["facts"], hosts=2)
    assert got == pytest.approx({"cold_s": 0.8, "warm_s": 0.3})


def test_a_span_runs_from_first_start_to_last_end_gaps_included() -> None:
    tasks = [task("1 ping", 0.0, 1.0)] + [task(f"{i} ping", i, i + 0.02) for i in range(2, 51)]
    assert timing.figures({"tasks": tasks}, WORKLOADS["ping"], 2) == pytest.approx({"serial_s": 48.02})
    assert WORKLOADS["ping"].parts[0].count == 49


def test_missing_or_incomplete_tasks_give_none() -> None:
    first = WORKLOADS["first"]
    # the debug floor's playbook: other task names
    assert timing.figures({"tasks": [task("1 debug", 0, 1)]}, first, 2) == {"first_s": None}
    assert timing.figures({}, first, 2) == {"first_s": None}
    # a host never answered
    assert timing.figures({"tasks": [task("Ping every container", 0, 1, results=1)]}, first, 2) == {
        "first_s": None}
    assert timing.figures({"tasks": [task("Ping every container", 0, None, results=0)]}, first, 2) == {
        "first_s": None}
    # the last task must come after the first one
    part = Part("x_s", "a", "b", 1, "")
    assert timing.span([task("b", 0, 1), task("a", 2, 3)], part, 2) is None
    assert timing.span([task("a", 0, 1), task("b", 2, 3.5)], part, 2) == 3.5


def test_every_part_names_tasks_of_its_playbook() -> None:
    for w in WORKLOADS.values():
        plays = yaml.safe_load((CHECKOUT / "benchmarks" / "playbooks" / w.playbook).read_text())
        names = [t["name"] for play in plays for t in play["tasks"]]
        for p in w.parts:
            assert p.first in names and p.last in names, (w.name, p)
            assert names.index(p.first) <= names.index(p.last)
