"""A benchmark session's plan file: the cells, rounds, lab and output dir, as JSON.

`nspawn-fast bench` writes it, the pytest module reads it (NSPAWN_FAST_BENCH_PLAN),
and failed cases are appended next to it for the report.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .plan import Case, Cell, smoke_cells

PLAN_ENV = "NSPAWN_FAST_BENCH_PLAN"
DEFAULT_LAB_DIR = Path("/var/lib/nspawn-fast/bench-lab")
# A second bench lab (another --lab-dir) needs other ports: the same variables as the tests' labs.
HOST_PORT_BASE = int(os.environ.get("NSPAWN_FAST_BENCH_HOST_PORT_BASE", "2401"))
GUEST_PORT_BASE = int(os.environ.get("NSPAWN_FAST_BENCH_GUEST_PORT_BASE", "2501"))


@dataclass
class Plan:
    cells: list[Cell]
    rounds: int
    lab_dir: Path = DEFAULT_LAB_DIR
    out_dir: Path = Path("benchmarks")
    label: str = "custom"          # default, full, smoke or custom: shown in the report
    not_run: list[str] = field(default_factory=list)  # what was left out and why
    path: Path | None = None       # where this plan file lives

    @classmethod
    def smoke(cls, lab_dir: Path = DEFAULT_LAB_DIR) -> Plan:
        return cls(smoke_cells(), 1, lab_dir, label="smoke")

    def to_json(self) -> str:
        d = asdict(self)
        d["cells"] = [asdict(c) for c in self.cells]
        d.pop("path")
        return json.dumps(d, indent=2, default=str) + "\n"

    def save(self, path: Path) -> None:
        path.write_text(self.to_json())
        self.path = path

    @classmethod
    def load(cls, path: Path) -> Plan:
        d = json.loads(path.read_text())
        cells = [Cell(c["workload"], c["containers"], c["forks"], tuple(c["configs"]),
                      c.get("min_rounds", 1)) for c in d["cells"]]
        return cls(cells, d["rounds"], Path(d["lab_dir"]), Path(d["out_dir"]), d["label"],
                   d.get("not_run", []), path)

    @property
    def failures_file(self) -> Path | None:
        return self.path.with_name("failures.jsonl") if self.path else None


def record_failure(plan: Plan, case: Case, why: str) -> None:
    if plan.failures_file is None:
        return
    with open(plan.failures_file, "a") as f:
        f.write(json.dumps({**case.to_dict(), "id": case.id, "why": why}) + "\n")


def load_failures(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    except OSError:
        return []
