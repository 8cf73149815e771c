"""Ansible callback of the benchmark runner: when each task started and when its last host
result arrived, written as JSON at the end of the run (timing.py turns it into figures).

Loaded by ansible-playbook from this directory (ANSIBLE_CALLBACK_PLUGINS) for benchmark runs
only; stdlib and Ansible's callback API, nothing from the checkout. Timestamps are the
controller's CLOCK_MONOTONIC, taken where the strategy hands tasks and results to callbacks.
"""
from __future__ import annotations

import json
import os
import threading
import time
import typing as t

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_timing
type: aggregate
short_description: task start and last-result times, for nspawn-fast bench
description:
  - Records, per task, when it started and when its last host result arrived.
  - Writes them as JSON to the file named by E(NSPAWN_FAST_BENCH_TIMING) when the playbook ends.
requirements:
  - enabled in configuration
"""

OUT_ENV = "NSPAWN_FAST_BENCH_TIMING"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: dict[str, dict[str, t.Any]] = {}  # by task uuid, in start order
        self._lock = threading.Lock()

    def v2_playbook_on_task_start(self, task: t.Any, is_conditional: bool) -> None:
        now = time.monotonic()
        with self._lock:
            self._tasks.setdefault(task._uuid, {"name": task.get_name(), "start": now,
                                                "end": None, "results": 0})

    def _result(self, result: t.Any) -> None:
        now = time.monotonic()
        with self._lock:
            entry = self._tasks.get(result.task._uuid)
            if entry is not None:
                entry["end"] = now
                entry["results"] += 1

    def v2_runner_on_ok(self, result: t.Any) -> None:
        self._result(result)

    def v2_runner_on_failed(self, result: t.Any, ignore_errors: bool = False) -> None:
        self._result(result)

    def v2_runner_on_skipped(self, result: t.Any) -> None:
        self._result(result)

    def v2_runner_on_unreachable(self, result: t.Any) -> None:
        self._result(result)

    def v2_playbook_on_stats(self, stats: t.Any) -> None:
        path = os.environ.get(OUT_ENV)
        if path:
            with open(path, "w") as f:
                json.dump({"tasks": list(self._tasks.values())}, f)
