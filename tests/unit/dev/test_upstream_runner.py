"""tests/upstream/runner.py (test tooling, not the runtime: here beside the development
tools' tests): two runs of the upstream targets in one container take turns."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from nspawn_fast_dev import CHECKOUT
from tests.upstream import runner


def _lab(tmp_path: Path) -> dict:
    return {"lab_dir": str(tmp_path), "hosts": [{"port": 1, "guests": ["c1", "c2"]}]}


def _hold_lock_in_another_process(lab_dir: Path, seconds: float) -> subprocess.Popen[str]:
    """Another test session: holds the container's lock for `seconds`, says when it has it."""
    code = (f"import time; from tests.upstream import runner\n"
            f"with runner.container_lock({{'lab_dir': {str(lab_dir)!r}, "
            f"'hosts': [{{'port': 1, 'guests': ['c1', 'c2']}}]}}):\n"
            f"    print('held', flush=True); time.sleep({seconds})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=CHECKOUT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_second_run_in_the_same_container_waits_for_the_first(tmp_path):
    other = _hold_lock_in_another_process(tmp_path, 1.5)
    try:
        start = time.monotonic()
        with runner.container_lock(_lab(tmp_path)):
            waited = time.monotonic() - start
    finally:
        other.wait(timeout=10)
    assert waited >= 1.0, "ran while the other run still held the container"


def test_a_run_that_holds_the_container_too_long_is_a_clear_error(tmp_path):
    other = _hold_lock_in_another_process(tmp_path, 5)
    try:
        with pytest.raises(RuntimeError, match=r"container c1: another run .* NSPAWN_FAST_UPSTREAM_CONTAINER"):
            with runner.container_lock(_lab(tmp_path), wait=0.5):
                pass
    finally:
        other.kill()
        other.wait(timeout=10)


def test_another_container_of_the_lab_does_not_wait(tmp_path, monkeypatch):
    other = _hold_lock_in_another_process(tmp_path, 5)
    try:
        monkeypatch.setenv("NSPAWN_FAST_UPSTREAM_CONTAINER", "c2")
        with runner.container_lock(_lab(tmp_path), wait=0.5):
            pass
    finally:
        other.kill()
        other.wait(timeout=10)
