"""What the suite measures, as plain data: configurations, workloads, scales, cases.

A case is one `ansible-playbook` run. Cases are ordered round-major and then by
configuration (A B C D A B C D ...), so that the noise of a shared machine falls
on every configuration alike.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

# Inventory shapes (see inventory.py).
SSH, NSPAWN, MACHINECTL, LOCAL = "ssh", "nspawn", "machinectl", "local"


@dataclass(frozen=True)
class Config:
    name: str
    strategy: str      # linear, mitogen_linear, nspawn_linear
    shape: str         # how the containers are addressed in the inventory
    about: str
    only: tuple[str, ...] = ()  # workloads it applies to (empty: all)
    playbook: str = ""          # overrides the workload's playbook (the debug floor)


@dataclass(frozen=True)
class Part:
    """A timed span inside a run: from the start of task `first` to the last host's result
    of task `last` (the timing callback's timestamps, see timing.py), in seconds."""

    figure: str   # the figure's name in a run's results, e.g. "cold_s"
    first: str    # task names in the workload's playbook
    last: str
    count: int    # task executions (a loop: items) per container inside the span
    about: str


@dataclass(frozen=True)
class Workload:
    name: str
    playbook: str
    tasks: int  # task executions per container (a loop counts its items)
    about: str
    parts: tuple[Part, ...] = ()


REFERENCE = "nspawn_linear"

CONFIGS: dict[str, Config] = {c.name: c for c in (
    Config("ssh", "linear", SSH,
           "stock ssh connection into an sshd in each container (pipelining, ControlPersist)"),
    Config("nspawn", "linear", NSPAWN, "our nspawn connection plugin under stock linear"),
    Config("mitogen", "mitogen_linear", MACHINECTL,
           "mitogen_linear, Mitogen's machinectl connection with mitogen_via the host"),
    Config(REFERENCE, "nspawn_linear", NSPAWN, "ours: nspawn connection under nspawn_linear"),
    Config("local", "nspawn_linear", LOCAL,
           "floor: the same play under nspawn_linear against local-connection hosts"),
    Config("debug", "linear", NSPAWN,
           "floor: Ansible's own overhead, as many debug tasks under stock linear",
           only=("mix", "ping"), playbook="debug.yml"),
    Config("debug_nl", "nspawn_linear", NSPAWN,
           "connection-free tasks under nspawn_linear: the same debug tasks, to compare with `debug`",
           only=("mix", "ping"), playbook="debug.yml"),
)}

WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("mix", "mix.yml", 50,
             "(a) 50 tasks: command, shell, copy, template, file, stat, lineinfile, ping"),
    Workload("bigfile", "bigfile.yml", 4, "(b) copy of a 100 MB file and a fetch back "
             "(plus mkdir and rm)",
             (Part("transfer_s", "Copy 100 MB", "Fetch it back", 1, "copy + fetch"),)),
    Workload("loop", "loop.yml", 101, "(c) one command task looping over 100 items "
             "(after a ping that opens the connection)",
             (Part("items_s", "Command per item", "Command per item", 100, "the loop task"),)),
    Workload("facts", "facts.yml", 2, "(d) fact gathering (setup, all subsets), cold then warm",
             (Part("cold_s", "Gather facts, cold", "Gather facts, cold", 1,
                   "first task of the run (connection and interpreter start included)"),
              Part("warm_s", "Gather facts again, warm", "Gather facts again, warm", 1,
                   "the same again, connection warm"))),
    Workload("ping", "ping.yml", 50, "(e) 50 ping tasks: on 1 container, the serial per-task cost",
             (Part("serial_s", "2 ping", "50 ping", 49,
                   "tasks 2-50 (after the first has opened the connection)"),)),
    Workload("first", "first.yml", 1, "(f) first task: one ping on every container, the cold start "
             "a run pays (mostly interpreter starts)",
             (Part("first_s", "Ping every container", "Ping every container", 1,
                   "task start to the last container's result"),)),
)}


@dataclass(frozen=True)
class Case:
    workload: str
    containers: int
    forks: int
    round: int
    config: str

    @property
    def id(self) -> str:
        return f"{self.workload}-n{self.containers}-f{self.forks}-r{self.round}-{self.config}"

    @property
    def group(self) -> str:
        return f"{self.workload}-n{self.containers}-f{self.forks}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Cell:
    """One (workload, containers, forks) point, measured for a set of configurations.

    min_rounds: this cell runs at least so many rounds whatever the session's count (cheap
    cells whose target is a tight ratio); a plan may hold two cells with the same point.
    """

    workload: str
    containers: int
    forks: int
    configs: tuple[str, ...] = tuple(CONFIGS)
    min_rounds: int = 1


