# A test callback: every runner event, in the order the callbacks see it, as JSON lines in
# $NSPAWN_FAST_TEST_EVENT_LOG, so that two strategies' runs of one playbook can be compared.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: event_log
type: aggregate
short_description: runner events as JSON lines (tests)
description: runner events as JSON lines in $NSPAWN_FAST_TEST_EVENT_LOG (tests only)
"""

# The parts of a result that say what happened (not when, nor on which process).
KEPT = ("changed", "failed", "skipped", "skip_reason", "rc", "stdout", "msg", "item",
        "attempts", "censored", "ansible_loop_var", "failed_when_result", "diff", "ping")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "event_log"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, record):
        with open(os.environ["NSPAWN_FAST_TEST_EVENT_LOG"], "a") as f:
            f.write(json.dumps(record, sort_keys=True, default=str) + "\n")

    def _result(self, event, result):
        res = result._result
        kept = {k: res[k] for k in KEPT if k in res}
        if "results" in res:  # a loop's items, in order
            kept["results"] = [{k: r[k] for k in KEPT if k in r} for r in res["results"]]
        self._write({"event": event, "task": result._task.get_name(), "host": result._host.get_name(),
                     "result": kept})

    def v2_playbook_on_play_start(self, play):
        self._write({"event": "play", "task": play.get_name()})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write({"event": "task", "task": task.get_name()})

    def v2_playbook_on_handler_task_start(self, task):
        self._write({"event": "handler", "task": task.get_name()})

    def v2_runner_on_ok(self, result):
        self._result("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("failed-ignored" if ignore_errors else "failed", result)

    def v2_runner_on_skipped(self, result):
        self._result("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._result("unreachable", result)

    def v2_runner_item_on_ok(self, result):
        self._result("item-ok", result)

    def v2_runner_item_on_failed(self, result):
        self._result("item-failed", result)

    def v2_runner_item_on_skipped(self, result):
        self._result("item-skipped", result)

    def v2_runner_retry(self, result):
        self._result("retry", result)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed)
        self._write({"event": "stats", "summary": {h: stats.summarize(h) for h in hosts}})
