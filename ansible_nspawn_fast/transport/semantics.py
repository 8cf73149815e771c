"""ansible-core's behaviour where ansible_mitogen's would differ, for nspawn targets.

ansible_mitogen reimplements parts of Ansible's action layer, and in a few places its answer
is not ansible-core's. Under nspawn_linear / nspawn_free, for tasks on `nspawn` connections,
this module puts ansible-core's answer back (docs/semantics.md lists each place and the
upstream targets in tests/upstream that show it):

- `fetch`: ansible_mitogen replaces the action with its own, older copy (a connection failure
  becomes FAILED instead of UNREACHABLE; other messages): nspawn tasks keep ansible-core's
  fetch action (still on ansible_mitogen's fast file transfer).
- Script modules (WANT_JSON, JSONARGS, old-style) with a `python` interpreter line: ansible_mitogen
  rewrites the line only from `ansible_python_interpreter` or a discovered interpreter, not from
  ansible.cfg's `interpreter_python` as ansible-core does.
- A become interpreter (sudo or su to another user) no longer lives for the rest of the run:
  it ends before the container's first task that does not run as that user (becomelife.py),
  so that, as under stock Ansible, no process of the user is left when another task runs.
- become on a `local` connection (`delegate_to: localhost` in a play with become): ansible_mitogen
  escalates by its own rule (become_user against the connection's remote_user), where
  ansible-core compares become_user with the controller's own user (a root controller needs no
  sudo); such tasks use ansible-core's local plugin.
- Tasks whose behaviour lives in code ansible_mitogen replaces run through the plugin's
  per-command connection with ansible-core's own action code, exactly as under stock linear
  (-vvv says which and why): async tasks (core's async_wrapper: its job ids, result and
  timeouts) and become settings Mitogen cannot honour (a method it has no implementation of,
  sudo flags its parser refuses or sudo's chdir, any su or doas flags, su prompts of one's own).
  A module an action starts asynchronously in a task that is not async (gather_facts running
  several fact modules in parallel) is started the same way; the action polls it through the
  interpreter.
- Async tasks on the other connections ansible_mitogen takes over (`local`, so `delegate_to:
  localhost` and the controller's own plays, `ssh`, ...) run with ansible-core's plugin of the
  same name and its action code too: ansible_mitogen's runner gives them its job ids and result
  types, and ends a job at exactly `async` seconds, where async_wrapper checks every 5 s and
  lets it run up to about 5 s longer (`sleep 5` with `async: 6` failed on a loaded machine).
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import shlex
import threading
import typing as t
import weakref

import ansible.errors
import ansible.plugins.loader
import ansible_mitogen.connection
import ansible_mitogen.loaders
import ansible_mitogen.mixins
import ansible_mitogen.planner
import ansible_mitogen.process
import ansible_mitogen.strategy
import ansible_mitogen.utils.unsafe
import mitogen.core
import mitogen.service
import mitogen.sudo
from ansible import constants as C
from ansible.utils.display import Display

# connection.py calls task_ended: its class is looked up when used, not at import.
from . import connection as nspawn_connection
from . import plan

_cast = ansible_mitogen.utils.unsafe.cast

display = Display()

_DISCOVERY_MODES = frozenset({"auto", "auto_legacy", "auto_silent", "auto_legacy_silent"})

# Per nspawn connection (Ansible makes one per task): the plugin's per-command connection the
# task uses, and, when the whole task was routed there, why (its later actions, such as async
# polling, follow it there).
_per_command: weakref.WeakKeyDictionary[t.Any, t.Any] = weakref.WeakKeyDictionary()
_routed: weakref.WeakKeyDictionary[t.Any, str] = weakref.WeakKeyDictionary()
# What TaskExecutor set each of ansible_mitogen's connections up with (set_options' arguments):
# ansible-core's plugin that stands in for it is set up the same way.
_option_sources: weakref.WeakKeyDictionary[t.Any, tuple[tuple[t.Any, ...], dict[str, t.Any]]] = \
    weakref.WeakKeyDictionary()
_lock = threading.Lock()  # tasks may run on threads of ansible-playbook


# -- which tasks take the per-command path ---------------------------------------------------

def plugin_path_reason(task: t.Any, become: t.Any) -> str | None:
    """Why this task must run on the per-command path with ansible-core's action code, or None."""
    if task is not None and getattr(task, "async_val", 0):
        return "an async task (ansible-core's async_wrapper starts and reports it)"
    return become_reason(become)


