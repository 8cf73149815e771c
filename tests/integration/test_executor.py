"""nspawn_linear's in-process task workers (transport/inprocess.py), against the lab.

- Ansible's semantics do not change: one playbook of what an executor can get wrong
  (registers, conditions, loops, retries, handlers, blocks, check/diff mode, no_log,
  run_once, delegation, tags, precedence, reset_connection, serial, any_errors_fatal,
  max_fail_percentage) gives the callbacks the same events under linear / free (forked
  workers, the per-command plugin) as under nspawn_linear / nspawn_free (threads).
- Which tasks take a thread and which keep a forked worker, and that -vvv says why.
"""
from __future__ import annotations

import json
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from test_connection import PLAYBOOKS, run_ansible

SEMANTICS = PLAYBOOKS / "semantics"
SECRET = "nf-secret-" + uuid.uuid4().hex[:8]


def targets(lab: dict) -> list[str]:
    """Three containers over both hosts."""
    first, second = lab["hosts"][0]["guests"], lab["hosts"][1]["guests"]
    return [first[0], second[0], first[1]]


def run_semantics(lab: dict, tmp_path: Path, strategy: str, verbose: bool = False) -> tuple[list, str]:
    log = tmp_path / f"events-{strategy}.jsonl"
    env = {"ANSIBLE_STRATEGY": strategy, "ANSIBLE_CALLBACK_PLUGINS": str(SEMANTICS / "callback_plugins"),
           "ANSIBLE_CALLBACKS_ENABLED": "event_log", "NSPAWN_FAST_TEST_EVENT_LOG": str(log)}
    run_id = uuid.uuid4().hex[:8]
    extra = json.dumps({"targets": ",".join(targets(lab)), "run_id": run_id,
                        "secret": SECRET, "precedence": "extra"})
    args = [str(SEMANTICS / "site.yml"), "-e", extra] + (["-vvv"] if verbose else [])
    proc = run_ansible(lab, *args, env=env)
    # The last play fails a host on purpose (max_fail_percentage): exit status 2.
    assert proc.returncode == 2, proc.output[-6000:]
    # Each run has its own files (run_id): the same name for the comparison.
    text = log.read_text().replace(run_id, "RUN")
    return [json.loads(line) for line in text.splitlines()], proc.output


def by_task(events: list[dict]) -> list[tuple]:
    """Events grouped per task in order; within a task, each host's events in their order
    (hosts of one task finish in any order, under any strategy)."""
    out: list[tuple] = []
    per_host: dict[str, list] = defaultdict(list)
    header = None

    def flush() -> None:
        if header is not None:
            out.append((header, sorted((h, evs) for h, evs in per_host.items())))
        per_host.clear()

    for ev in events:
        if ev["event"] in ("play", "task", "handler", "stats"):
            flush()
            header = (ev["event"], ev.get("task"), json.dumps(ev.get("summary"), sort_keys=True))
        else:
            per_host[ev["host"]].append((ev["event"], json.dumps(ev["result"], sort_keys=True)))
    flush()
    return out


# Under free, tasks that look at other hosts (or that one host runs for all) see whatever
# the other hosts have done by then: a race under stock free as well.
CROSS_HOST = {"facts of other hosts through hostvars", "a delegated fact lands on the delegate",
              "delegate_to another container, facts delegated", "run_once", "fail one",
              "rescued, so not fatal", "fails on the first host", "not reached by anyone"}


def per_host(events: list[dict]) -> list[tuple]:
    """What each host saw of each task that depends on that host alone, in its order."""
    seen: dict[tuple, list] = defaultdict(list)
    for ev in events:
        if "host" in ev and ev["task"] not in CROSS_HOST:
            seen[(ev["task"], ev["host"])].append((ev["event"], json.dumps(ev["result"], sort_keys=True)))
    return sorted(seen.items())


