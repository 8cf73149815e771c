"""Report rendering from a fixture of results: medians, ratios, targets, markdown, chart."""
from __future__ import annotations

import json
from pathlib import Path

from nspawn_fast_dev.bench import report
from nspawn_fast_dev.bench.plan import WORKLOADS

WALLS = {  # (containers, forks, config) -> walls over two rounds
    (10, 10, "ssh"): [100, 110], (10, 10, "mitogen"): [30, 34], (10, 10, "nspawn_linear"): [18, 20],
    (10, 10, "local"): [15, 15], (10, 10, "debug"): [8, 8],
    (50, 10, "mitogen"): [150, 150], (50, 10, "nspawn_linear"): [80, 80], (50, 10, "debug"): [30, 30],
}


def runs() -> list[dict]:
    out = []
    for (n, f, c), walls in WALLS.items():
        for i, w in enumerate(walls, 1):
            out.append({"workload": "mix", "containers": n, "forks": f, "round": i, "config": c,
                        "tasks": 50, "wall_s": w, "cpu_s": w / 2, "host_pids": 100, "ssh_conns": 2,
                        "interpreters": 10 if "linear" in c or c == "mitogen" else 0,
                        "interp_rss_kb": 35000 if c in ("mitogen", "nspawn_linear") else None})
    return out


def test_summarise_medians_and_ratios() -> None:
    s = report.summarise(runs())
    cell = s[report.Key("mix", 10, 10)]
    assert cell["ssh"]["wall_s"] == 105 and cell["ssh"]["wall_min"] == 100
    assert cell["nspawn_linear"]["ratio"] == 1
    assert cell["ssh"]["ratio"] == 105 / 19
    assert cell["nspawn_linear"]["ms_task_ctr"] == 1000 * 19 / 500
    assert cell["nspawn_linear"]["over_floor_ms"] == 1000 * 4 / 500
    assert report.summarise(runs())[report.Key("mix", 50, 10)]["mitogen"]["over_floor_ms"] is None


def part_runs() -> list[dict]:
    """Runs of the workloads with timed parts (one round each) and the debug pair."""
    base = {"forks": 10, "round": 1, "cpu_s": 1, "host_pids": 0, "ssh_conns": 0, "interpreters": 1,
            "interp_rss_kb": None}
    out = []

    def add(workload: str, n: int, config: str, **figures: float) -> None:
        out.append({**base, "workload": workload, "containers": n, "config": config,
                    "tasks": WORKLOADS[workload].tasks, "wall_s": 3.0, **figures})

    add("ping", 1, "nspawn_linear", serial_s=0.98, interp_rss_kb=36000, interp_pss_kb=18 * 1024)
    add("loop", 1, "nspawn_linear", items_s=1.5)
    add("loop", 1, "mitogen", items_s=2.0)
    add("facts", 1, "nspawn_linear", cold_s=0.5, warm_s=0.33)
    add("facts", 1, "ssh", cold_s=0.6, warm_s=0.3)
    add("bigfile", 1, "nspawn_linear", transfer_s=1.4)
    add("bigfile", 1, "local", transfer_s=1.0)
    add("first", 50, "nspawn_linear", first_s=3.0, interp_rss_kb=30000, interp_pss_kb=12 * 1024)
    add("first", 50, "mitogen", first_s=7.5)
    for r, (d, d_nl) in enumerate([(1.0, 0.98), (1.1, 1.0), (0.9, 0.95)], 1):
        out += [{**base, "workload": "ping", "containers": 1, "config": c, "round": r, "tasks": 50,
                 "wall_s": w} for c, w in (("debug", d), ("debug_nl", d_nl))]
    return out


