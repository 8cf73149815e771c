"""Host probe logic: process classification, PID deltas, combining hosts."""
from __future__ import annotations

import ast

from nspawn_fast_dev.bench import probe, sampler


def test_classify() -> None:
    assert sampler.classify("sshd", "sshd: /usr/sbin/sshd -D [listener]", "systemd", "", False) == "listener"
    # a connection's child right after fork still shows the listener's title
    assert sampler.classify("sshd", "sshd: /usr/sbin/sshd -D [listener]", "sshd", "listener", False) == "conn"
    assert sampler.classify("sshd", "sshd: root@notty", "sshd", "conn", False) == ""
    interp = "/usr/bin/python3(mitogen:nspawn:h1-c1)"
    assert sampler.classify("python3", interp, "sh", "", True) == "interp"
    # a module's subprocess between fork and exec looks like its interpreter
    assert sampler.classify("python3", interp, "python3", "interp", True) == ""
    assert sampler.classify("python3", "/usr/bin/python3(mitogen:ssh)", "sshd", "", False) == ""
    assert sampler.classify("python3", "/usr/bin/python3", "sh", "", True) == ""


def test_last_pid_and_wrap() -> None:
    assert sampler.last_pid("0.50 0.40 0.30 2/345 12345\n") == 12345
    assert probe.pids_started({"pid_start": 100, "pid_end": 150, "pid_max": 1000}) == 50
    assert probe.pids_started({"pid_start": 990, "pid_end": 310, "pid_max": 1000}) == 20


def test_combine_sums_hosts_and_takes_median_rss_and_pss_per_interpreter() -> None:
    r = probe.combine([
        {"pid_start": 0, "pid_end": 10, "pid_max": 99999, "conns": 1, "interp_rss_kb": [30000, 34000],
         "interp_pss_kb": 30000, "interp_pss_n": 2},
        {"pid_start": 5, "pid_end": 25, "pid_max": 99999, "conns": 2, "interp_rss_kb": [32000],
         "interp_pss_kb": 21000, "interp_pss_n": 1},
    ])
    assert r == {"host_pids": 30, "ssh_conns": 3, "interpreters": 3, "interp_rss_kb": 32000,
                 "interp_pss_kb": 17000}
    assert probe.combine([])["interp_rss_kb"] is None
    assert probe.combine([])["interp_pss_kb"] is None


def test_pss_from_smaps_rollup_and_fleet_peak() -> None:
    rollup = ("55d0c0000000-7ffd00000000 ---p 00000000 00:00 0    [rollup]\n"
              "Rss:               35120 kB\nPss:               12345 kB\nPss_Anon:           9000 kB\n")
    assert sampler.pss_kb(rollup) == 12345
    assert sampler.pss_kb("") == 0  # the process is gone
    peak = sampler.higher_peak((0, 0), [20000])      # one interpreter alone
    peak = sampler.higher_peak(peak, [15000, 14000])  # two, sharing pages: a higher sum
    assert peak == (29000, 2)
    assert sampler.higher_peak(peak, [16000]) == (29000, 2)  # one gone: the peak stays


def test_remote_command_is_one_quoted_python_c() -> None:
    cmd = probe.remote_command()
    assert cmd.startswith("python3 -u -c '")
    ast.parse(probe.SOURCE.read_text())  # the source sent to hosts is valid on its own
