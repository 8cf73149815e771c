"""Tasks of nspawn targets run on threads of ansible-playbook itself, not in forked workers.

Stock Ansible forks a WorkerProcess per task and host. Under ansible_mitogen each of them
then connects anew to the multiplexer (a broker thread and a UNIX socket handshake) and
starts with cold caches (plugin loaders, ansible_mitogen's module planner, module sources),
and all of it is thrown away when the task ends. For a task whose target is an nspawn
container that is most of its cost: the work itself is a call into an interpreter that is
already running in the container.

So, while an nspawn strategy runs, the strategy's `_queue_task` builds a `ThreadWorker`
instead of a WorkerProcess for such tasks: a WorkerProcess whose own `_run` (TaskExecutor,
the result sent through the same final queue, so callbacks and strategy bookkeeping do not
change) runs on a thread instead of in a fork. It occupies a slot of the strategy's worker
list as a process would, so `forks`, `throttle` and `serial` limit it the same way. What a
thread must not share with its neighbours is copied per task: the Task (TaskExecutor
post-validates it in place), the Host (a worker empties its vars before sending the result)
and the DataLoader's list of temp files (a worker removes all of them when it ends).

All threads use one connection of this process to the multiplexer, opened on first use and
kept until the strategy ends (`SharedWorkerModel`); ansible_mitogen's per-worker model, which
tears its connection down after every task, is still used by forked workers.

Everything else takes a forked worker as before (`fork_reason` says why, at -vvv): other
connection types, delegate_to, async, the task debugger, and action plugins not known to be
safe on a thread (those that prompt, run things on the controller, or start processes).
"""
from __future__ import annotations

import atexit
import contextlib
import copy
import inspect
import io
import os
import queue
import sys
import threading
import traceback
import typing as t

import ansible.executor.process.worker
import ansible.plugins.strategy
import ansible_mitogen.process
import mitogen.fork
import mitogen.unix
from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.executor.process.worker import WorkerProcess
from ansible.playbook.block import Block
from ansible.plugins.loader import action_loader, connection_loader
from ansible.utils.display import Display

from ..connection import Connection as PluginConnection
from . import planner_cache, plugin_cache

display = Display()

# Set to "fork" to run every task in a forked worker, as stock Ansible does.
WORKERS_ENV = "NSPAWN_FAST_WORKERS"

# Action plugins that only template, call the connection and talk to the multiplexer: safe on
# a thread of the controller. Modules without an action plugin of their own run through
# `normal`, and are safe too (gather_facts' parallel mode polls async jobs that run in the
# container). Anything else (pause, synchronize, script, reboot, wait_for_connection,
# third-party actions) keeps a forked worker.
THREAD_SAFE_ACTIONS = frozenset({
    "normal", "command", "shell", "raw", "copy", "template", "fetch", "file", "stat", "ping",
    "debug", "set_fact", "assert", "fail", "package", "service", "include_vars", "set_stats",
    "assemble", "unarchive", "validate_argument_spec", "group_by", "add_host", "gather_facts",
})
_BUILTIN = ("ansible.builtin.", "ansible.legacy.")

OTHER_CONNECTION = "another connection type"

_controller_pid: int | None = None


def in_controller() -> bool:
    return _controller_pid is not None and os.getpid() == _controller_pid


# -- the controller's own connection to the multiplexer -----------------------------------

class _SharedBinding(ansible_mitogen.process.Binding):
    """A binding whose close() keeps the connection: the next task uses it again."""

    def __init__(self, parent: t.Any) -> None:
        self._parent = parent

    def get_service_context(self) -> t.Any:
        return self._parent

    def get_child_service_context(self) -> t.Any:
        return self._parent

    def close(self) -> None:
        pass


class SharedWorkerModel(ansible_mitogen.process.WorkerModel):
    """ansible-playbook's one connection to the multiplexer, shared by its task threads.

    mitogen keeps a process's context ID in a global, so a process can talk to one
    multiplexer only: every nspawn target uses the same one (plan.MUX_KEY), in threads and in
    forked workers alike, so that a host's SSH connection is shared by both.
    """

    def __init__(self, classic: t.Any) -> None:
        self._classic = classic
        self._lock = threading.Lock()
        self._broker: t.Any = None
        self._parent: t.Any = None

    def get_binding(self, inventory_name: str) -> _SharedBinding:
        with self._lock:
            if self._parent is None:
                from . import plan
                # Not tied to the thread that happens to open it (mitogen's default watcher
                # would shut the broker down when that task's thread ends).
                broker = ansible_mitogen.process.Broker(install_watcher=False)
                path = self._classic._listener_for_name(plan.MUX_KEY)
                try:
                    router, parent = mitogen.unix.connect(path=path, broker=broker)
                except mitogen.unix.ConnectError:
                    broker.shutdown()
                    broker.join()
                    raise
                router.max_message_size = ansible_mitogen.process.MAX_MESSAGE_SIZE
                self._broker, self._parent = broker, parent
            return _SharedBinding(self._parent)

    def shutdown(self) -> None:
        with self._lock:
            broker, self._broker, self._parent = self._broker, None, None
        if broker is not None:
            broker.shutdown()
            broker.join()

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's connection is not ours (mitogen closes its fds)."""
        if self._parent is not None:
            self._broker = self._parent = None
            self._lock = threading.Lock()
            mitogen.fork.on_fork()


