"""The Ansible callback behind `nspawn-fast chroots`: the playbooks the run got to, and each
tree's counts and time, as JSON.

Loaded through a shim that `chroots` writes into its temporary callback_plugins/ (as the
repository's connection and strategy plugins are shims); the file to write is named by
$NSPAWN_FAST_CHROOTS_REPORT. Imports Ansible, so nothing else in `ops` imports it.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

from .chroots import REPORT_ENV

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "nspawn_chroots"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._span: dict[str, list[float]] = {}  # host -> [first seen, last seen]
        self._started: list[str] = []  # the playbooks the run got to

    def _seen(self, host: Any) -> None:
        now = time.monotonic()
        self._span.setdefault(host.get_name(), [now, now])[1] = now

    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._started.append(os.path.abspath(playbook._file_name))

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._seen(host)

    def v2_runner_on_ok(self, result: Any, **kwargs: Any) -> None:
        self._seen(result._host)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False, **kwargs: Any) -> None:
        self._seen(result._host)

    def v2_runner_on_skipped(self, result: Any, **kwargs: Any) -> None:
        self._seen(result._host)

    def v2_runner_on_unreachable(self, result: Any, **kwargs: Any) -> None:
        self._seen(result._host)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        # Once, at the end of the run; the counts add up over all its playbooks.
        path = os.environ.get(REPORT_ENV)
        if not path:
            return
        hosts = {}
        for host in set(stats.processed) | set(self._span):
            first, last = self._span.get(host, [0.0, 0.0])
            hosts[host] = {**stats.summarize(host), "seconds": round(last - first, 1)}
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"hosts": hosts, "playbooks": self._started}, f)