def become_reason(become: t.Any) -> str | None:
    """Why Mitogen's become hop would not do what this become plugin's settings ask, or None."""
    if become is None:
        return None
    if (_option(become, "become_user") or "root") == "root":
        return None  # no become hop: commands in the container run as root already
    method = become.name
    if method not in ansible_mitogen.connection.CONNECTION_METHOD:
        return f"become method {method} (Mitogen has no implementation of it)"
    flags = _option(become, "become_flags") or ""
    if method == "sudo":
        if _option(become, "sudo_chdir"):
            return "sudo_chdir (Mitogen's sudo does not change directory)"
        try:
            mitogen.sudo.parse_sudo_flags(shlex.split(flags))
        except (mitogen.core.StreamError, ValueError) as e:
            return f"sudo flags {flags!r} ({e}: Mitogen's sudo refuses them)"
        return None
    if flags.strip():
        return f"{method} flags {flags!r} (Mitogen's {method} passes none on)"
    if _option(become, "prompt_l10n"):
        return f"{method} prompts of one's own (Mitogen's {method} knows only its own)"
    return None


def _option(plugin: t.Any, name: str) -> t.Any:
    try:
        return plugin.get_option(name)
    except (KeyError, ansible.errors.AnsibleError):  # not an option of this plugin or version
        return None


def _per_command_connection(connection: t.Any, reason: str) -> t.Any:
    """The plugin's own connection for this task (same options, same become plugin), made once;
    for another of ansible_mitogen's connections, ansible-core's plugin it stands in for."""
    with _lock:
        plain = _per_command.get(connection)
        if plain is None:
            if isinstance(connection, nspawn_connection.Connection):
                display.vvv(f"NSPAWN: {reason}: runs through the per-command nspawn connection, with "
                            "ansible-core's action code", host=connection._play_context.remote_addr)
                plain = connection._plain_connection()
            else:
                display.vvv(f"NSPAWN: {reason}: runs through ansible-core's {connection.transport} "
                            "connection and action code", host=connection._play_context.remote_addr)
                plain = _core_connection(connection)
            _per_command[connection] = plain
    return plain


def _takes_core_plugins(connection: t.Any) -> bool:
    """One of ansible_mitogen's own connections (mitogen_local, mitogen_ssh, ...), not ours."""
    return (isinstance(connection, ansible_mitogen.connection.Connection)
            and not isinstance(connection, nspawn_connection.Connection)
            and connection.transport in ansible_mitogen.strategy.REDIRECTED_CONNECTION_PLUGINS
            and connection in _option_sources)


def _core_connection(connection: t.Any) -> t.Any:
    """ansible-core's plugin of the transport an ansible_mitogen connection stands in for,
    with the same play context, options, shell (remote_tmp, async_dir) and become plugin."""
    core = ansible_mitogen.loaders.connection_loader__get_with_context(
        connection.transport, connection._play_context, shell=connection._shell).object
    args, kwargs = _option_sources[connection]
    core.set_options(*args, **kwargs)
    if connection.become is not None:
        core.set_become_plugin(connection.become)
    return core