def rows_by(rows: list[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    return {t: (m, v) for t, m, v in rows}


def find(rows: dict[str, tuple[str, str]], *words: str) -> tuple[str, str]:
    hits = [v for t, v in rows.items() if all(w in t for w in words)]
    assert len(hits) == 1, (words, list(rows))
    return hits[0]


def test_speed_targets_from_workload_a() -> None:
    rows = rows_by(report.targets(report.summarise(runs())))
    assert find(rows, "5.0x faster than ssh", "10 ctr") == ("5.53x", "met")
    # 32/19 and 150/80: below 2.0x and 2.5x
    assert find(rows, "2.0x faster than mitogen", "10 ctr") == ("1.68x", "**missed**")
    assert find(rows, "2.5x faster than mitogen", "50 ctr") == ("1.88x", "**missed**")
    assert find(rows, "grows") == ("4.21x", "met")
    # the issue-era targets are gone
    assert not [t for t in rows if "2.7x" in t or "1.6x" in t or "30 ms" in t or "25 MB" in t]


def test_speed_targets_met_when_mitogen_is_slower_enough() -> None:
    slow = [{**r, "wall_s": r["wall_s"] * 2} if r["config"] == "mitogen" else r for r in runs()]
    rows = rows_by(report.targets(report.summarise(slow)))
    assert find(rows, "2.0x faster than mitogen", "10 ctr") == ("3.37x", "met")
    assert find(rows, "2.5x faster than mitogen", "50 ctr") == ("3.75x", "met")


def test_timed_part_targets() -> None:
    rows = rows_by(report.targets(report.summarise(part_runs())))
    assert find(rows, "serial ping") == ("20.0 ms", "met")  # 0.98 s over tasks 2-50
    assert find(rows, "loop (c)") == ("0.75x (15.0 vs 20.0 ms)", "met")
    assert find(rows, "facts (d), cold") == ("0.83x (0.50 vs 0.60 s)", "met")
    assert find(rows, "facts (d), warm") == ("1.10x (0.33 vs 0.30 s)", "**missed**")
    assert find(rows, "copy + fetch") == ("1.40x (1.40 vs 1.00 s)", "met")
    assert find(rows, "first task") == ("0.40x (3.00 vs 7.50 s)", "met")
    # medians over 3 rounds: debug 1.0, debug_nl 0.98
    assert find(rows, "debug_nl", "(e)") == ("0.98x (0.98 vs 1.00 s)", "met")
    assert "3 rounds" in next(t for t in rows if "debug_nl" in t)
    # at the most containers (interpreters sharing pages), not the larger 1-container figure
    assert find(rows, "PSS") == ("12.0 MB (29.3 MB RSS; (f) 50 ctr, forks 10)", "met")
    alone = rows_by(report.targets(report.summarise([r for r in part_runs() if r["workload"] != "first"])))
    assert find(alone, "PSS") == ("18.0 MB (35.2 MB RSS; (e) 1 ctr, forks 10)", "met")


def test_timed_part_targets_missed() -> None:
    worse = [{**r, **{k: v * 2 for k, v in r.items() if k in report.PARTS}}
             if r["config"] == "nspawn_linear" else r for r in part_runs()]
    worse = [{**r, "wall_s": 1.2} if r["config"] == "debug_nl" else r for r in worse]
    worse = [{**r, "interp_pss_kb": 21 * 1024} if r.get("interp_pss_kb") else r for r in worse]
    rows = rows_by(report.targets(report.summarise(worse)))
    assert find(rows, "serial ping")[1] == "**missed**"
    assert find(rows, "loop (c)")[1] == "**missed**"
    assert find(rows, "facts (d), cold")[1] == "**missed**"
    assert find(rows, "copy + fetch")[1] == "**missed**"
    assert find(rows, "first task")[1] == "**missed**"
    assert find(rows, "debug_nl", "(e)")[1] == "**missed**"
    assert find(rows, "PSS")[1] == "**missed**"


def test_first_task_target_only_at_50_containers() -> None:
    at1 = [{**r, "containers": 1} if r["workload"] == "first" else r for r in part_runs()]
    rows = report.targets(report.summarise(at1))
    assert [r[1:] for r in rows if "first task" in r[0]] == [("-", "not measured")]


def test_missing_cells_are_not_measured() -> None:
    rows = report.targets(report.summarise([r for r in runs() if r["config"] != "ssh"]))
    ssh = [r for r in rows if "than ssh" in r[0]]
    assert [r[1:] for r in ssh] == [("-", "not measured")]
    # every target has a row, measured or not
    assert len([r for r in rows if r[2] == "not measured"]) == 9


def test_markdown_and_chart(tmp_path: Path) -> None:
    raw = tmp_path / "bench.json"
    raw.write_text(json.dumps({"datetime": "2026-11-25T18:00:00", "benchmarks": [
        {"extra_info": r} for r in runs()] + [{"extra_info": {"config": "ssh"}}]}))
    meta = {"label": "default", "rounds": 2, "command": "nspawn-fast bench", "commit": "abc",
            "machine": "2 CPUs", "versions": "ansible-core 2.19", "not_run": ["forks 50: time"],
            "failures": [{"id": "mix-n50-f10-r1-ssh", "why": "trace\nansible-playbook exit 2"}]}
    md = report.write(tmp_path / "out", raw, meta).read_text()
    assert "| `ssh` | 105.0 s (5.53x) | - |" in md
    assert "`mix-n50-f10-r1-ssh`: ansible-playbook exit 2" in md
    assert "- forks 50: time" in md
    assert "2026-11-25T18:00:00" in md
    assert (tmp_path / "out" / report.CHART).stat().st_size > 1000
    assert (tmp_path / "out" / report.RAW).exists()


def test_markdown_without_matplotlib() -> None:
    meta = {"label": "smoke", "rounds": 1, "command": "c", "commit": "x", "machine": "m",
            "versions": "v", "date": "d", "not_run": []}
    md = report.markdown(report.summarise(runs()), meta)
    assert "| `nspawn_linear` | 19.0 s (1.00x) | 80.0 s (1.00x) |" in md
    assert "nothing: the whole requested matrix ran" in md
    assert "- load: not recorded" in md
    assert "median 3.0, max 9.0" in report.load_line([1.0, 3.0, 9.0])


def test_cell_table_shows_pss_and_timed_parts() -> None:
    s = report.summarise(part_runs())
    table = report.cell_table(s[report.Key("loop", 1, 10)], WORKLOADS["loop"].parts)
    assert "| items s |" in table
    assert "| 1.50 (15.0 ms each) |" in table
    ping = report.cell_table(s[report.Key("ping", 1, 10)], WORKLOADS["ping"].parts)
    assert "| 35.2 / 18.0 (1) |" in ping
    assert report.rounds_line(s, 1) == "1 per configuration (`debug`: 3; `debug_nl`: 3)"


def test_readme_block_replaces_only_between_markers(tmp_path: Path) -> None:
    meta = {"command": "nspawn-fast bench", "date": "2026-11-26T09:00:00", "machine": "2 CPUs",
            "versions": "ansible-core 2.19"}
    block = report.readme_block(report.summarise(runs()), meta, "benchmarks")
    assert block.startswith(report.README_START) and block.endswith(report.README_END)
    assert "| `nspawn_linear` | 19.0 s (1.00x) | 80.0 s (1.00x) |" in block
    assert "![wall time by configuration and scale](benchmarks/wall_time.png)" in block
    readme = tmp_path / "README.md"
    readme.write_text(f"# top\n\n{report.README_START}\nold figures\n{report.README_END}\n\n## after\n")
    assert report.update_readme(readme, block)
    text = readme.read_text()
    assert text.startswith("# top\n\n" + report.README_START) and text.endswith(report.README_END + "\n\n## after\n")
    assert "old figures" not in text
    plain = tmp_path / "PLAIN.md"
    plain.write_text("# no markers\n")
    assert not report.update_readme(plain, block) and plain.read_text() == "# no markers\n"