_shared_model: SharedWorkerModel | None = None
_original_get_worker_model = ansible_mitogen.process.get_worker_model


def get_worker_model() -> t.Any:
    """ansible_mitogen's get_worker_model(), with the shared model inside ansible-playbook."""
    if _shared_model is not None and in_controller():
        return _shared_model
    return _original_get_worker_model()


def _after_fork_in_child() -> None:
    if _shared_model is not None:
        _shared_model.forget_after_fork()


# -- the thread worker ---------------------------------------------------------------------

_in_task_thread = threading.local()


class ThreadWorker(WorkerProcess):
    """A WorkerProcess whose task runs on a thread of this process.

    The thread runs the class's own `_run` (each ansible-core version's TaskExecutor call and
    result message), inside the task context its `run` would set up, without what only a
    forked child does there: detach from the terminal, take over signals, send display
    output through the queue (`_quiet_in_task_threads`). It fills a worker slot as a
    process would: start, is_alive, terminate, close.
    """

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        with _thread_worker_queue():
            super().__init__(*args, **kwargs)
        # What the thread changes must not reach the strategy's objects (a fork would copy
        # them): the task and its blocks (post_validate templates them in place; not their
        # task lists), the host (_run empties its vars), the loader's temp files (removed when
        # the task ends).
        self._task = self._task.copy(exclude_parent=False, exclude_tasks=True)
        _drop_sibling_tasks(self._task)
        self._host = copy.copy(self._host)
        self._loader = copy.copy(self._loader)
        self._loader._tempfiles = set()
        self._new_stdin = None  # before ansible-core 2.19, _run hands it to TaskExecutor
        self._thread = threading.Thread(target=self._thread_main, daemon=True,
                                        name=f"nspawn-task-{self.worker_id}")

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def terminate(self) -> None:
        """A thread cannot be killed: it ends with its task (every wait in it is bounded)."""

    kill = terminate

    def close(self) -> None:
        pass

    def _thread_main(self) -> None:
        _in_task_thread.active = True
        try:
            with _task_context(self):
                self._run()
        except BaseException as e:  # a forked worker would die of it (_hard_exit) and say so
            display.error(f"the worker thread of task '{self._task.get_name()}' on "
                          f"{self._host.name} failed:\n{traceback.format_exc()}")
            _send_failure(self, f"the task's worker thread failed: {e!r}")


class _ThreadWorkerQueue(queue.SimpleQueue):
    """A worker's queue for the answers to its prompts, as WorkerQueue (which raises the
    AnsibleError items it gets), between threads: a multiprocessing queue (a pipe, locks and a
    semaphore) per task and host was a few percent of a task thread's time."""

    def __init__(self, ctx: t.Any = None) -> None:
        super().__init__()

    def get(self, block: bool = True, timeout: float | None = None) -> t.Any:
        item = super().get(block, timeout)
        if isinstance(item, AnsibleError):
            raise item
        return item


@contextlib.contextmanager
def _thread_worker_queue() -> t.Iterator[None]:
    """WorkerProcess.__init__ builds its queue from its module's WorkerQueue; workers are
    built on the strategy's thread only, one at a time."""
    worker_module = ansible.executor.process.worker
    saved = worker_module.WorkerQueue
    worker_module.WorkerQueue = _ThreadWorkerQueue
    try:
        yield
    finally:
        worker_module.WorkerQueue = saved


def _drop_sibling_tasks(task: t.Any) -> None:
    """Empty the task lists of the copied blocks above `task` (copy(exclude_tasks=True) keeps
    them by reference). A task runs with its blocks' attributes, not their other tasks, but
    the copy and template actions copy their task, blocks and all: with a play's task lists
    still in place, each such task copied every task of the play again, per host, under the
    interpreter lock all task threads share (a fork did the same on its own CPU)."""
    parent = task._parent
    while parent is not None:
        if isinstance(parent, Block):
            parent.block, parent.rescue, parent.always = [], [], []
        parent = parent._parent


def _send_failure(worker: ThreadWorker, msg: str) -> None:
    """A FAILED result, so that the strategy does not wait for this task for ever."""
    params = list(inspect.signature(worker._final_q.send_task_result).parameters)
    if params[:3] == ["host", "task", "utr"]:  # 2.21
        from ansible._internal._task import UnifiedTaskResult
        utr = UnifiedTaskResult.create_from_action_exception(RuntimeError(msg))
        utr.finalize_registered_values()
        worker._final_q.send_task_result(worker._host, worker._task, utr)
    elif params[:1] == ["task_result"]:  # 2.19, 2.20
        from ansible.executor.task_result import _RawTaskResult
        worker._final_q.send_task_result(_RawTaskResult(
            host=worker._host, task=worker._task, return_data={"failed": True, "msg": msg}, task_fields={}))
    else:
        worker._final_q.send_task_result(worker._host.name, worker._task._uuid,
                                         {"failed": True, "msg": msg}, task_fields={})


