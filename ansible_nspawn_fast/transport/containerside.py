"""Runs in each container's interpreter (imported there by mitogen): its clean exit.

muxside.py calls setup() once in every new interpreter of a container (and of a become
user in it). When mitogen loses the interpreter's parent (the controller was killed, the
SSH connection or the host's interpreter went, or the run ended) the interpreter exits;
its broker fires 'shutdown' first, and there, before exiting, this module

- stops the processes started by the calls still running, that is the interrupted task's
  (SIGTERM, then SIGKILL): a finished task's background processes (`nohup ... &`, an
  async job) are older than those calls and stay;
- removes the partial transfer files and the temp dirs this interpreter itself created
  (never by pattern: a concurrent run's files in the same directories stay).

It also reports a module's uncaught exception as a failed result naming it, as AnsiballZ
does in stock Ansible: in-process, mitogen only prints the traceback to stderr, and the
controller then says "Module result deserialization failed" (a full disk, for instance).
No Ansible controller code here; root inside the container gains nothing from this module
(it only signals this interpreter's own descendants and deletes its own files).

Private APIs of the pinned mitogen release used here: Router._async_route and
_stream_by_id, Dispatcher._parse_request, ansible_mitogen.target's _fork_parent and its
`tempfile` global, Runner.get_temp_dir/revert_temp_dir, NewStyleRunner._run_code.
"""
from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import typing as t

import ansible_mitogen.runner
import ansible_mitogen.target
import mitogen.core

LOG = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36
TERM_GRACE = 1.0  # seconds the interrupted task's processes get to exit on SIGTERM
TRANSFER_PREFIX = ".ansible_mitogen_transfer-"  # ansible_mitogen.target's partial files
_TICKS = os.sysconf("SC_CLK_TCK")

# (caller, reply handle) -> (callee, start): the function calls running in this container.
_calls: dict[tuple[int, int], tuple[int, int]] = {}
_temp_files: set[str] = set()
_temp_dirs: set[str] = set()
_transfer = threading.local()  # .made: the temp files of the transfer running in this thread
_router: t.Any = None


def _now() -> int:
    """Now on the clock of /proc/PID/stat's start time: clock ticks since boot."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * _TICKS)


@mitogen.core.takes_econtext
def setup(econtext: mitogen.core.ExternalContext) -> None:
    """Once per new interpreter, on its main thread, before the first task uses it."""
    global _router
    if _router is not None:
        return
    _router = econtext.router
    _observe_calls(econtext.router)
    _observe_dispatch(econtext.dispatcher)
    _track_runner_temp_dirs()
    _report_module_exceptions()
    ansible_mitogen.target.tempfile = _RecordingTempfile()
    mitogen.core.listen(econtext.broker, "shutdown", _on_shutdown)
    # Forked module runs (async, mitogen_task_isolation=fork, ...) start from this fork
    # parent, made before this call: it needs the same exception reporting.
    fork_parent = ansible_mitogen.target._fork_parent
    if fork_parent is not None:
        try:
            fork_parent.call(_report_module_exceptions)
        except mitogen.core.Error as e:
            LOG.warning("forked module runs report exceptions as before: %s", e)


def _observe_calls(router: t.Any) -> None:
    """Note each function call routed through this interpreter until its reply passes back.

    Every call into this container passes here: to this interpreter, to its forks (module
    runs in isolation, async jobs) and to become interpreters started from it.
    """
    route = router._async_route

    def async_route(msg: mitogen.core.Message, in_stream: t.Any = None) -> t.Any:
        if msg.handle == mitogen.core.CALL_FUNCTION:
            if msg.reply_to:
                _calls[(msg.src_id, msg.reply_to)] = (msg.dst_id, _now())
        elif _calls:
            _calls.pop((msg.dst_id, msg.handle), None)
        return route(msg, in_stream)
    router._async_route = async_route


def _running_since() -> int | None:
    """When the oldest call still running began; None if none runs (the run ended cleanly)."""
    own = mitogen.context_id
    # A callee that died mid-call sends no reply through here: its entry is stale.
    alive = [start for callee, start in _calls.values()
             if callee == own or callee in _router._stream_by_id]
    return min(alive) if alive else None


# --- processes --------------------------------------------------------------------------
def _processes() -> dict[int, tuple[int, int, bytes, int]]:
    """pid -> (ppid, session, state, start) from /proc: the container's, in its PID namespace."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(name)] = (int(fields[1]), int(fields[3]), fields[0], int(fields[19]))
    return table


