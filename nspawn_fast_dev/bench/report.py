"""RESULTS.md and the chart, from pytest-benchmark's JSON of one session.

Everything shown is computed here from the session's own figures (extra_info of each
case); nothing is typed in by hand. Pure functions (summarise, targets, markdown)
are unit-tested from a fixture.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .plan import CONFIGS, REFERENCE, WORKLOADS, Part

CHART = "wall_time.png"
RAW = "results.json"
FLOORS = ("local", "debug", "debug_nl")
PARTS = tuple(dict.fromkeys(p.figure for w in WORKLOADS.values() for p in w.parts))
METRICS = ("wall_s", "cpu_s", "host_pids", "ssh_conns", "interp_rss_kb", "interp_pss_kb",
           "interpreters", *PARTS)


@dataclass(frozen=True, order=True)
class Key:
    workload: str
    containers: int
    forks: int

    @property
    def label(self) -> str:
        return f"{self.containers} ctr, forks {self.forks}"


def _median(values: list[Any]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarise(runs: list[dict[str, Any]]) -> dict[Key, dict[str, dict[str, Any]]]:
    """{cell: {config: {metric: median over rounds, 'rounds', 'wall_min', 'wall_max', 'ratio'}}}"""
    by: dict[Key, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        by[Key(r["workload"], r["containers"], r["forks"])][r["config"]].append(r)
    out: dict[Key, dict[str, dict[str, Any]]] = {}
    for key, configs in by.items():
        cell: dict[str, dict[str, Any]] = {}
        for name, rs in configs.items():
            walls = [r["wall_s"] for r in rs]
            s = {m: _median([r.get(m) for r in rs]) for m in METRICS}
            s.update(rounds=len(rs), wall_min=min(walls), wall_max=max(walls), tasks=rs[0]["tasks"])
            s["ms_task_ctr"] = 1000 * s["wall_s"] / (s["tasks"] * key.containers)
            cell[name] = s
        ref = cell.get(REFERENCE)
        for s in cell.values():
            s["ratio"] = s["wall_s"] / ref["wall_s"] if ref else None
        floor = cell.get("local")
        for name, s in cell.items():
            real = floor and name not in FLOORS  # a floor over a floor means nothing
            s["over_floor_ms"] = (1000 * (s["wall_s"] - floor["wall_s"]) / (s["tasks"] * key.containers)
                                  if real else None)
        out[key] = cell
    return out


def _get(summary: dict[Key, Any], key: Key, config: str, metric: str) -> Any:
    return summary.get(key, {}).get(config, {}).get(metric)


def _wall(summary: dict[Key, Any], w: str, n: int, f: int, config: str) -> float | None:
    return _get(summary, Key(w, n, f), config, "wall_s")


def _keys(summary: dict[Key, Any], workload: str, containers: int | None = None) -> list[Key]:
    return sorted(k for k in summary if k.workload == workload
                  and (containers is None or k.containers == containers))


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "**missed**")


def _rows_or_unmeasured(text: str, rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return rows or [(text, "-", _verdict(None))]


# The goals: nspawn_linear against its peers and floors, each from the run's own figures.
SERIAL_MS = 25          # workload (e): ms per ping task, 1 container
MITOGEN_X = {10: 2.0, 50: 2.5}  # workload (a): times faster than mitogen, by containers
SSH_X = 5               # workload (a): times faster than ssh at 10 containers
DEBUG_PAIR_X = 1.0      # debug_nl / debug
LOOP_X = 0.8            # workload (c): per-item time / mitogen's
FACTS_X = 1.0           # workload (d): time / ssh's, cold and warm
BIGFILE_X = 1.5         # workload (b): copy + fetch time / the local floor's
FIRST_X = 0.5           # workload (f) at 50 containers: time / mitogen's
PSS_MB = 20             # a container interpreter's PSS


def _compare(summary: dict[Key, Any], keys: list[Key], metric: str, other: str, limit: float,
             text: str, unit: str = "s", scale: float = 1, fmt: str = ".2f",
             where: str = "") -> list[tuple[str, str, str]]:
    """One row per cell: nspawn_linear's `metric` over `other`'s, at most `limit`; `where`:
    the cells meant, for the row of a run that has none."""
    rows = []
    for k in keys:
        a, b = _get(summary, k, REFERENCE, metric), _get(summary, k, other, metric)
        if a is not None and b:
            count = next((p.count for p in WORKLOADS[k.workload].parts if p.figure == metric), 1)
            x, y = a * scale / count, b * scale / count
            rows.append((f"{text}, {k.label}", f"{a / b:.2f}x ({x:{fmt}} vs {y:{fmt}} {unit})",
                         _verdict(a / b <= limit)))
    return _rows_or_unmeasured(text + where, rows)


def _faster(summary: dict[Key, Any], n: int, other: str, need: float) -> list[tuple[str, str, str]]:
    """Workload (a) at n containers: `other`'s wall time over nspawn_linear's, at least `need`."""
    text = f"workload (a): nspawn_linear at least {need:.1f}x faster than {other}"
    rows = []
    for k in _keys(summary, "mix", n):
        a, b = _get(summary, k, other, "wall_s"), _get(summary, k, REFERENCE, "wall_s")
        if a and b:
            rows.append((f"{text}, {k.label}", f"{a / b:.2f}x", _verdict(a / b >= need)))
    return _rows_or_unmeasured(f"{text} at {n} containers", rows)


def targets(summary: dict[Key, dict[str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """The project's targets as (target, measured, verdict)."""
    rows: list[tuple[str, str, str]] = []

    text = f"serial ping, workload (e): nspawn_linear at most {SERIAL_MS} ms per task (tasks 2-50)"
    found = []
    (part,) = WORKLOADS["ping"].parts  # tasks 2-50
    for k in _keys(summary, "ping", 1):
        v = _get(summary, k, REFERENCE, part.figure)
        if v is not None:
            ms = 1000 * v / part.count
            found.append((f"{text}, {k.label}", f"{ms:.1f} ms", _verdict(ms <= SERIAL_MS)))
    rows += _rows_or_unmeasured(text, found)

    for n, need in MITOGEN_X.items():
        rows += _faster(summary, n, "mitogen", need)
    rows += _faster(summary, 10, "ssh", SSH_X)

    text = "`debug` tasks no slower under nspawn_linear than under linear (`debug_nl` / `debug`)"
    found = []
    for k in _keys(summary, "mix") + _keys(summary, "ping"):
        d, d_nl = (summary[k].get(c) for c in ("debug", "debug_nl"))
        if d and d_nl:
            r = d_nl["wall_s"] / d["wall_s"]
            rounds = min(d["rounds"], d_nl["rounds"])
            found.append((f"{text}, at most {DEBUG_PAIR_X:.1f}x: 50 debug tasks as in workload "
                          f"{WORKLOADS[k.workload].about[:3]}, {k.label}, {rounds} round{'s' * (rounds != 1)}",
                          f"{r:.2f}x ({d_nl['wall_s']:.2f} vs {d['wall_s']:.2f} s)",
                          _verdict(r <= DEBUG_PAIR_X)))
    rows += _rows_or_unmeasured(text, found)

    rows += _compare(summary, _keys(summary, "loop"), "items_s", "mitogen", LOOP_X,
                     f"loop (c): nspawn_linear's per-item time at most {LOOP_X:g}x mitogen's",
                     unit="ms", scale=1000, fmt=".1f")
    for phase in ("cold", "warm"):
        rows += _compare(summary, _keys(summary, "facts"), f"{phase}_s", "ssh", FACTS_X,
                         f"facts (d), {phase}: nspawn_linear at most {FACTS_X:.1f}x stock ssh")
    rows += _compare(summary, _keys(summary, "bigfile"), "transfer_s", "local", BIGFILE_X,
                     f"100 MB copy + fetch (b): nspawn_linear at most {BIGFILE_X:g}x the `local` floor")
    rows += _compare(summary, _keys(summary, "first", 50), "first_s", "mitogen", FIRST_X,
                     f"first task on every container (f): nspawn_linear at most {FIRST_X:g}x "
                     "mitogen's time", where=", 50 containers")

    text = (f"a container's interpreter at most {PSS_MB} MB PSS (nspawn_linear, at the most "
            "containers measured, where interpreters share a host; the largest cell there)")
    mem = [(k.containers, s["interp_pss_kb"], s["interp_rss_kb"], k) for k in sorted(summary)
           if (s := summary[k].get(REFERENCE)) and s.get("interp_pss_kb")]
    if mem:
        _, pss, rss, k = max(mem, key=lambda m: m[:2])
        rows.append((text, f"{pss / 1024:.1f} MB ({_fmt(rss, '.1f', 1 / 1024)} MB RSS; "
                           f"{WORKLOADS[k.workload].about[:3]} {k.label})", _verdict(pss / 1024 <= PSS_MB)))
    else:
        rows.append((text, "-", _verdict(None)))

    for f in sorted({k.forks for k in summary if k.workload == "mix"}):
        w10, w50 = _wall(summary, "mix", 10, f, REFERENCE), _wall(summary, "mix", 50, f, REFERENCE)
        if w10 and w50:
            allowed = math.ceil(50 / f) / math.ceil(10 / f)
            rows.append((f"workload (a): nspawn_linear's wall time from 10 to 50 containers grows no more "
                         f"than containers per fork slot (forks {f}: at most {allowed:g}x)",
                         f"{w50 / w10:.2f}x", _verdict(w50 / w10 <= allowed)))
    return rows