def _task_context(worker: ThreadWorker) -> t.Any:
    """What WorkerProcess.run wraps _run in, in this ansible-core version."""
    try:
        from ansible._internal._task import TaskContext
    except ImportError:  # before 2.19
        return contextlib.nullcontext()
    if hasattr(TaskContext, "create"):  # 2.21
        return TaskContext.create(task=worker._task, task_vars=worker._task_vars,
                                  host_name=worker._host.name)
    return TaskContext(worker._task)


class _SysOfTaskThreads:
    """ansible's worker module reads its own sys.stdout/stderr (a forked worker's captured
    output) after a task: a task thread has none (empty)."""

    def __getattr__(self, name: str) -> t.Any:
        if name in ("stdout", "stderr") and getattr(_in_task_thread, "active", False):
            return io.StringIO()
        return getattr(sys, name)


def _quiet_in_task_threads() -> None:
    """WorkerProcess._run sends display output through the queue (Display.set_queue, which
    refuses outside a forked child): a task thread displays directly, as the controller does."""
    set_queue = Display.set_queue
    if getattr(set_queue, "nspawn_fast", False):
        return

    def set_queue_outside_task_threads(self: t.Any, queue: t.Any) -> None:
        if not getattr(_in_task_thread, "active", False):
            set_queue(self, queue)

    set_queue_outside_task_threads.nspawn_fast = True  # type: ignore[attr-defined]
    Display.set_queue = set_queue_outside_task_threads
    ansible.executor.process.worker.sys = _SysOfTaskThreads()  # type: ignore[assignment]


# -- which tasks take a thread -------------------------------------------------------------

def fork_reason(host: t.Any, task: t.Any, task_vars: dict[str, t.Any]) -> str | None:
    """None if the task may run on a thread, else why it keeps a forked worker."""
    if os.environ.get(WORKERS_ENV) == "fork":
        return f"{WORKERS_ENV}=fork"
    # As PlayContext decides: the ansible_connection variable over the connection keyword.
    connection = task_vars.get("ansible_connection") or task.connection
    if not isinstance(connection, str) or "{" in connection:
        return "its connection is not a plain name"
    cls = connection_loader.get(connection, class_only=True)
    if cls is None or not issubclass(cls, PluginConnection):
        return OTHER_CONNECTION
    if task.delegate_to:
        return "delegate_to"
    if task.async_val:
        return "async"
    if task.debugger or C.ENABLE_TASK_DEBUGGER:
        return "task debugger"
    if task.timeout:  # TaskExecutor arms SIGALRM for it: main thread only
        return "timeout"
    action = task.action
    for prefix in _BUILTIN:
        if action.startswith(prefix):
            action = action[len(prefix):]
    if action_loader.has_plugin(task.action, collection_list=task.collections) and \
            action not in THREAD_SAFE_ACTIONS:
        return f"action plugin {task.action}"
    return None


_next = threading.local()


@contextlib.contextmanager
def on_a_thread() -> t.Iterator[None]:
    """The worker that the strategy's `_queue_task` builds inside this block is a ThreadWorker."""
    _next.thread = True
    try:
        yield
    finally:
        _next.thread = False


def _worker(*args: t.Any, **kwargs: t.Any) -> t.Any:
    """Stands in for WorkerProcess in ansible.plugins.strategy while an nspawn strategy runs."""
    if getattr(_next, "thread", False):
        return ThreadWorker(*args, **kwargs)
    return WorkerProcess(*args, **kwargs)


def install() -> t.Callable[[], None]:
    """Let `on_a_thread` take effect while a strategy runs; returns the undo."""
    global _controller_pid, _shared_model
    if _shared_model is None:
        plugin_cache.serialize_loading()
        _quiet_in_task_threads()
        _controller_pid = os.getpid()
        _shared_model = SharedWorkerModel(ansible_mitogen.process.get_classic_worker_model())
        os.register_at_fork(after_in_child=_after_fork_in_child)
        atexit.register(_shared_model.shutdown)
    forget_lookups = plugin_cache.remember_lookups()
    forget_answers = planner_cache.remember_answers()
    ansible.plugins.strategy.WorkerProcess = _worker
    ansible_mitogen.process.get_worker_model = get_worker_model

    def undo() -> None:
        ansible.plugins.strategy.WorkerProcess = WorkerProcess
        forget_lookups()
        forget_answers()
        # Closed with the strategy (the next play opens it again): its broker thread, when
        # the main thread started it (meta: reset_connection), is not a daemon, and Python
        # waits for such threads before it runs atexit handlers.
        if _shared_model is not None:
            _shared_model.shutdown()
    return undo
