"""What only the persistent interpreters of nspawn_linear promise, checked on the lab's hosts.

- Processes started on a host do not grow with the number of tasks (the interpreter runs them).
- SIGKILL of ansible-playbook leaves no interpreter behind, on the hosts or on the controller.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import controller_processes, guest_sh, host_sh
from test_connection import BIN, recap, run_ansible

# Tasks that start no process of their own inside the container (command or stat would).
TASK_CYCLE = [
    "ansible.builtin.ping:",
    "ansible.builtin.file: {path: /tmp/nf-count, state: touch, mode: '0644'}",
    "ansible.builtin.copy: {content: \"n\\n\", dest: /tmp/nf-count-copy, mode: '0644'}",
    "ansible.builtin.lineinfile: {path: /tmp/nf-count, line: counted}",
    "ansible.builtin.slurp: {src: /tmp/nf-count}",
]


def write_play(path: Path, target: str, tasks: int) -> Path:
    lines = [f"- hosts: {target}", "  gather_facts: false", "  tasks:"]
    lines += [f"    - {TASK_CYCLE[i % len(TASK_CYCLE)]}" for i in range(tasks)]
    path.write_text("\n".join(lines) + "\n")
    return path


def last_pid(lab: dict, host: dict) -> int:
    """The host's most recently allocated PID: guests' processes are counted there too."""
    return int(host_sh(lab, host, "cat /proc/loadavg").stdout.split()[-1])


def processes_started(lab: dict, host: dict, playbook: Path, strategy: str) -> int:
    before = last_pid(lab, host)
    proc = run_ansible(lab, str(playbook), env={"ANSIBLE_STRATEGY": strategy})
    after = last_pid(lab, host)
    assert proc.returncode == 0, proc.output[-4000:]
    assert all(c["failed"] == 0 for c in recap(proc.output).values())
    return after - before


def test_host_processes_do_not_grow_with_the_number_of_tasks(lab, tmp_path):
    host = lab["hosts"][-1]
    guest = host["guests"][0]
    short, long = (write_play(tmp_path / f"play{n}.yml", guest, n) for n in (4, 20))
    # The measure itself: per-command execution forks several processes per task.
    stock = (processes_started(lab, host, write_play(tmp_path / "stock6.yml", guest, 6), "linear")
             - processes_started(lab, host, write_play(tmp_path / "stock2.yml", guest, 2), "linear"))
    assert stock >= 4 * 3, f"stock linear started only {stock} processes for 4 more tasks"
    ours_short = processes_started(lab, host, short, "nspawn_linear")
    ours_long = processes_started(lab, host, long, "nspawn_linear")
    print(f"host processes: 4 tasks {ours_short}, 20 tasks {ours_long}; stock linear, 4 more tasks: {stock}")
    # 16 more tasks, fewer than one more process in all of them (noise of an idle host allowed).
    assert ours_long - ours_short < 16, (ours_short, ours_long)


def _interpreters_on(lab: dict, host: dict) -> list[str]:
    # mitogen names its interpreters "python3(mitogen:...)"; the brackets keep pgrep off itself.
    out = host_sh(lab, host, "pgrep -af '[m]itogen:' || true").stdout
    return [line for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("strategy", ["nspawn_linear", "nspawn_free"])
def test_controller_killed_with_sigkill_leaves_no_interpreter(lab, strategy):
    host = lab["hosts"][0]
    guests = host["guests"][:2]
    marker = f"nf-sigkill-{uuid.uuid4().hex}"
    env = {**os.environ, "ANSIBLE_CONFIG": lab["ansible_cfg"], "ANSIBLE_STRATEGY": strategy}
    deadline = time.monotonic() + 15
    while _interpreters_on(lab, host):  # earlier runs' interpreters exit as their runs end
        assert time.monotonic() < deadline, f"interpreters left by earlier runs: {_interpreters_on(lab, host)}"
        time.sleep(0.5)
    play = subprocess.Popen([str(BIN / "ansible"), ":".join(guests), "-m", "ansible.builtin.command",
                             "-a", "sleep 120", "-e", f"marker={marker}"],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not all(any(f"mitogen:nspawn:{g}" in p for p in _interpreters_on(lab, host)) for g in guests):
            assert play.poll() is None, f"ansible exited early ({play.returncode})"
            assert time.monotonic() < deadline, "the interpreters never started"
            time.sleep(0.5)
        play.kill()  # SIGKILL, the main process only: as a user's `kill -9` would
        play.wait()
        deadline = time.monotonic() + 15
        while True:
            left, ours = _interpreters_on(lab, host), controller_processes(marker.encode())
            if not left and not ours:
                break
            assert time.monotonic() < deadline, (
                f"15 s after SIGKILL: on {host['name']}: {left}; on the controller: {ours}")
            time.sleep(0.5)
    finally:
        for pid in controller_processes(marker.encode()):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("strategy", ["nspawn_linear", "nspawn_free"])
def test_task_workers_may_use_every_cpu_on_small_machines(lab, strategy, tmp_path):
    """mitogen pins every worker to one CPU below 4 CPUs; ours leaves them to the scheduler.

    A lookup runs in the task's worker, and `nproc` counts the CPUs its process (a child of
    the worker, with the worker's affinity) may use.
    """
    play = tmp_path / "nproc.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.debug:\n        msg: \"nproc={{ lookup('pipe', 'nproc') }}\"\n")
    proc = run_ansible(lab, str(play), env={"ANSIBLE_STRATEGY": strategy})
    assert proc.returncode == 0, proc.output[-4000:]
    ours = len(os.sched_getaffinity(0))
    expected = ours if (os.cpu_count() or 1) < 4 else 1  # mitogen's own placement from 4 CPUs
    assert f"nproc={expected}" in proc.output, proc.output[-3000:]


CODE_CACHE = "/var/cache/ansible-nspawn-fast/code"


def test_a_containers_interpreter_keeps_the_code_it_compiled(lab, tmp_path):
    """The first run fills the container's code cache (root's, 0700); the next run reads it
    (it compiles nothing, so it writes nothing); NSPAWN_FAST_CODE_CACHE=0 leaves no cache."""
    host = lab["hosts"][0]
    guest = host["guests"][1]
    play = write_play(tmp_path / "ping.yml", guest, 1)
    env = {"ANSIBLE_STRATEGY": "nspawn_linear"}
    guest_sh(lab, host, guest, f"rm -rf {CODE_CACHE}")

    def entries() -> list[str]:
        out = guest_sh(lab, host, guest, f"stat -c '%U %a' {CODE_CACHE} && ls -l --time-style=+%s.%N {CODE_CACHE}")
        lines = out.stdout.splitlines()
        assert lines[0] == "root 700"
        return sorted(line for line in lines[2:] if line)

    proc = run_ansible(lab, str(play), env={**env, "NSPAWN_FAST_CODE_CACHE": "0"})
    assert proc.returncode == 0, proc.output[-4000:]
    assert guest_sh(lab, host, guest, f"test -e {CODE_CACHE}", check=False).returncode == 1

    proc = run_ansible(lab, str(play), env=env)
    assert proc.returncode == 0, proc.output[-4000:]
    first = entries()
    assert len(first) > 20  # mitogen, ansible_mitogen and module_utils modules
    proc = run_ansible(lab, str(play), env=env)
    assert proc.returncode == 0, proc.output[-4000:]
    assert entries() == first  # every module came from the cache: nothing rewritten