def applies(config: str, workload: str) -> bool:
    only = CONFIGS[config].only
    return not only or workload in only


def cases(cells: list[Cell], rounds: int) -> list[Case]:
    """Every cell's configurations, interleaved, repeated for each round.

    Within a round all cells come in order, and within a cell all configurations:
    a cell's rounds are spread over the whole session, not run back to back.
    """
    out = []
    most = max([rounds, *(c.min_rounds for c in cells)])
    for r, cell in itertools.product(range(1, most + 1), cells):
        if r <= max(rounds, cell.min_rounds):
            out += [Case(cell.workload, cell.containers, cell.forks, r, c)
                    for c in cell.configs if applies(c, cell.workload)]
    return out


def with_configs(cells: list[Cell], configs: list[str]) -> list[Cell]:
    """The plan's points, each with exactly these configurations (`--configs`), once each."""
    points = dict.fromkeys((c.workload, c.containers, c.forks) for c in cells)
    return [Cell(w, n, f, tuple(configs)) for w, n, f in points]


def matrix(scales: list[int], forks: list[int], workloads: list[str],
           configs: list[str] | None = None) -> list[Cell]:
    """The full cross product (`--full`'s matrix, or a part of it)."""
    cfgs = tuple(configs or CONFIGS)
    return [Cell(w, n, f, cfgs) for w in workloads for n in scales for f in forks]


def without_idle_forks(cells: list[Cell]) -> list[Cell]:
    """Drop a cell whose run a cell with fewer forks already makes: with forks >= containers
    every container has a fork slot, so more forks change nothing."""
    def covered(c: Cell) -> bool:
        return any(o.forks < c.forks and o.forks >= c.containers and (o.workload, o.containers)
                   == (c.workload, c.containers) for o in cells)
    return [c for c in cells if not covered(c)]


FAST = ("mitogen", REFERENCE)  # the persistent-interpreter configurations
FLOOR_PAIR = ("debug", "debug_nl")  # compared with each other: a ratio <= 1.0, no margin
FLOOR_PAIR_ROUNDS = 3


def _floor_pair_apart(cells: list[Cell]) -> list[Cell]:
    """Each cell as two: the debug pair in a cell of its own with FLOOR_PAIR_ROUNDS rounds
    (a few seconds each), everything else as it was."""
    out = []
    for c in cells:
        pair = tuple(x for x in c.configs if x in FLOOR_PAIR and applies(x, c.workload))
        rest = tuple(x for x in c.configs if x not in pair)
        if rest:
            out.append(Cell(c.workload, c.containers, c.forks, rest, c.min_rounds))
        if pair:
            out.append(Cell(c.workload, c.containers, c.forks, pair, FLOOR_PAIR_ROUNDS))
    return out


def default_cells() -> list[Cell]:
    """What fits in ~25-30 minutes on 2 cores with 2 rounds (measured: `ssh` and `nspawn`
    take 1.5-3 min per workload at 10 containers, about 5x that at 50): every workload
    at 1 container, workload (a) at 10 with every configuration, workload (a) and the
    first task (f) at 50 with the persistent-interpreter ones; the debug pair 3 rounds.
    """
    return _floor_pair_apart(
        matrix([1], [10], list(WORKLOADS)) + matrix([10], [10], ["mix"])
        + matrix([50], [10], ["mix", "first"], list(FAST)))


def extended_cells() -> list[Cell]:
    """About 50 minutes with 1 round: every workload at 1 and 10 containers, workload (a)
    at 50 with every configuration (forks 10) and with the fast ones plus the debug
    floor at forks 50, the first task (f) at 50 with the fast ones.
    """
    return (matrix([1, 10], [10], list(WORKLOADS)) + matrix([50], [10], ["mix"])
            + matrix([50], [10], ["first"], list(FAST))
            + matrix([50], [50], ["mix"], [*FAST, "debug"]))


def smoke_cells() -> list[Cell]:
    """CI: one container, every workload and configuration, so that none can rot."""
    return matrix([1], [10], list(WORKLOADS))


def guests_needed(cells: list[Cell], hosts: int = 2) -> int:
    """Guests per host for the largest scale (containers are spread over the hosts)."""
    biggest = max(c.containers for c in cells)
    return max(1, -(-biggest // hosts))