def targets_table(summary: dict[Key, dict[str, dict[str, Any]]]) -> list[str]:
    """The targets as markdown table lines (RESULTS.md and the README block)."""
    return ["| target | measured | verdict |", "|---|---:|---|",
            *(f"| {t} | {m} | {v} |" for t, m, v in targets(summary))]


def _fmt(v: Any, spec: str = ".1f", scale: float = 1) -> str:
    return "-" if v is None else format(v * scale, spec)


def _order(names: Any) -> list[str]:
    return [c for c in CONFIGS if c in names]


def headline(summary: dict[Key, dict[str, dict[str, Any]]]) -> str:
    """Workload (a): wall seconds and ratio to nspawn_linear, configurations x scales."""
    keys = sorted(k for k in summary if k.workload == "mix")
    if not keys:
        return "(workload (a) was not run)\n"
    configs = _order({c for k in keys for c in summary[k]})
    head = "| configuration | " + " | ".join(k.label for k in keys) + " |\n"
    head += "|---|" + "---:|" * len(keys) + "\n"
    for c in configs:
        cells = []
        for k in keys:
            s = summary[k].get(c)
            cells.append("-" if s is None else f"{s['wall_s']:.1f} s ({_fmt(s['ratio'], '.2f')}x)")
        head += f"| `{c}` | " + " | ".join(cells) + " |\n"
    return head


