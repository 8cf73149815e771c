"""Benchmark plan: interleaving, applicability, plan files, the lab shape needed."""
from __future__ import annotations

from pathlib import Path

from nspawn_fast_dev.bench import command, plan, session
from nspawn_fast_dev.bench.plan import Case, Cell


def test_cases_interleave_configurations_round_major() -> None:
    cells = [Cell("mix", 1, 10, ("ssh", "nspawn_linear")), Cell("loop", 10, 10, ("ssh", "nspawn_linear"))]
    ids = [c.id for c in plan.cases(cells, 2)]
    assert ids == [
        "mix-n1-f10-r1-ssh", "mix-n1-f10-r1-nspawn_linear",
        "loop-n10-f10-r1-ssh", "loop-n10-f10-r1-nspawn_linear",
        "mix-n1-f10-r2-ssh", "mix-n1-f10-r2-nspawn_linear",
        "loop-n10-f10-r2-ssh", "loop-n10-f10-r2-nspawn_linear",
    ]


def test_debug_floor_only_for_the_50_task_workloads() -> None:
    cases = plan.cases(plan.matrix([1], [10], list(plan.WORKLOADS)), 1)
    for floor in ("debug", "debug_nl"):
        assert [c.workload for c in cases if c.config == floor] == ["mix", "ping"]
    assert len(cases) == 5 * 5 + 2 * 2


def test_smoke_is_one_container_every_workload_and_config() -> None:
    cells = plan.smoke_cells()
    assert {c.containers for c in cells} == {1}
    assert {c.workload for c in cells} == set(plan.WORKLOADS)
    assert all(set(c.configs) == set(plan.CONFIGS) for c in cells)


def test_default_plan_covers_target_cells() -> None:
    cells = {(c.workload, c.containers, c.forks) for c in plan.default_cells()}
    assert {("mix", 10, 10), ("mix", 50, 10)} <= cells
    assert {("mix", 10, 10), ("mix", 50, 10), ("mix", 50, 50)} <= {
        (c.workload, c.containers, c.forks) for c in plan.extended_cells()}
    assert plan.guests_needed(plan.default_cells()) == 25
    assert plan.guests_needed(plan.smoke_cells()) == 1
    assert plan.guests_needed([Cell("mix", 11, 10)]) == 6


def test_plan_file_round_trip(tmp_path: Path) -> None:
    p = session.Plan(plan.smoke_cells(), 2, Path("/x/lab"), Path("/x/out"), "smoke", ["why"])
    p.save(tmp_path / "plan.json")
    q = session.Plan.load(tmp_path / "plan.json")
    assert (q.cells, q.rounds, q.lab_dir, q.out_dir, q.label, q.not_run) == (
        p.cells, 2, Path("/x/lab"), Path("/x/out"), "smoke", ["why"])
    session.record_failure(q, Case("mix", 1, 10, 1, "ssh"), "boom")
    assert [f["id"] for f in session.load_failures(tmp_path / "failures.jsonl")] == ["mix-n1-f10-r1-ssh"]


def test_not_run_lists_what_the_full_matrix_has_and_the_plan_lacks() -> None:
    assert command.not_run(plan.matrix([1, 10, 50], [10, 50], list(plan.WORKLOADS)), "full") == [
        command.not_run([], "full")[-1]]
    lines = command.not_run(plan.default_cells(), "default")
    assert lines[0].startswith("why: ")
    assert "workload (a) at 50 containers, forks 10: ssh, nspawn, local, debug, debug_nl" in lines
    assert "workload (d) at 10 containers, forks 10: every configuration" in lines
    assert not any("at 1 containers" in ln for ln in lines)