@pytest.mark.parametrize("strategy,stock", [("nspawn_linear", "linear"), ("nspawn_free", "free")])
def test_callbacks_see_the_same_events_as_under_the_stock_strategy(lab, tmp_path, strategy, stock):
    baseline, _ = run_semantics(lab, tmp_path, stock)
    events, output = run_semantics(lab, tmp_path, strategy, verbose=True)
    if strategy == "nspawn_free":
        # free lets each host run ahead (and run its handlers on its own): compare what each
        # host saw of each task, not how the hosts interleave.
        ours, expected = per_host(events), per_host(baseline)
    else:
        ours, expected = by_task(events), by_task(baseline)
    assert ours == expected
    # Sanity of the comparison itself: the playbook did run what it is about.
    flat = json.dumps(events)
    for seen in ("retry", "item-failed", "handled", "rescued fails in a block rc=1", "failed-ignored",
                 "censored", "extra", "from ", "one host at a time", "rescued, so not fatal"):
        assert seen in flat, seen
    for unseen in ("never reached", "tagged never"):
        assert unseen not in flat, unseen
    if strategy == "nspawn_linear":  # under free, the other hosts may run ahead of the failure
        assert "not reached by anyone" not in flat
    assert SECRET not in output, "a no_log result leaked into -vvv output"


def workers(log: Path) -> dict[str, set[str]]:
    """label -> the threads it was templated on (one label can be templated more than once)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for line in log.read_text().splitlines():
        label, _pid, thread = line.split()
        seen[label].add(thread)
    return seen


@pytest.mark.parametrize("strategy", ["nspawn_linear", "nspawn_free"])
def test_tasks_run_on_threads_and_the_rest_forks_saying_why(lab, tmp_path, strategy):
    log = tmp_path / "workers.log"
    host = lab["hosts"][0]
    env = {"ANSIBLE_STRATEGY": strategy, "ANSIBLE_FILTER_PLUGINS": str(SEMANTICS / "filter_plugins"),
           "NSPAWN_FAST_TEST_WORKER_LOG": str(log)}
    proc = run_ansible(lab, str(SEMANTICS / "workers.yml"), "-vvv", "-e",
                       f"target={host['guests'][0]} host={host['name']}", env=env)
    assert proc.returncode == 0, proc.output[-6000:]
    seen = workers(log)
    for label in ("module", "debug", "loop"):
        assert seen[label] and all(t.startswith("nspawn-task-") for t in seen[label]), (label, seen[label])
    for label in ("delegate_to", "async", "script", "debugger", "ssh"):
        assert seen[label] == {"MainThread"}, (label, seen[label])
    for why in ("(delegate_to)", "(async)", "(action plugin ansible.builtin.script)", "(task debugger)"):
        assert f"runs in a forked worker {why}" in proc.output, why
    # A task of another connection type forks as it would under mitogen_linear, silently.
    assert "'ssh' runs in a forked worker" not in proc.output


def test_the_environment_switch_forks_every_task(lab, tmp_path):
    log = tmp_path / "workers.log"
    host = lab["hosts"][0]
    env = {"ANSIBLE_STRATEGY": "nspawn_linear", "NSPAWN_FAST_WORKERS": "fork",
           "ANSIBLE_FILTER_PLUGINS": str(SEMANTICS / "filter_plugins"), "NSPAWN_FAST_TEST_WORKER_LOG": str(log)}
    proc = run_ansible(lab, str(SEMANTICS / "workers.yml"), "-e",
                       f"target={host['guests'][0]} host={host['name']}", env=env)
    assert proc.returncode == 0, proc.output[-6000:]
    assert set().union(*workers(log).values()) == {"MainThread"}


@pytest.mark.parametrize("strategy", ["nspawn_linear", "nspawn_free"])
def test_a_play_that_only_resets_the_connection_ends(lab, strategy):
    # The main thread then opens the multiplexer connection; its broker thread is no daemon,
    # and ansible-playbook used to wait for it for ever at exit.
    proc = run_ansible(lab, str(SEMANTICS / "reset_first.yml"), "-e",
                       f"target={lab['hosts'][0]['guests'][0]}",
                       env={"ANSIBLE_STRATEGY": strategy}, timeout=120)
    assert proc.returncode == 0, proc.output[-3000:]
