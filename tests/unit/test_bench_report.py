"""Report rendering from a fixture of results: medians, ratios, targets, markdown, chart."""
from __future__ import annotations

import json
from pathlib import Path

from nspawn_fast_dev.bench import report

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


def test_targets_verdicts() -> None:
    rows = {t: (m, v) for t, m, v in report.targets(report.summarise(runs()))}
    ssh = next(v for t, v in rows.items() if "than ssh" in t)
    assert ssh == ("5.53x", "met")
    mit10 = next(v for t, v in rows.items() if "than mitogen" in t)
    assert mit10 == ("1.68x", "met")
    mit50 = next(v for t, v in rows.items() if "more at 50" in t)
    assert mit50 == ("1.88x", "met")
    floors = [v for t, v in rows.items() if "debug" in t]
    assert floors == [("2.38x", "met"), ("2.67x", "met")]
    growth = next(v for t, v in rows.items() if "grows" in t)
    assert growth == ("4.21x", "met")


def test_missing_cells_are_not_measured() -> None:
    rows = report.targets(report.summarise([r for r in runs() if r["config"] != "ssh"]))
    assert rows[0][1:] == ("-", "not measured")


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


def test_issue_4_targets() -> None:
    extra = []
    for c, wall, rss in (("nspawn_linear", 1.25, 20000), ("debug", 1.0, None), ("debug_nl", 1.05, None)):
        extra.append({"workload": "ping", "containers": 1, "forks": 10, "round": 1, "config": c,
                      "tasks": 50, "wall_s": wall, "cpu_s": 1, "host_pids": 0, "ssh_conns": 0,
                      "interpreters": 1, "interp_rss_kb": rss})
    rows = {t: (m, v) for t, m, v in report.targets(report.summarise(runs() + extra))}
    assert next(v for t, v in rows.items() if "serial ping" in t) == ("25 ms", "met")
    assert next(v for t, v in rows.items() if "connection-free" in t) == ("1.05x", "met")
    # the fixture's mix cells have 35000 kB interpreters: the largest median counts
    assert next(v for t, v in rows.items() if "25 MB" in t) == ("34.2 MB", "**missed**")


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
