"""The Ansible adapter under nspawn_linear: an ansible_mitogen Connection for `nspawn` (its class must be called Connection).

It reads the same options as the connection plugin (its `_load_name` is the
plugin's, so `get_option` resolves against the shim's DOCUMENTATION) and builds
the target spec with the same `target_from_options`. Everything else (module
execution in the persistent interpreter, file transfer through FileService,
become hops, temp dirs) is ansible_mitogen's.

Per task, in the worker: get the host context from ContextService (cached in
the multiplexer), ask it for the container's leader (hostside.leader: cached
and validated there), then get the container context for that leader.
"""
from __future__ import annotations

import typing as t

import ansible.errors
import ansible_mitogen.connection
import ansible_mitogen.process
import ansible_mitogen.transport_config
import ansible_mitogen.utils.unsafe
import mitogen.core
import mitogen.service
from ansible.utils.display import Display

from .. import enter
from ..connection import helper_error, to_ansible_error
from ..target import NspawnTarget, target_from_options
from . import hostside, plan

display = Display()
_cast = ansible_mitogen.utils.unsafe.cast


class _CallChain(ansible_mitogen.connection.CallChain):
    """A container that dies during a task fails that task (not UNREACHABLE), by name."""

    def _rethrow(self, recv: t.Any) -> t.Any:
        try:
            return recv.get().unpickle()
        except mitogen.core.ChannelError as e:
            self._connection._forget_context()
            target = self._connection._target
            raise ansible.errors.AnsibleError(
                f"{target.where if target else 'the container'} stopped or restarted while this "
                f"task was running ({e}); the task failed, the next task enters the new leader") from e


class _HostSpec(ansible_mitogen.transport_config.PlayContextSpec):
    """The SSH hop's settings: the nspawn plugin's ssh options, the host's python."""

    def python_path(self, rediscover_python: bool = False) -> list[str]:
        return list(plan.HOST_PYTHON)


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
        except Exception as e:  # ConfigError
            raise ansible.errors.AnsibleConnectionFailure(str(e)) from e

    def _host_stack(self, target: NspawnTarget) -> list[dict[str, t.Any]]:
        if target.local:
            return [plan.host_hop_local()]
        return [ansible_mitogen.connection._connect_ssh(self._spec(_HostSpec))]

    def _service_get(self, stack: list[dict[str, t.Any]]) -> dict[str, t.Any]:
        dct = mitogen.service.call(
            call_context=self.binding.get_service_context(),
            service_name="ansible_mitogen.services.ContextService",
            method_name="get",
            stack=_cast(list(stack)),
        )
        if dct["msg"]:
            raise ansible.errors.AnsibleConnectionFailure(
                f"cannot reach {self._target.where if self._target else 'the host'}: {dct['msg']}")
        return dct

    def _leader(self, target: NspawnTarget, host_stack: list[dict[str, t.Any]]) -> enter.Leader | None:
        if target.is_directory:
            return None
        host = self._service_get(host_stack)["context"]
        try:
            res = host.call(hostside.leader, str(target.container), int(target.boot_timeout),
                            bool(target.host_sudo))
        except mitogen.core.ChannelError as e:
            raise ansible.errors.AnsibleConnectionFailure(
                f"lost the connection to host {target.host} while looking up {target.where}: {e}") from e
        if "leader" in res:
            leader = enter.Leader(*res["leader"])
            if not res["cached"]:
                display.vvv(f"NSPAWN: leader of {target.where} is PID {leader.pid}", host=target.container)
            return leader
        found = enter.parse_helper_error(res["rc"], res["stdout"], res["stderr"])
        if found is not None:
            raise to_ansible_error(helper_error(target, *found))
        raise ansible.errors.AnsibleConnectionFailure(
            f"cannot look up the leader of {target.where} (rc={res['rc']}): "
            f"{res['stderr'].decode('utf-8', 'replace').strip()}")

    def _build_stack(self) -> tuple[str, list[dict[str, t.Any]]]:
        target = self._target = self._nspawn_target()
        own_binding = self.binding is None
        if own_binding:
            self.binding = ansible_mitogen.process.get_worker_model().get_binding(
                plan.binding_name(target))
        try:
            host_stack = self._host_stack(target)
            leader = self._leader(target, host_stack)
        finally:
            if own_binding:
                self.binding.close()
                self.binding = None
        spec = self._spec(ansible_mitogen.transport_config.PlayContextSpec)
        stack = host_stack + [plan.container_hop(target, leader, spec.python_path(),
                                                 connect_timeout=spec.timeout())]
        if spec.become() and (spec.become_user() or "root") != "root":  # inside, we are root
            stack.append(ansible_mitogen.connection.CONNECTION_METHOD[spec.become_method()](spec))
        return spec.inventory_name(), _cast(stack)

    def _connect(self) -> None:
        if self.connected:
            return
        target = self._target = self._nspawn_target()
        self.binding = ansible_mitogen.process.get_worker_model().get_binding(
            _cast(plan.binding_name(target)))
        _, stack = self._build_stack()
        display.vvv(f"ESTABLISH NSPAWN (mitogen) CONNECTION TO {target.where}",
                    host=target.container or target.host)
        self._connect_stack(stack)
        self._stack = stack
        self.chain = _CallChain(self, self.context, pipelined=True)

    _stack: list[dict[str, t.Any]] | None = None

    def _forget_context(self) -> None:
        """Drop the dead interpreter without a new leader lookup (the container may be down)."""
        stack = self._stack
        self.close()
        if not stack:
            return
        if self.become:
            stack = stack[:-1]
        binding = ansible_mitogen.process.get_worker_model().get_binding(
            _cast(plan.binding_name(self._target)))
        try:
            mitogen.service.call(call_context=binding.get_service_context(),
                                 service_name="ansible_mitogen.services.ContextService",
                                 method_name="reset", stack=_cast(list(stack)))
        except mitogen.core.Error:
            pass  # already forgotten on disconnect
        finally:
            binding.close()
