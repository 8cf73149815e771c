"""`down` leaves nothing behind.  Runs last (lab_last) and brings the lab back up."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import LAB_DIR, bring_up, nspawn_fast


def _starttime(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return None if fields[0] in "ZX" else fields[19]


def _mounts_under(path: Path) -> list[str]:
    p = str(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [m for m in points if m == p or m.startswith(p + "/")]


@pytest.mark.lab_last
def test_down_leaves_nothing_then_up_again(lab: dict[str, Any]) -> None:
    state = json.loads((LAB_DIR / "state.json").read_text())
    procs = {h["pid"]: h["starttime"] for h in state["hosts"].values()}
    image = Path("/var/cache/nspawn-fast/images") / state["image"]
    assert all(_starttime(p) == str(s) for p, s in procs.items())

    cp = nspawn_fast("lab", "down", "--dir", str(LAB_DIR))
    assert cp.returncode == 0, cp.stderr
    assert [p for p, s in procs.items() if _starttime(p) == str(s)] == []
    assert _mounts_under(LAB_DIR) == []
    assert not LAB_DIR.exists()
    assert (image / "rootfs" / "usr" / "bin").is_dir() or "NSPAWN_FAST_CACHE_DIR" in str(cp.args)
    # a second down on nothing is fine too
    assert nspawn_fast("lab", "down", "--dir", str(LAB_DIR)).returncode == 0
    st = nspawn_fast("lab", "status", "--dir", str(LAB_DIR))
    assert st.returncode == 1 and "no lab" in st.stdout

    # Back up with the same shape, for whatever runs next (and for the user).
    again = bring_up()
    assert again["shape"] == lab["shape"]