def _part_value(s: dict[str, Any], part: Part) -> str:
    v = s.get(part.figure)
    if v is None:
        return "-"
    return f"{v:.2f}" + (f" ({1000 * v / part.count:.1f} ms each)" if part.count > 1 else "")


def cell_table(cell: dict[str, dict[str, Any]], parts: tuple[Part, ...] = ()) -> str:
    """One cell's figures per configuration; `parts`: the workload's timed parts, a column each."""
    out = ("| configuration | wall s (min-max) | x nspawn_linear | ms/task/ctr | over floor "
           "ms/task/ctr | controller CPU s | SSH conns | host PIDs | interp. RSS / PSS MB (n) |"
           + "".join(f" {p.figure[:-2]} s |" for p in parts) + "\n"
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(parts) + "\n")
    for c in _order(cell):
        s = cell[c]
        mem = ("-" if not s["interp_rss_kb"]
               else f"{s['interp_rss_kb'] / 1024:.1f} / {_fmt(s.get('interp_pss_kb'), '.1f', 1 / 1024)} "
                    f"({s['interpreters']:g})")
        out += (f"| `{c}` | {s['wall_s']:.2f} ({s['wall_min']:.2f}-{s['wall_max']:.2f}) "
                f"| {_fmt(s['ratio'], '.2f')} | {s['ms_task_ctr']:.0f} | {_fmt(s['over_floor_ms'], '.0f')} "
                f"| {s['cpu_s']:.1f} | {s['ssh_conns']:g} | {s['host_pids']:g} | {mem} |"
                + "".join(f" {_part_value(s, p)} |" for p in parts) + "\n")
    return out


