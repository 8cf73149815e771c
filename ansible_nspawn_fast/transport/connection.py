"""The Ansible adapter under nspawn_linear: an ansible_mitogen Connection for `nspawn`.

It reads the same options as the connection plugin (its `_load_name` is the
plugin's, so `get_option` resolves against the shim's DOCUMENTATION) and builds
the target spec with the same `target_from_options`. Everything else (module
execution in the persistent interpreter, file transfer through FileService,
become hops, temp dirs) is ansible_mitogen's.

Per task, in the worker: one call to the multiplexer's NspawnService
(muxside.py), which gets the host's context, the container's leader (cached and
checked on the host, hostside.py) and the container's interpreter for that leader.
"""
from __future__ import annotations

import dataclasses
import os
import typing as t

import ansible.errors
import ansible_mitogen.connection
import ansible_mitogen.process
import ansible_mitogen.transport_config
import ansible_mitogen.utils.unsafe
import mitogen.core
import mitogen.service
from ansible.utils.display import Display

from .. import enter, errors
from ..connection import Connection as PluginConnection
from ..connection import helper_error, to_ansible_error
from ..target import NspawnTarget, target_from_options
from . import bulk, hostside, hostssh, inprocess, lifetime, plan, semantics

display = Display()
_cast = ansible_mitogen.utils.unsafe.cast
NSPAWN_SERVICE = "ansible_nspawn_fast.transport.muxside.NspawnService"


class _CallChain(ansible_mitogen.connection.CallChain):
    """An interpreter lost during a task: the task FAILS if its container went (or only the
    interpreter), the host is UNREACHABLE if the connection to the host went; by name."""

    def _rethrow(self, recv: t.Any) -> t.Any:
        try:
            return recv.get().unpickle()
        except mitogen.core.ChannelError as e:
            # The message carries `e`; chained, Ansible would print it a second time.
            raise self._connection._interrupted(e) from None


class _HostSpec(ansible_mitogen.transport_config.PlayContextSpec):
    """The SSH hop's settings: the nspawn plugin's ssh options, the host's python."""

    def python_path(self, rediscover_python: bool = False) -> list[str]:
        return list(plan.HOST_PYTHON)

    def ssh_args(self) -> list[str]:
        return hostssh.host_ssh_args(self._connection_option, self._task_vars)