def _started_since(since: int) -> list[int]:
    """This interpreter's living descendants started at or after `since`."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _sid, _state, _start) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(os.getpid(), ()))
    while todo:
        pid = todo.pop()
        _ppid, sid, state, start = table[pid]
        if start >= since:
            if state != b"Z":
                found.append(pid)
        elif sid == pid:
            continue  # an older session of its own (an async job, a daemon): not the task's
        todo.extend(children.get(pid, ()))
    return found


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass  # gone already, or not ours to signal (another user's, under become)


def _stop_task_processes() -> None:
    since = _running_since()
    if since is None:
        return
    # Orphans of the processes killed below come to this process, so the second look finds
    # them (only now: during the run, orphans must go to the container's init to be reaped).
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    victims = _started_since(since)
    LOG.debug("parent lost: stopping %r, started by the running task", victims)
    _signal(victims, signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE
    while victims and time.monotonic() < deadline:
        time.sleep(0.05)
        victims = _started_since(since)
    _signal(victims, signal.SIGKILL)


# --- temp files and dirs ----------------------------------------------------------------
class _RecordingTempfile:
    """ansible_mitogen.target's `tempfile`: records the partial files of a running transfer."""

    def __getattr__(self, name: str) -> t.Any:
        return getattr(tempfile, name)

    @staticmethod
    def mkstemp(*args: t.Any, **kwargs: t.Any) -> tuple[int, str]:
        fd, path = tempfile.mkstemp(*args, **kwargs)
        made = getattr(_transfer, "made", None)
        if made is not None and os.path.basename(path).startswith(TRANSFER_PREFIX):
            made.append(path)
            _temp_files.add(path)
        return fd, path


def _transferring(fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """transfer_file, write_path: when they return or raise, their temp file is renamed or gone."""
    @functools.wraps(fn)
    def transfer(*args: t.Any, **kwargs: t.Any) -> t.Any:
        made = _transfer.made = []
        try:
            return fn(*args, **kwargs)
        finally:
            _transfer.made = None
            _temp_files.difference_update(made)
    return transfer


def _making_temp_dir(path: str, *args: t.Any, **kwargs: t.Any) -> None:
    """os.mkdir as the action plugins call it (ansible_mitogen's _make_tmp_path)."""
    os.mkdir(path, *args, **kwargs)
    good = ansible_mitogen.target.good_temp_dir
    if good and os.path.dirname(os.path.abspath(path)) == os.path.abspath(good):
        _temp_dirs.add(path)


def _pruning(fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    @functools.wraps(fn)
    def prune(path: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return fn(path, *args, **kwargs)
        finally:
            _temp_dirs.discard(path)
    return prune


def _observe_dispatch(dispatcher: t.Any) -> None:
    """Calls that create or remove temp files and dirs run through the wrappers above."""
    target = ansible_mitogen.target
    wrapped = {
        target.transfer_file: _transferring(target.transfer_file),
        target.write_path: _transferring(target.write_path),
        target.prune_tree: _pruning(target.prune_tree),
        os.mkdir: _making_temp_dir,
    }
    parse = dispatcher._parse_request

    def parse_request(msg: mitogen.core.Message) -> tuple:
        chain_id, fn, args, kwargs = parse(msg)
        return chain_id, wrapped.get(fn, fn), args, kwargs
    dispatcher._parse_request = parse_request


def _track_runner_temp_dirs() -> None:
    """The dir a module run makes when its action made none (Runner.get_temp_dir)."""
    runner = ansible_mitogen.runner.Runner
    get, revert = runner.get_temp_dir, runner.revert_temp_dir

    def get_temp_dir(self: t.Any) -> str:
        fresh = self._temp_dir is None
        path = get(self)
        if fresh and path == self._temp_dir:
            _temp_dirs.add(path)
        return path

    def revert_temp_dir(self: t.Any) -> None:
        path = self._temp_dir
        revert(self)
        _temp_dirs.discard(path)
    runner.get_temp_dir, runner.revert_temp_dir = get_temp_dir, revert_temp_dir


def _remove_temp_paths() -> None:
    for path in list(_temp_files):
        try:
            os.unlink(path)
        except OSError:
            pass
    for path in list(_temp_dirs):
        shutil.rmtree(path, ignore_errors=True)  # refuses a symlink put in its place


def _on_shutdown() -> None:
    """On the broker's thread, as the interpreter shuts down: processes first, then files."""
    try:
        _stop_task_processes()
    except Exception:
        LOG.exception("stopping the running task's processes failed")
    _remove_temp_paths()


# --- module exceptions --------------------------------------------------------------------
def _chained_message(ex: BaseException | None) -> str:
    """'outer: cause: ...', as Ansible words an exception and its causes."""
    parts: list[str] = []
    while ex is not None and len(parts) < 10:
        text = str(ex).strip() or type(ex).__name__
        if not parts or parts[-1] != text:
            parts.append(text)
        ex = ex.__cause__ if ex.__cause__ is not None else (None if ex.__suppress_context__ else ex.__context__)
    return ": ".join(p.rstrip(".") if i < len(parts) - 1 else p for i, p in enumerate(parts))


def _report_module_exceptions() -> None:
    """A module's uncaught exception becomes a failed result whose msg names it.

    The traceback stays on stderr (module_stderr) as before; SystemExit (exit_json,
    fail_json) passes through untouched.
    """
    runner = ansible_mitogen.runner.NewStyleRunner
    if getattr(runner._run_code, "nspawn_fast", False):
        return
    run_code = runner._run_code

    def _run_code(self: t.Any, code: t.Any, mod: t.Any) -> None:
        try:
            run_code(self, code, mod)
        except Exception as ex:
            traceback.print_exc()  # what mitogen's runner does with it
            print(json.dumps({"failed": True, "msg": _chained_message(ex)}))
            sys.exit(1)
    _run_code.nspawn_fast = True  # type: ignore[attr-defined]
    runner._run_code = _run_code
