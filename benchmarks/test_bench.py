"""One pytest-benchmark test per case: ansible-playbook timed in pedantic mode.

The cases come round-major and configuration-interleaved (plan.cases), so each test
is one round of one configuration; the report takes the median over rounds. Probes
are started in pedantic's untimed setup and read after the timed run.
"""
from __future__ import annotations

from typing import Any

from nspawn_fast_dev.bench import runner
from nspawn_fast_dev.bench.plan import Case


def test_case(case: Case, bench_ctx: runner.Context, benchmark: Any) -> None:
    benchmark.group = case.group
    started: list[runner.Run] = []

    def setup() -> tuple[tuple[runner.Run], dict[str, Any]]:
        started.append(runner.prepare(case, bench_ctx))
        return (started[-1],), {}

    try:
        benchmark.pedantic(runner.play, setup=setup, rounds=1, iterations=1, warmup_rounds=0)
    finally:
        figures = runner.finish(started[-1], bench_ctx) if started else None
    benchmark.extra_info.update(figures or {})