class Connection(ansible_mitogen.connection.Connection):
    # Ansible derives the plugin type from the class name, so it must be "Connection".
    """ansible_mitogen connection for `ansible_connection: nspawn` targets."""
    transport = "nspawn"
    has_pipelining = True

    _target: NspawnTarget | None = None

    def _spec(self, cls: type) -> t.Any:
        return cls(connection=self, play_context=self._play_context, transport="ssh",
                   inventory_name=self.get_task_var("inventory_hostname"))

    def _nspawn_target(self) -> NspawnTarget:
        try:
            return target_from_options(self.get_option)
        except errors.NspawnError as e:  # ConfigError: UNREACHABLE, as on the plugin path
            raise to_ansible_error(e) from None

    def _host_stack(self, target: NspawnTarget) -> list[dict[str, t.Any]]:
        if target.local:
            return [plan.host_hop_local()]
        return [plan.host_hop(ansible_mitogen.connection._connect_ssh(self._spec(_HostSpec)))]

    def _service_get(self, stack: list[dict[str, t.Any]], binding: t.Any = None) -> dict[str, t.Any]:
        dct = mitogen.service.call(
            call_context=(binding or self.binding).get_service_context(),
            service_name="ansible_mitogen.services.ContextService",
            method_name="get",
            stack=_cast(list(stack)),
        )
        if dct["msg"]:
            where = self._target.where if self._target else "the host"
            raise to_ansible_error(errors.host_unreachable(where, dct["msg"]))
        return dct

    def _resolve(self, connect: bool) -> dict[str, t.Any]:
        """Ask the multiplexer for the stack (and, with `connect`, the context) of this task."""
        target = self._target = self._nspawn_target()
        spec = self._spec(ansible_mitogen.transport_config.PlayContextSpec)
        self._python = list(spec.python_path())
        extra_hops = []
        if spec.become() and (spec.become_user() or "root") != "root":  # inside, we are root
            hop = ansible_mitogen.connection.CONNECTION_METHOD[spec.become_method()](spec)
            hop["kwargs"]["connect_timeout"] = plan.bootstrap_timeout(hop["kwargs"].get("connect_timeout"))
            extra_hops.append(hop)
        own_binding = self.binding is None
        if own_binding:
            self.binding = ansible_mitogen.process.get_worker_model().get_binding(
                _cast(plan.binding_name(target)))
        try:
            res = mitogen.service.call(
                call_context=self.binding.get_service_context(), service_name=NSPAWN_SERVICE,
                method_name="get", host_stack=_cast(self._host_stack(target)),
                target=_cast(dataclasses.asdict(target)), python=_cast(self._python),
                connect_timeout=_cast(spec.timeout()), extra_hops=_cast(extra_hops), connect=connect)
        finally:
            if own_binding:
                self.binding.close()
                self.binding = None
        self._leader_found = enter.Leader(*res["leader"]) if res.get("leader") else None
        if "lookup" in res:
            raise to_ansible_error(helper_error(target, *res["lookup"]))
        if self._leader_found is not None and not res["cached"]:
            display.vvv(f"NSPAWN: leader of {target.where} is PID {self._leader_found.pid}",
                        host=target.container)
        return res

    def _build_stack(self) -> tuple[str, list[dict[str, t.Any]]]:
        # Used by ansible_mitogen's reset() (meta: reset_connection).
        stack = self._resolve(connect=False)["stack"]
        return self.get_task_var("inventory_hostname"), _cast(stack)

    def _connect(self) -> None:
        if self.connected or self._plain is not None:
            return
        if self._stack is not None and self.binding is not None and self._connect_again():
            return
        if not inprocess.in_controller():
            lifetime.exit_with_parent()  # this task's worker goes when the controller goes
        target = self._target = self._nspawn_target()
        self.binding = ansible_mitogen.process.get_worker_model().get_binding(
            _cast(plan.binding_name(target)))
        display.vvv(f"ESTABLISH NSPAWN (mitogen) CONNECTION TO {target.where}",
                    host=target.container or target.host)
        res = self._resolve(connect=True)
        if res["msg"]:
            found = enter.parse_helper_error(enter.HELPER_ERROR_RC, b"", str(res["msg"]).encode())
            if found is not None:  # the helper refused or failed before python started
                raise to_ansible_error(helper_error(target, *found))
            if res.get("method_name") == plan.CONTAINER_METHOD and self._lacks_python():
                # raw must work in a container without python (it is how python gets
                # installed): such a task goes through the plain per-command connection.
                display.vvv(f"NSPAWN: no {self._python[0]} in {target.where}: raw commands and "
                            "file transfers use the per-command nspawn connection", host=target.container)
                self._plain = self._plain_connection()
                return
            if res.get("method_name") in self.become_methods:
                # A become hop that failed (its password, its prompt): FAILED in mitogen's words,
                # as ansible_mitogen reports it.
                raise ansible.errors.AnsibleModuleError(res["msg"])
            raise to_ansible_error(errors.host_unreachable(target.where, res["msg"]))
        self._stack = res["stack"]
        self._use_interpreter(res)

    def _use_interpreter(self, answer: dict[str, t.Any]) -> None:
        """This task's calls go to the interpreter in ContextService's (or NspawnService's) answer."""
        self.context = answer["context"]
        self.login_context = answer["via"] if self.become else self.context
        self.init_child_result = answer["init_child_result"]
        self.chain = _CallChain(self, self.context, pipelined=True)

    def _connect_again(self) -> bool:
        """A later item of this task's loop: ansible_mitogen lets go of the interpreter
        before each item, and the task's leader and readiness were checked for its first
        one. Take the same interpreter back from the multiplexer (no round trip to the host);
        if it is gone, the full lookup decides (False)."""
        try:
            self._use_interpreter(self._service_get(self._stack or []))
        except ansible.errors.AnsibleConnectionFailure:
            return False
        return True

    _stack: list[dict[str, t.Any]] | None = None
    _plain: PluginConnection | None = None
    _python: list[str] = ["python3"]
    _leader_found: enter.Leader | None = None
    _option_sources: tuple[t.Any, t.Any, t.Any] = (None, None, None)

    def set_options(self, task_keys: t.Any = None, var_options: t.Any = None,
                    direct: t.Any = None) -> None:
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self._option_sources = (task_keys, var_options, direct)

    def _lacks_python(self) -> bool:
        """After a failed bootstrap: is it because the container has no python at all?

        Asked inside the container (its shell's `command -v`), never by looking at its files
        from the host.
        """
        target = self._target
        assert target is not None
        if not target.is_directory and self._leader_found is None:
            return False
        probe = ["/bin/sh", "-c", 'command -v "$1" >/dev/null', "sh", self._python[0]]
        argv = plan.container_python_argv(target, self._leader_found, probe)
        host = self._service_get(self._host_stack(target))["context"]
        try:
            rc, err = host.call(hostside.run, _cast(argv), 30)
        except mitogen.core.Error:
            return False
        found = enter.parse_helper_error(rc, b"", err)
        if found is not None:
            raise to_ansible_error(helper_error(target, *found))
        if target.is_directory and (reason := enter.tree_failure(rc, err)) is not None:
            raise to_ansible_error(errors.tree_refused(target, reason))
        return rc != 0

    def _plain_connection(self) -> PluginConnection:
        """The plugin's own per-command connection, with this one's identity and options."""
        plain = object.__new__(PluginConnection)
        for attr in ("_original_path", "_load_name", "_redirected_names", "ansible_aliases",
                     "ansible_name"):
            setattr(plain, attr, getattr(self, attr, None))
        PluginConnection.__init__(plain, self._play_context, shell=self._shell)
        plain.set_options(*self._option_sources)
        if self.become is not None:
            plain.set_become_plugin(self.become)
        return plain

    def _require_interpreter(self) -> None:
        self._connect()
        if self._plain is not None:
            where = self._target.where if self._target else "the container"
            raise to_ansible_error(errors.no_interpreter(where, self._python[0]))

    def get_chain(self, use_login: bool = False, use_fork: bool = False) -> t.Any:
        self._require_interpreter()
        return super().get_chain(use_login=use_login, use_fork=use_fork)

    def get_good_temp_dir(self) -> str:
        self._require_interpreter()
        return super().get_good_temp_dir()

    def exec_command(self, cmd: str, in_data: t.Any = "", sudoable: bool = True,
                     mitogen_chdir: str | None = None) -> t.Any:
        self._connect()
        if self._plain is not None:
            return self._plain.exec_command(cmd, in_data=in_data or None, sudoable=sudoable)
        return super().exec_command(cmd, in_data=in_data, sudoable=sudoable, mitogen_chdir=mitogen_chdir)

    def put_file(self, in_path: str, out_path: str) -> None:
        self._connect()
        if self._plain is not None:
            return self._plain.put_file(in_path, out_path)
        try:
            size = os.stat(in_path).st_size
        except OSError:
            size = 0  # ansible_mitogen's own put_file says what is wrong with it
        if (channel := self._bulk_channel(size)) is not None:
            display.vvv(f"NSPAWN: PUT {in_path} ({size} bytes) TO {out_path} over a bulk SSH session",
                        host=self._target.container if self._target else None)
            return channel.put(in_path, out_path)
        return super().put_file(in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        self._connect()
        if self._plain is not None:
            return self._plain.fetch_file(in_path, out_path)
        if self._bulk_possible():  # then its size decides
            try:
                size = self.get_chain().call(os.path.getsize, _cast(in_path))
            except mitogen.core.CallError:
                size = 0  # missing or unreadable: ansible_mitogen's fetch_file reports it
            if (channel := self._bulk_channel(size)) is not None:
                display.vvv(f"NSPAWN: FETCH {in_path} ({size} bytes) TO {out_path} over a bulk "
                            "SSH session", host=self._target.container if self._target else None)
                return channel.fetch(in_path, out_path, size)
        return super().fetch_file(in_path, out_path)

    _bulk: bulk.Channel | None = None
    _bulk_refused: str | None = None

    def _bulk_possible(self) -> bool:
        """Whether large files of this task may take the bulk path (transport/bulk.py): not in
        directory trees (one systemd-nspawn per tree), not a become user's files (written as
        that user through its own interpreter), only at a leader this task found."""
        target, hop = self._target, self._container_hop()
        return (target is not None and not target.is_directory and self._leader_found is not None
                and hop is not None and hop == len(self._stack or ()) - 1
                and self._bulk_refused is None)

    def _bulk_channel(self, size: int) -> bulk.Channel | None:
        """The bulk session for a file of `size` bytes, or None: ansible_mitogen's transfer
        (small files; see _bulk_possible; a password for SSH)."""
        target = self._target
        if size < bulk.BULK_MIN_BYTES or target is None or not self._bulk_possible():
            return None
        if self._bulk is None:
            try:
                self._bulk = bulk.Channel(target, self._leader_found, bulk.host_argv_builder(self, target))
            except bulk.BulkUnavailable as e:
                self._bulk_refused = str(e)
                display.vvv(f"NSPAWN: large files go through mitogen: {e}", host=target.container)
        return self._bulk

    def close(self) -> None:
        semantics.task_ended(self)  # and so does its per-command connection, if it had one
        if self._plain is not None:
            self._plain.close()
            self._plain = None
        self._bulk = self._bulk_refused = None
        super().close()

    def _container_hop(self) -> int | None:
        """Index of the container's hop in the task's stack: the host's hops come before it."""
        for i, hop in enumerate(self._stack or ()):
            if hop.get("method") == plan.CONTAINER_METHOD:
                return i
        return None

    def _what_went(self) -> str:
        """Why the task's interpreter is gone: "host" (the connection to the host was lost),
        "container" (its leader changed or is gone) or "interpreter" (only it exited)."""
        target, context, hop, leader = self._target, self.context, self._container_hop(), self._leader_found
        if target is None or context is None or hop is None:
            return "container"
        try:
            host = mitogen.service.call(call_context=self.binding.get_service_context(),
                                        service_name="ansible_mitogen.services.ContextService",
                                        method_name="get", stack=_cast(list(self._stack[:hop])))
        except mitogen.core.Error:
            return "host"  # the multiplexer itself is gone
        # The multiplexer forgets a lost host's context and this get() connects anew: context
        # IDs grow with creation, so a host context newer than the task's is a new connection.
        if host["msg"] or host["context"].context_id > context.context_id:
            return "host"
        # The host is the same: ask it for the container's leader now. Its cache may still hold
        # the leader of an instance that is shutting down (the interpreter dies before the
        # leader does): drop it, so that the lookup asks machined and the container again and
        # waits while it reboots; a leader that is still the same and booted means only the
        # interpreter went.
        if target.container is not None:
            try:
                host["context"].call(hostside.forget, str(target.container))
            except mitogen.core.Error:
                return "host"
        try:
            self._resolve(connect=False)
        except (ansible.errors.AnsibleError, mitogen.core.Error):
            return "container"  # not running (any more)
        finally:
            self._target = target
        return "interpreter" if self._leader_found == leader else "container"

    def _interrupted(self, e: mitogen.core.ChannelError) -> ansible.errors.AnsibleError:
        """The error for a task whose interpreter went away during a call; forgets it."""
        target = self._target
        what = self._what_went()
        self._forget_context(host_alive=what != "host")
        if target is None or what == "interpreter":
            return to_ansible_error(errors.interpreter_exited(target, str(e)))
        if what == "host":
            # UNREACHABLE: the host connection is what failed, not the task in the container.
            return to_ansible_error(errors.host_lost(target, str(e)))
        return to_ansible_error(helper_error(target, "leader-changed", str(e)))

    def _forget_context(self, host_alive: bool = True) -> None:
        """Drop the dead interpreter without a new leader lookup (the container may be down)."""
        stack, hop = self._stack, self._container_hop()
        # Already forgotten by the multiplexer on disconnect: no put() of it (it would warn).
        self.context = self.login_context = self.chain = self.init_child_result = None
        self.close()
        if not stack or hop is None:
            return
        binding = ansible_mitogen.process.get_worker_model().get_binding(
            _cast(plan.binding_name(self._target)))
        try:
            # The container's interpreter (a become interpreter is its child, and goes with it).
            mitogen.service.call(call_context=binding.get_service_context(),
                                 service_name="ansible_mitogen.services.ContextService",
                                 method_name="reset", stack=_cast(list(stack[:hop + 1])))
        except mitogen.core.Error:
            pass  # already forgotten on disconnect
        try:
            # The old leader may still be alive while its container shuts down: the next
            # task must look the container up again (and wait for its reboot), not reuse it.
            # A lost host's cache went with its interpreter.
            if host_alive and self._target is not None and self._target.container is not None:
                host = self._service_get(stack[:hop], binding)["context"]
                host.call(hostside.forget, str(self._target.container))
        except (mitogen.core.Error, ansible.errors.AnsibleConnectionFailure):
            pass  # the host is gone too: its cache went with it
        finally:
            binding.close()