def markdown(summary: dict[Key, dict[str, dict[str, Any]]], meta: dict[str, Any]) -> str:
    L = [f"# Benchmark results ({meta['label']} run)", "",
         "Written by `nspawn-fast bench` from the run's own figures "
         f"([{RAW}]({RAW}) is pytest-benchmark's raw output); never edited by hand.", "",
         f"- date: {meta['date']}",
         f"- command: `{meta['command']}`",
         f"- commit: {meta['commit']}",
         f"- machine: {meta['machine']}",
         f"- versions: {meta['versions']}",
         f"- rounds: {rounds_line(summary, meta['rounds'])}, interleaved (A B C D A B C D ...); "
         "figures are medians over rounds",
         f"- load: {load_line(meta.get('loads') or [])}", ""]
    L += ["## Headline: workload (a), 50-task mix", "",
          "Wall time, median; in brackets the ratio to `nspawn_linear` in the same cell "
          "(above 1: slower than ours).", "", headline(summary),
          f"![wall time by configuration and scale]({CHART})", ""]
    L += ["## Targets", "", *targets_table(summary)]
    L += [""]
    if meta.get("failures"):
        L += ["## Failed cases", "", "These configurations did not complete their playbook; "
              "they are missing from the tables.", ""]
        L += [f"- `{f['id']}`: {f['why'].strip().splitlines()[-1][:200] if f['why'].strip() else ''}"
              for f in meta["failures"]]
        L += [""]
    L += ["## Configurations", ""]
    L += [f"- `{c.name}` (strategy `{c.strategy}`): {c.about}" for c in CONFIGS.values()]
    L += ["", "## Figures per workload", "",
          "- *ms/task/ctr*: wall time / (task executions x containers); *over floor*: the same "
          "for (wall - the `local` floor's wall).",
          "- *controller CPU*: user+system time of ansible-playbook and all it started on the "
          "controller, ssh ControlPersist masters included (wait4 rusage, child subreaper).",
          "- *SSH conns*: sshd connection processes that appeared on the hosts and in the "
          "guests during the run.",
          "- *host PIDs*: PIDs allocated in the hosts' PID namespaces (guests included) during the "
          "run: processes and threads started (last-PID field of /proc/loadavg).",
          "- *interp. RSS / PSS*: memory of the persistent (mitogen) interpreters inside the "
          "containers. RSS: peak resident memory of each, median. PSS (proportional: a page "
          "shared by k processes counts 1/k): the interpreters' summed PSS at its peak, per "
          "interpreter alive then. (n) interpreters found. `-`: no persistent interpreter "
          "(stock strategies start one python per task) or not on a lab host (`local`).",
          "- *timed parts* (last columns of some workloads): seconds from the start of one task "
          "to the last container's result of a task (the same or a later one), from task "
          "start and result times recorded on the controller by a callback; ansible-playbook's "
          "start-up and the other tasks are outside them.", ""]
    for w in WORKLOADS.values():
        keys = sorted((k for k in summary if k.workload == w.name),
                      key=lambda k: (k.containers, k.forks))
        if not keys:
            continue
        L += [f"### {w.about}", ""]
        L += [f"- *{p.figure[:-2]}*: {p.about}" for p in w.parts] + ([""] if w.parts else [])
        for k in keys:
            L += [f"**{k.label}**", "", cell_table(summary[k], w.parts)]
    L += ["## Not run", ""]
    L += [f"- {x}" for x in meta.get("not_run") or ["nothing: the whole requested matrix ran"]]
    return "\n".join(L).rstrip() + "\n"


def rounds_line(summary: dict[Key, dict[str, dict[str, Any]]], rounds: int) -> str:
    """The session's rounds per configuration, and the configurations that ran more or fewer."""
    other: dict[str, set[int]] = defaultdict(set)
    for cell in summary.values():
        for c, s in cell.items():
            if s["rounds"] != rounds:
                other[c].add(s["rounds"])
    more = "; ".join(f"`{c}`: {', '.join(map(str, sorted(other[c])))}" for c in _order(other))
    return f"{rounds} per configuration" + (f" ({more})" if more else "")


def load_line(loads: list[float]) -> str:
    """How busy the machine was: a shared machine's noise is part of every figure."""
    if not loads:
        return "not recorded"
    return (f"1-min load average at the start of each run: median {statistics.median(loads):.1f}, "
            f"max {max(loads):.1f} (on {os.cpu_count()} CPUs; above that, other work shared the machine)")


