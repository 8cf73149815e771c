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
    assert len(cases) == 6 * 5 + 2 * 2


def test_smoke_is_one_container_every_workload_and_config() -> None:
    cells = plan.smoke_cells()
    assert {c.containers for c in cells} == {1}
    assert {c.workload for c in cells} == set(plan.WORKLOADS)
    assert all(set(c.configs) == set(plan.CONFIGS) for c in cells)


def test_default_plan_covers_target_cells() -> None:
    cells = {(c.workload, c.containers, c.forks) for c in plan.default_cells()}
    assert {("mix", 10, 10), ("mix", 50, 10), ("first", 50, 10)} <= cells
    assert {(w, 1, 10) for w in plan.WORKLOADS} <= cells
    first50 = {c for x in plan.default_cells() if (x.workload, x.containers) == ("first", 50)
               for c in x.configs}
    assert first50 == {"mitogen", "nspawn_linear"}
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


def test_debug_pair_gets_three_rounds_in_the_default_plan_only() -> None:
    cases = plan.cases(plan.default_cells(), 2)
    rounds: dict[tuple[str, int, str], int] = {}
    for c in cases:
        rounds[(c.workload, c.containers, c.config)] = max(rounds.get((c.workload, c.containers, c.config), 0),
                                                           c.round)
    assert {k: v for k, v in rounds.items() if k[2] in plan.FLOOR_PAIR} == {
        ("mix", 1, "debug"): 3, ("mix", 1, "debug_nl"): 3, ("ping", 1, "debug"): 3,
        ("ping", 1, "debug_nl"): 3, ("mix", 10, "debug"): 3, ("mix", 10, "debug_nl"): 3}
    assert {v for k, v in rounds.items() if k[2] not in plan.FLOOR_PAIR} == {2}
    # no case twice, and the third round holds only the pair
    assert len({c.id for c in cases}) == len(cases)
    assert {c.config for c in cases if c.round == 3} == set(plan.FLOOR_PAIR)
    assert {c.round for c in plan.cases(plan.smoke_cells(), 1)} == {1}


def test_with_configs_merges_split_points() -> None:
    cells = plan.with_configs(plan.default_cells(), ["debug", "nspawn_linear"])
    points = [(c.workload, c.containers, c.forks) for c in cells]
    assert len(points) == len(set(points))
    assert all(c.configs == ("debug", "nspawn_linear") and c.min_rounds == 1 for c in cells)
    ids = [c.id for c in plan.cases(cells, 1)]
    assert len(ids) == len(set(ids))


def test_plan_file_keeps_min_rounds(tmp_path: Path) -> None:
    p = session.Plan(plan.default_cells(), 2)
    p.save(tmp_path / "plan.json")
    assert session.Plan.load(tmp_path / "plan.json").cells == plan.default_cells()


def test_forks_beyond_the_containers_are_not_run_twice() -> None:
    cells = plan.without_idle_forks(plan.matrix([1, 10, 50], [10, 50], ["mix"]))
    assert [(c.containers, c.forks) for c in cells] == [(1, 10), (10, 10), (50, 10), (50, 50)]
    # asked for alone, forks 50 at 1 container still runs
    assert len(plan.without_idle_forks(plan.matrix([1], [50], ["mix"]))) == 1
