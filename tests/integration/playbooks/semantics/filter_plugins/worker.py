# A test filter: where a task's arguments are templated. Appends "LABEL PID THREAD" to
# $NSPAWN_FAST_TEST_WORKER_LOG and returns LABEL, so a task shows whether it ran on a thread
# of ansible-playbook (thread nspawn-task-N) or in a forked worker (MainThread of its own PID).
from __future__ import annotations

import os
import threading


def worker_seen(label):
    with open(os.environ["NSPAWN_FAST_TEST_WORKER_LOG"], "a") as f:
        f.write(f"{label} {os.getpid()} {threading.current_thread().name}\n")
    return label


class FilterModule:
    def filters(self):
        return {"worker_seen": worker_seen}