def chart(summary: dict[Key, dict[str, dict[str, Any]]], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    workloads = [w for w in WORKLOADS if any(k.workload == w for k in summary)]
    colour = {c: f"C{i}" for i, c in enumerate(CONFIGS)}  # one colour per configuration everywhere
    cols = min(3, len(workloads))
    rows = -(-len(workloads) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.5 * rows), squeeze=False)
    for ax in axes.flat[len(workloads):]:
        ax.set_visible(False)
    for ax, w in zip(axes.flat, workloads, strict=False):
        keys = sorted((k for k in summary if k.workload == w), key=lambda k: (k.containers, k.forks))
        configs = _order({c for k in keys for c in summary[k]})
        width = 0.8 / max(1, len(configs))
        for i, c in enumerate(configs):
            xs = [j + i * width for j, k in enumerate(keys) if c in summary[k]]
            ys = [summary[k][c]["wall_s"] for k in keys if c in summary[k]]
            ax.bar(xs, ys, width, label=c, color=colour[c])
        ax.set_xticks([j + width * (len(configs) - 1) / 2 for j in range(len(keys))])
        ax.set_xticklabels([f"{k.containers} ctr\nforks {k.forks}" for k in keys])
        walls = [s["wall_s"] for k in keys for s in summary[k].values()]
        wide = max(walls) > 10 * min(walls)  # a log axis only where the bars span a decade
        if wide:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ticker.ScalarFormatter())
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())  # not "6x10^0"
        ax.set_ylabel("wall time, s" + (" (log)" if wide else ""))
        ax.set_title("\n".join(textwrap.wrap(WORKLOADS[w].about.split(":")[0], 50)[:2]), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    shown = _order({c for k in summary for c in summary[k]})
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[c]) for c in shown]
    bottom = 0.0
    if cols >= 3:  # wide enough for one row under the panels
        fig.legend(handles, shown, loc="lower center", ncol=len(shown), fontsize=9)
        bottom = 0.06 / rows
    else:
        axes[0][0].legend(handles, shown, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def runs_from(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The cases that completed (a failed case has no wall_s in its extra_info)."""
    return [b["extra_info"] for b in raw.get("benchmarks", []) if "wall_s" in b.get("extra_info", {})]


README_START = "<!-- nspawn-fast bench: start (written by `nspawn-fast bench`, not by hand) -->"
README_END = "<!-- nspawn-fast bench: end -->"


def readme_block(summary: dict[Key, dict[str, dict[str, Any]]], meta: dict[str, Any], rel: str) -> str:
    """The README's headline: workload (a), the chart and the targets; `rel` is the
    report's directory relative to the README."""
    L = [README_START, "",
         f"From `{meta['command']}` on {meta['date'][:10]} ({meta['machine']}; {meta['versions']}); "
         f"every figure, the machine's load and what was not run: [{rel}/RESULTS.md]({rel}/RESULTS.md).", "",
         "Workload (a), the 50-task mix: wall time, median; in brackets the ratio to `nspawn_linear` "
         "in the same run.", "", headline(summary).rstrip(), "",
         f"![wall time by configuration and scale]({rel}/{CHART})", "", *targets_table(summary)]
    return "\n".join([*L, "", README_END])


def update_readme(readme: Path, block: str) -> bool:
    """Replace the README's block between the markers; False if it has none."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    readme.write_text(text[:start] + block + text[end + len(README_END):])
    return True


def write(out_dir: Path, raw_json: Path, meta: dict[str, Any], readme: Path | None = None) -> Path:
    raw = json.loads(raw_json.read_text())
    summary = summarise(runs_from(raw))
    meta = {**meta, "date": raw.get("datetime", meta.get("date", "?")),
            "loads": [b["extra_info"]["load1"] for b in raw.get("benchmarks", [])
                      if "load1" in b.get("extra_info", {})]}
    out_dir.mkdir(parents=True, exist_ok=True)
    if raw_json.resolve() != (out_dir / RAW).resolve():
        (out_dir / RAW).write_text(raw_json.read_text())
    chart(summary, out_dir / CHART, f"ansible-nspawn-fast benchmarks, {meta['date'][:10]}")
    md = out_dir / "RESULTS.md"
    md.write_text(markdown(summary, meta))
    if readme is not None:
        rel = os.path.relpath(out_dir, readme.parent)
        if not update_readme(readme, readme_block(summary, meta, rel)):
            print(f"nspawn-fast bench: {readme} has no results markers; left as it is")
    return md
