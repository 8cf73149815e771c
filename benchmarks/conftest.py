"""The benchmark session: which cases (from `nspawn-fast bench`'s plan file), the lab,
and a scratch dir. Without a plan file the smoke plan runs against the bench lab."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nspawn_fast_dev import CHECKOUT
from nspawn_fast_dev.bench import plan, runner, session


def _plan() -> session.Plan:
    path = os.environ.get(session.PLAN_ENV)
    return session.Plan.load(Path(path)) if path else session.Plan.smoke()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        cases = plan.cases(_plan().cells, _plan().rounds)
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def bench_ctx() -> Iterator[runner.Context]:
    p = _plan()
    try:
        lab = json.loads((p.lab_dir / "lab.json").read_text())
    except OSError as e:
        pytest.fail(f"no bench lab at {p.lab_dir} ({e}); `nspawn-fast bench` brings it up")
    runner.become_subreaper()
    work = Path(tempfile.mkdtemp(prefix="nfb-"))  # short: ssh ControlPath sockets live here
    try:
        ctx = runner.Context(lab=lab, work=work, playbooks=CHECKOUT / "benchmarks" / "playbooks")
        runner.make_big_file(ctx.big_file)
        yield ctx
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Failed cases go to the plan's failures file: the report lists them."""
    outcome = yield
    rep = outcome.get_result()
    case = getattr(item, "callspec", None) and item.callspec.params.get("case")
    if rep.failed and case is not None:
        session.record_failure(_plan(), case, str(rep.longrepr)[-2000:])
