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
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .plan import CONFIGS, REFERENCE, WORKLOADS

CHART = "wall_time.png"
RAW = "results.json"
FLOORS = ("local", "debug", "debug_nl")
METRICS = ("wall_s", "cpu_s", "host_pids", "ssh_conns", "interp_rss_kb", "interpreters")


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


def _wall(summary: dict[Key, Any], w: str, n: int, f: int, config: str) -> float | None:
    return summary.get(Key(w, n, f), {}).get(config, {}).get("wall_s")


def targets(summary: dict[Key, dict[str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """The issue's targets as (target, measured, verdict)."""
    rows: list[tuple[str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "**missed**")

    def ratio(other: str, n: int, f: int) -> float | None:
        a, b = _wall(summary, "mix", n, f, other), _wall(summary, "mix", n, f, REFERENCE)
        return a / b if a and b else None

    r = ratio("ssh", 10, 10)
    rows.append(("nspawn_linear >= 5x faster than ssh, workload (a), 10 containers (forks 10)",
                 f"{r:.2f}x" if r else "-", verdict(None if r is None else r >= 5)))
    r10 = ratio("mitogen", 10, 10)
    rows.append(("nspawn_linear >= 1.6x faster than mitogen, workload (a), 10 containers (forks 10)",
                 f"{r10:.2f}x" if r10 else "-", verdict(None if r10 is None else r10 >= 1.6)))
    for f in (10, 50):
        r50 = ratio("mitogen", 50, f)
        if r50 is not None:
            ok = r10 is not None and r50 > r10 and r50 >= 1.6
            rows.append((f"... and more at 50 containers (forks {f}) than at 10",
                         f"{r50:.2f}x", verdict(ok)))
    for key in sorted(k for k in summary if k.workload == "mix"):
        a = _wall(summary, "mix", key.containers, key.forks, REFERENCE)
        d = _wall(summary, "mix", key.containers, key.forks, "debug")
        if a and d:
            rows.append((f"nspawn_linear within 2.7x of 50 debug tasks under linear "
                         f"(Ansible's own overhead), workload (a), {key.label}",
                         f"{a / d:.2f}x", verdict(a / d <= 2.7)))
    for key in sorted(k for k in summary if k.workload in ("mix", "ping")):
        d, d_nl = (_wall(summary, key.workload, key.containers, key.forks, c) for c in ("debug", "debug_nl"))
        if d and d_nl:
            rows.append((f"connection-free tasks under nspawn_linear no slower than under stock linear "
                         f"(within 10%, a run's noise): 50 debug tasks as in workload "
                         f"{WORKLOADS[key.workload].about[:3]}, {key.label}",
                         f"{d_nl / d:.2f}x", verdict(d_nl / d <= 1.1)))
    for key in sorted(k for k in summary if k.workload == "ping" and k.containers == 1):
        s = summary[key].get(REFERENCE)
        if s:
            rows.append((f"serial ping at most 30 ms per task, nspawn_linear, workload (e), {key.label}",
                         f"{s['ms_task_ctr']:.0f} ms", verdict(s["ms_task_ctr"] <= 30)))
    rss = [summary[k][REFERENCE]["interp_rss_kb"] for k in sorted(summary)
           if summary[k].get(REFERENCE, {}).get("interp_rss_kb")]
    if rss:
        mb = max(rss) / 1024
        rows.append(("one container's interpreter at most 25 MB resident (nspawn_linear, the largest "
                     "per-cell median of peak VmRSS)", f"{mb:.1f} MB", verdict(mb <= 25)))
    for f in sorted({k.forks for k in summary if k.workload == "mix"}):
        w10, w50 = _wall(summary, "mix", 10, f, REFERENCE), _wall(summary, "mix", 50, f, REFERENCE)
        if w10 and w50:
            allowed = math.ceil(50 / f) / math.ceil(10 / f)
            rows.append((f"wall time 10 -> 50 containers grows no more than containers per fork "
                         f"slot (forks {f}: at most {allowed:g}x), nspawn_linear, workload (a)",
                         f"{w50 / w10:.2f}x", verdict(w50 / w10 <= allowed)))
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


def cell_table(cell: dict[str, dict[str, Any]]) -> str:
    out = ("| configuration | wall s (min-max) | x nspawn_linear | ms/task/ctr | over floor "
           "ms/task/ctr | controller CPU s | SSH conns | host PIDs | interp. RSS MB (n) |\n"
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    for c in _order(cell):
        s = cell[c]
        rss = ("-" if not s["interp_rss_kb"]
               else f"{s['interp_rss_kb'] / 1024:.1f} ({s['interpreters']:g})")
        out += (f"| `{c}` | {s['wall_s']:.2f} ({s['wall_min']:.2f}-{s['wall_max']:.2f}) "
                f"| {_fmt(s['ratio'], '.2f')} | {s['ms_task_ctr']:.0f} | {_fmt(s['over_floor_ms'], '.0f')} "
                f"| {s['cpu_s']:.1f} | {s['ssh_conns']:g} | {s['host_pids']:g} | {rss} |\n")
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
         f"- rounds: {meta['rounds']} per configuration, interleaved (A B C D A B C D ...); "
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
          "- *interp. RSS*: peak resident memory of each persistent (mitogen) interpreter "
          "inside a container, median; (n) interpreters found. `-`: no persistent interpreter "
          "(stock strategies start one python per task) or not on a lab host (`local`).", ""]
    for w in WORKLOADS.values():
        keys = sorted((k for k in summary if k.workload == w.name),
                      key=lambda k: (k.containers, k.forks))
        if not keys:
            continue
        L += [f"### {w.about}", ""]
        for k in keys:
            L += [f"**{k.label}**", "", cell_table(summary[k])]
    L += ["## Not run", ""]
    L += [f"- {x}" for x in meta.get("not_run") or ["nothing: the whole requested matrix ran"]]
    return "\n".join(L).rstrip() + "\n"


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
    fig, axes = plt.subplots(1, len(workloads), figsize=(5 * len(workloads), 4.5), squeeze=False)
    for ax, w in zip(axes[0], workloads, strict=True):
        keys = sorted((k for k in summary if k.workload == w), key=lambda k: (k.containers, k.forks))
        configs = _order({c for k in keys for c in summary[k]})
        width = 0.8 / max(1, len(configs))
        for i, c in enumerate(configs):
            xs = [j + i * width for j, k in enumerate(keys) if c in summary[k]]
            ys = [summary[k][c]["wall_s"] for k in keys if c in summary[k]]
            ax.bar(xs, ys, width, label=c)
        ax.set_xticks([j + width * (len(configs) - 1) / 2 for j in range(len(keys))])
        ax.set_xticklabels([f"{k.containers} ctr\nforks {k.forks}" for k in keys])
        walls = [s["wall_s"] for k in keys for s in summary[k].values()]
        wide = max(walls) > 10 * min(walls)  # a log axis only where the bars span a decade
        if wide:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ticker.ScalarFormatter())
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())  # not "6x10^0"
        ax.set_ylabel("wall time, s" + (" (log)" if wide else ""))
        ax.set_title(WORKLOADS[w].about.split(":")[0][:48], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
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
