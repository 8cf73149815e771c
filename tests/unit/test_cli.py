"""ansible_nspawn_fast/cli.py: the console command of an install without a checkout."""
from __future__ import annotations

import sys

from ansible_nspawn_fast import cli


def test_lab_and_bench_without_the_development_package_say_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nspawn_fast_dev", None)
    assert cli.main(["lab", "up"]) == 2
    assert cli.main(["bench", "--smoke"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["nspawn-fast: error: lab and bench are development tools: run them from a checkout "
                   "(./run ...)"] * 2