def _recording_set_options(original: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    def set_options(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        _option_sources[self] = (args, kwargs)
        return original(self, *args, **kwargs)
    set_options.nspawn_fast = True  # type: ignore[attr-defined]
    return set_options


def task_ended(connection: nspawn_connection.Connection) -> None:
    """The task's connection closes: so does its per-command connection."""
    with _lock:
        plain = _per_command.pop(connection, None)
        _routed.pop(connection, None)
    if plain is not None:
        plain.close()


# -- the action loader --------------------------------------------------------------------

def _with_mixin(name: str, args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> t.Any:
    """What ansible_mitogen's action loader returns for `name`, without its fetch redirect."""
    klass, context = ansible_mitogen.loaders.action_loader__get_with_context(
        name, class_only=True, collection_list=kwargs.pop("collection_list", None))
    if klass is None:
        return ansible.plugins.loader.get_with_context_result(None, context)
    adorned = type(str(name), (ansible_mitogen.mixins.ActionModuleMixin, klass), {})
    if kwargs.get("class_only"):
        return ansible.plugins.loader.get_with_context_result(adorned, context)
    return ansible.plugins.loader.get_with_context_result(adorned(*args, **kwargs), context)


def _action_loader(mitogen_wrapper: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    def get_with_context(name: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        connection = kwargs.get("connection")
        if _takes_core_plugins(connection):
            return _other_connection_action(mitogen_wrapper, name, args, kwargs)
        if not isinstance(connection, nspawn_connection.Connection):
            return mitogen_wrapper(name, *args, **kwargs)
        routed = _routed.get(connection)
        reason = routed or plugin_path_reason(kwargs.get("task"), connection.become)
        if reason is not None:
            _routed[connection] = reason
            kwargs["connection"] = _per_command_connection(connection, reason)
            found = ansible_mitogen.loaders.action_loader__get_with_context(name, *args, **kwargs)
            if routed is None and found.object is not None and not kwargs.get("class_only"):
                _ends_become_interpreters_first(found.object, connection)
            return found
        if name == "fetch":  # the only name ansible_mitogen redirects (to mitogen_fetch)
            return _with_mixin(name, args, kwargs)
        return mitogen_wrapper(name, *args, **kwargs)
    return get_with_context


def _other_connection_action(mitogen_wrapper: t.Callable[..., t.Any], name: str,
                             args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> t.Any:
    """An async task on another of ansible_mitogen's connections (and its polling, which
    follows it): ansible-core's connection plugin and action. Anything else: ansible_mitogen."""
    connection = kwargs["connection"]
    task = kwargs.get("task")
    reason = _routed.get(connection)
    if reason is None and task is not None and getattr(task, "async_val", 0):
        reason = _routed[connection] = "an async task (ansible-core's async_wrapper starts and reports it)"
    if reason is None:
        return mitogen_wrapper(name, *args, **kwargs)
    kwargs["connection"] = _per_command_connection(connection, reason)
    return ansible_mitogen.loaders.action_loader__get_with_context(name, *args, **kwargs)


def _ends_become_interpreters_first(action: t.Any, connection: nspawn_connection.Connection) -> None:
    """Before the routed task runs, no become interpreter of an earlier task is left in its
    container (becomelife.py ends them when the multiplexer hears of a task without one)."""
    run = action.run

    def run_after_the_end(tmp: t.Any = None, task_vars: t.Any = None) -> t.Any:
        _tell_the_multiplexer(connection, action, task_vars or {})
        return run(tmp=tmp, task_vars=task_vars)
    action.run = run_after_the_end


def _tell_the_multiplexer(connection: nspawn_connection.Connection, action: t.Any,
                          task_vars: dict[str, t.Any]) -> None:
    try:
        connection.on_action_run(task_vars=task_vars, delegate_to_hostname=action._task.delegate_to,
                                 loader_basedir=action._loader.get_basedir())
        target = connection._nspawn_target()
        binding = ansible_mitogen.process.get_worker_model().get_binding(_cast(plan.binding_name(target)))
        try:
            mitogen.service.call(
                call_context=binding.get_service_context(), service_name=nspawn_connection.NSPAWN_SERVICE,
                method_name="get", host_stack=_cast(connection._host_stack(target)),
                target=_cast(dataclasses.asdict(target)), python=_cast(list(connection._python)),
                connect_timeout=None, extra_hops=[], connect=False)
        finally:
            binding.close()
    except (ansible.errors.AnsibleError, mitogen.core.Error) as e:  # the plugin reports its own
        display.vvvv(f"NSPAWN: could not end earlier become interpreters: {e}")


# -- the connection loader -----------------------------------------------------------------

def _connection_loader(mitogen_wrapper: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    def get_with_context(name: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        play_context = args[0] if args else None
        if name == "local" and getattr(play_context, "become", False):
            display.vvv("NSPAWN: become on a local connection: ansible-core's local plugin "
                        "(ansible_mitogen's would escalate by other rules)",
                        host=getattr(play_context, "remote_addr", None))
            return ansible_mitogen.loaders.connection_loader__get_with_context(name, *args, **kwargs)
        return mitogen_wrapper(name, *args, **kwargs)
    return get_with_context


# -- modules an action starts asynchronously -----------------------------------------------

def _execute_module(original: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """ActionModuleMixin._execute_module: wrap_async through ansible-core's code.

    Some actions start modules asynchronously in tasks that are not async themselves
    (gather_facts with several fact modules, third-party actions) and read ansible-core's
    answer (`results_file`, job ids); that module run takes the per-command path. The
    action then polls the job through the interpreter: async_status reads the same job file.
    """
    signature = inspect.signature(original)

    def execute_module(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        connection = self._connection
        if (not (isinstance(connection, nspawn_connection.Connection) or _takes_core_plugins(connection))
                or not signature.bind(self, *args, **kwargs).arguments.get("wrap_async")):
            return original(self, *args, **kwargs)
        reason = f"the {self._task.action} action starts a module asynchronously"
        core_class = next(c for c in type(self).__mro__
                          if not issubclass(c, ansible_mitogen.mixins.ActionModuleMixin))
        action = core_class(task=self._task, connection=_per_command_connection(connection, reason),
                            play_context=self._play_context, loader=self._loader, templar=self._templar,
                            shared_loader_obj=self._shared_loader_obj)
        return action._execute_module(*args, **kwargs)
    execute_module.nspawn_fast = True  # type: ignore[attr-defined]
    return execute_module


# -- script modules' interpreter line ------------------------------------------------------

def _rewrite_interpreter(original: t.Callable[..., str]) -> t.Callable[..., str]:
    def rewrite_interpreter(self: t.Any, path: str) -> str:
        found = original(self, path)
        if (found != path or os.path.basename(path).strip() != "python"
                or not isinstance(self._inv.connection, nspawn_connection.Connection)):
            return found
        # Neither the variable nor a discovered interpreter: ansible-core takes ansible.cfg's.
        configured = C.config.get_config_value("INTERPRETER_PYTHON", variables=self._inv.task_vars)
        if not configured or configured in _DISCOVERY_MODES:
            return found
        return ansible_mitogen.utils.unsafe.cast(self._inv.templar.template(configured))
    rewrite_interpreter.nspawn_fast = True  # type: ignore[attr-defined]
    return rewrite_interpreter


# -- install / undo --------------------------------------------------------------------------

def install() -> t.Callable[[], None]:
    """Put the hooks in place while a strategy runs (before its workers fork); returns the undo."""
    action_wrapper = ansible_mitogen.strategy.wrap_action_loader__get_with_context
    connection_wrapper = ansible_mitogen.strategy.wrap_connection_loader__get_with_context
    planner = ansible_mitogen.planner.ScriptPlanner
    rewrite = planner._rewrite_interpreter
    mixin = ansible_mitogen.mixins.ActionModuleMixin
    execute = mixin._execute_module
    mitogen_connection = ansible_mitogen.connection.Connection
    set_options = mitogen_connection.set_options
    own_set_options = "set_options" in vars(mitogen_connection)
    if getattr(rewrite, "nspawn_fast", False):  # nested strategy runs: installed already
        return lambda: None
    # ansible_mitogen's StrategyMixin.run installs these module globals as the loaders' methods.
    ansible_mitogen.strategy.wrap_action_loader__get_with_context = _action_loader(action_wrapper)
    ansible_mitogen.strategy.wrap_connection_loader__get_with_context = _connection_loader(connection_wrapper)
    planner._rewrite_interpreter = _rewrite_interpreter(rewrite)
    mixin._execute_module = _execute_module(execute)
    mitogen_connection.set_options = _recording_set_options(set_options)

    def undo() -> None:
        ansible_mitogen.strategy.wrap_action_loader__get_with_context = action_wrapper
        ansible_mitogen.strategy.wrap_connection_loader__get_with_context = connection_wrapper
        planner._rewrite_interpreter = rewrite
        mixin._execute_module = execute
        if own_set_options:
            mitogen_connection.set_options = set_options
        else:
            del mitogen_connection.set_options
    return undo
