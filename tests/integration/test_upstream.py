"""Upstream integration targets (tests/upstream): our strategies must give stock linear's result.

Each target of ansible-core and each group of Mitogen's playbooks runs in one lab container
(tests/upstream/runner.py) under stock `linear` and `free` with the nspawn connection plugin,
and under `nspawn_linear` and `nspawn_free`, with and without pipelining. Under stock linear a
target must end as upstream expects (its steps' exit codes, its output checks); under every
other strategy each step must end exactly as it did under stock linear with the same
pipelining setting: the same exit code and the same PLAY RECAP.

`./run test` runs a reduced set (targets marked `ci`, pipelining on, linear and nspawn_linear,
plus nspawn_free for one target; about 4 minutes on the 2-CPU lab machine, 9 to 18 under heavy
load); NSPAWN_FAST_UPSTREAM=full (`tox -e upstream`) runs every target x strategy x pipelining.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from test_connection import recap, run_ansible

from tests.upstream import runner

FULL = os.environ.get("NSPAWN_FAST_UPSTREAM") == "full"


def _cases() -> list[tuple[str, str, bool]]:
    if FULL:
        return [(name, strategy, pipelining) for name in runner.TARGETS
                for pipelining in (False, True) for strategy in runner.STRATEGIES]
    cases = [(name, strategy, True) for name, target in runner.TARGETS.items() if target.ci
             for strategy in ("linear", "nspawn_linear")]
    return cases + [("become_sudo", "nspawn_free", True)]


# Stock linear's result per (target, pipelining), run once per session and shared.
_reference: dict[tuple[str, bool], runner.TargetResult] = {}


def _linear(lab: dict, name: str, pipelining: bool, tmp_path_factory: pytest.TempPathFactory) -> runner.TargetResult:
    key = (name, pipelining)
    if key not in _reference:
        workdir = tmp_path_factory.mktemp(f"{name}-linear")
        _reference[key] = runner.run_target(lab, runner.TARGETS[name], "linear", pipelining, workdir)
    return _reference[key]


@pytest.mark.parametrize(("name", "strategy", "pipelining"), _cases(),
                         ids=[f"{n}-{s}-{'pipelining' if p else 'no-pipelining'}" for n, s, p in _cases()])
def test_upstream_target_behaves_as_under_stock_linear(lab, name, strategy, pipelining, tmp_path_factory):
    reference = _linear(lab, name, pipelining, tmp_path_factory)
    assert reference.as_expected(), f"{name} under stock linear:\n{reference.describe()}\n\n" + \
        _tail(reference)
    if strategy == "linear":
        return
    result = runner.run_target(lab, runner.TARGETS[name], strategy, pipelining,
                               Path(tmp_path_factory.mktemp(f"{name}-{strategy}")))
    differences = runner.compare(result, reference)
    assert not differences, f"{name} under {strategy} differs from stock linear:\n" + \
        "\n".join(differences) + "\n\n" + _tail(result)


def _tail(result: runner.TargetResult, lines: int = 60) -> str:
    return "\n".join(f"--- {s.step.label} (last {lines} lines)\n" + "\n".join(s.output.splitlines()[-lines:])
                     for s in result.steps if not s.as_expected() or s.failures)


# --- the places our layer changes, one by one, on a container of their own ---------------------
PER_COMMAND = "runs through the per-command nspawn connection"


def _play(tmp_path: Path, guest: str, tasks: str) -> str:
    path = tmp_path / "play.yml"
    path.write_text(f"- hosts: {guest}\n  gather_facts: false\n  tasks:\n{tasks}")
    return str(path)


@pytest.mark.parametrize("strategy", ["nspawn_linear", "nspawn_free"])
def test_tasks_mitogen_would_run_otherwise_take_the_per_command_path_visibly(lab, strategy, tmp_path):
    """su flags Mitogen would drop (nobody's shell is nologin: -s gives it one), an async task and
    gather_facts' parallel fact modules run as ansible-core runs them; -vvv names each such task,
    and only those."""
    guest = lab["hosts"][0]["guests"][1]
    play = _play(tmp_path, guest, """\
    - name: on the interpreter
      ansible.builtin.command: id -un
      changed_when: false
    - name: su with flags
      ansible.builtin.command: id -un
      become: true
      become_method: su
      become_user: nobody
      become_flags: -s /bin/sh
      changed_when: false
      register: su_flags
    - name: async
      ansible.builtin.command: sleep 1
      async: 20
      poll: 1
      register: job
    - name: gather_facts in parallel
      ansible.builtin.gather_facts:
        parallel: true
        # async_wrapper's time limit: gather_timeout for service_facts (without it, 5 s: too
        # short for it on a loaded machine); setup keeps 5 s, enough for the min subset.
        gather_timeout: 120
        gather_subset: [min]
      vars:
        ansible_facts_modules: [ansible.builtin.setup, ansible.builtin.service_facts]
    - ansible.builtin.assert:
        that:
          - su_flags.stdout == "nobody"
          - job.ansible_job_id is match('j\\d+\\.\\d+')
          - job.started is true and job.finished is true
          - ansible_facts.services is defined and ansible_facts.hostname == inventory_hostname
""")
    proc = run_ansible(lab, play, "-vvv", env={"ANSIBLE_STRATEGY": strategy})
    assert proc.returncode == 0, proc.output[-5000:]
    assert recap(proc.output)[guest]["failed"] == 0
    by_task = dict(re.findall(r"^TASK \[(.*?)\] \*+\n(.*?)(?=^TASK \[|^PLAY RECAP)", proc.stdout, re.M | re.S))
    assert PER_COMMAND not in by_task["on the interpreter"]
    assert f"NSPAWN: su flags '-s /bin/sh' (Mitogen's su passes none on): {PER_COMMAND}" in by_task["su with flags"]
    assert PER_COMMAND in by_task["async"] and "an async task" in by_task["async"]
    # Only the start of each fact module (ansible-core's async_wrapper); it polls them in the interpreter.
    assert "gather_facts action starts a module asynchronously" in by_task["gather_facts in parallel"]


def test_a_become_interpreter_ends_before_the_next_task_as_another_user(lab, tmp_path):
    """As under stock Ansible, no interpreter of the become user runs on once its task is done
    and the next one runs as root (sudo's PAM session may leave nobody's `systemd --user`, under
    stock Ansible too: that is not ours)."""
    guest = lab["hosts"][0]["guests"][1]
    play = _play(tmp_path, guest, """\
    - name: as nobody
      ansible.builtin.command: id -un
      become: true
      become_user: nobody
      changed_when: false
    - name: no python of nobody is left
      ansible.builtin.command: pgrep -u nobody -a python
      register: left
      changed_when: false
      failed_when: left.rc != 1
""")
    proc = run_ansible(lab, play, env={"ANSIBLE_STRATEGY": "nspawn_linear"})
    assert proc.returncode == 0 and recap(proc.output)[guest]["failed"] == 0, proc.output[-4000:]


def test_an_async_task_on_the_controller_runs_as_ansible_core_runs_it(lab, tmp_path):
    """An async task on another connection ansible_mitogen takes over (here `local`) starts with
    ansible-core's async_wrapper, as under stock linear: its job id, and its time limit checked
    every 5 s (ansible_mitogen's runner ended the upstream `async` target's `sleep 5` with
    `async: 6` under load), not ansible_mitogen's runner; so do the fact modules gather_facts
    starts in parallel (with ansible_mitogen's runner: `'results_file'`)."""
    play = tmp_path / "play.yml"
    play.write_text("""\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: async on the controller
      ansible.builtin.command: "true"
      async: 20
      poll: 1
      register: job
    - name: facts in parallel on the controller
      ansible.builtin.gather_facts:
        parallel: true
        gather_subset: [min]
        gather_timeout: 120
      vars:
        ansible_facts_modules: [ansible.builtin.setup, ansible.builtin.setup]
    - ansible.builtin.assert:
        that:
          - job.ansible_job_id is match('j\\d+\\.\\d+')
          - job.started is true and job.finished is true
          - ansible_facts.hostname is defined
""")
    proc = run_ansible(lab, str(play), "-vvv", env={"ANSIBLE_STRATEGY": "nspawn_linear"})
    assert proc.returncode == 0 and recap(proc.output)["localhost"]["failed"] == 0, proc.output[-4000:]
    assert "an async task (ansible-core's async_wrapper starts and reports it): runs through " \
           "ansible-core's local connection" in proc.output
