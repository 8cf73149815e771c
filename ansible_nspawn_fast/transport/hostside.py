"""Runs in the host's persistent interpreter (imported there by mitogen).

No Ansible here. The leader of each container is cached in this process; a
cached leader is reused only while /proc/PID/stat still shows the start time
it had, so a restarted container (new leader) or a reused PID is noticed
before a task runs, without starting a process. A miss runs the helper's
`lookup` verb once (machinectl show, wait until the container is booted).

HostService answers on a thread pool, not on the interpreter's main thread
(where mitogen runs plain calls one at a time): the containers of one host are
looked up and their interpreters started in parallel.
"""
from __future__ import annotations

import subprocess

import mitogen.core
import mitogen.parent
import mitogen.service

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.transport import readiness

# Threads of the host's service pool: how many containers of one host start at once.
POOL_SIZE = 16

# name -> enter.Leader fields as a plain tuple (mitogen only unpickles plain types)
_leaders: dict[str, tuple] = {}


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])


# Signals that ask a container's init to shut down (SIGINT, SIGTERM, SIGRTMIN+3..6, +13..16),
# as the helper's shutdown_pending: pending between machinectl reboot/poweroff and their handling.
SHUTDOWN_SIGNALS = 0x3C0F000004002


def _shutdown_pending(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read(8192)
    except OSError:
        return False
    for line in status.splitlines():
        key, _, value = line.partition(b":")
        if key in (b"SigPnd", b"ShdPnd") and int(value.strip() or b"0", 16) & SHUTDOWN_SIGNALS:
            return True
    return False


def _final_stage(pid: int) -> bool:
    """systemd has become systemd-shutdown: the instance's last seconds, no tasks."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read(32).startswith(b"systemd-shutdow")
    except OSError:
        return False


def leader(name: str, argv: list[str], nonce: str, timeout: float) -> dict:
    """{"leader": enter.Leader fields, "cached": bool} or {"error": (code, message)} on failure.

    `argv` is the helper's lookup, built on the controller (enter.lookup_argv): this process
    only runs it, bounded by `timeout`, and parses its one leader record.
    """
    cached = _leaders.get(name)
    if cached is not None:
        if _start_time(cached[0]) == cached[1] and not _shutdown_pending(cached[0]) \
                and not _final_stage(cached[0]):
            return {"leader": cached, "cached": True}
        del _leaders[name]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": ("not-ready", f"the lookup of {name} did not finish within {timeout:.0f} s")}
    found = enter.parse_helper_error(proc.returncode, proc.stdout, proc.stderr, nonce)
    if found is not None:
        return {"error": found}
    try:
        if proc.returncode != 0:
            raise ValueError(f"rc={proc.returncode}")
        record = tuple(enter.parse_leader(proc.stdout, nonce))
    except ValueError as e:
        detail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-2000:]
        return {"error": ("lookup-failed", f"{e}: {detail}")}
    _leaders[name] = record
    return {"leader": record, "cached": False}


def run(argv: list[str], timeout: float) -> tuple[int, bytes]:
    """A short helper command (e.g. `command -v python3` inside): its status and the end of its
    stderr, which carries the helper's or systemd-nspawn's own reason when it failed."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, b"timed out"
    return proc.returncode, proc.stderr[-4000:]


@mitogen.core.takes_econtext
def prepare(econtext: mitogen.core.ExternalContext) -> None:
    """Once per host interpreter, on its main thread, before HostService is used."""
    global _econtext
    _econtext = econtext
    # Make this interpreter a parent able to start children, then size its service pool
    # (created with 2 threads on first use otherwise); both are no-ops the second time.
    mitogen.parent.upgrade_router(econtext)
    mitogen.service.get_or_create_pool(size=POOL_SIZE, router=econtext.router)


_econtext: mitogen.core.ExternalContext | None = None


def ready(context_id: int) -> bool | None:
    """Whether the container takes tasks, asked of its interpreter (a child of this one):
    None if this interpreter knows no such context, False if it cannot answer."""
    context = _econtext.router.context_by_id(context_id, create=False) if _econtext else None
    return None if context is None else readiness.ask(context)


class HostService(mitogen.service.Service):
    """Leader lookups and container interpreter starts, on the pool's threads."""

    @mitogen.service.expose(mitogen.service.AllowParents())
    def leader(self, name: str, argv: list, nonce: str, timeout: float, expect: list | None = None,
               context_id: int | None = None) -> dict:
        """The leader (leader()); when it is the cached one the multiplexer `expect`s, with the
        readiness answer of that instance's interpreter `context_id` ("ready")."""
        found = leader(name, argv, nonce, timeout)
        if found.get("cached") and context_id is not None and list(found["leader"]) == list(expect or ()):
            found["ready"] = ready(context_id)
        return found

    @mitogen.service.expose(mitogen.service.AllowParents())
    def connect(self, name: str | None, connection_method: str, kwargs: dict) -> dict:
        """What mitogen's Router.proxy_connect asks of the intermediary, off the main thread."""
        return mitogen.parent._proxy_connect(name, connection_method, kwargs, econtext=_econtext)


def forget(name: str) -> None:
    _leaders.pop(name, None)
