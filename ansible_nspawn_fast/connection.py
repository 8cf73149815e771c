"""The Ansible side of `ansible_connection: nspawn` (the plugin file is a thin shim).

Per task, Ansible creates one connection object in a forked worker. It builds
the target spec once (target.py), opens the host hop (an ansible.builtin.ssh or
ansible.builtin.local instance given the same variables), looks the leader up
once and reuses it for the task's commands; the next task looks again, so a
container restarted between tasks is entered at its new leader.
"""
from __future__ import annotations

import os
import secrets
import shlex
import tempfile
import typing as t

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.plugins.loader import connection_loader
from ansible.utils.display import Display

from . import enter, errors
from .errors import (ConfigError, ContainerRestarted, LocalFileNotFound, NextSteps, NspawnError, RemoteFileNotFound,
                     Unreachable, helper_failure)
from .host import HostShell, LocalHost, SshHost
from .target import NspawnTarget, target_from_options

display = Display()
# The SSH hop's plugin, by the name it is asked for in every task's worker.
SSH_HOP = "ansible.builtin.ssh"


def _warm_for_workers() -> None:
    """Work every task's worker would repeat, done once where this module is first imported.

    ansible-playbook imports the connection plugins in its own process before it forks a
    worker per task; what is loaded here is inherited: the ssh plugin's option definitions
    (a YAML parse of its documentation, about 30 ms a task otherwise, as ansible-playbook's
    own preload knows it only as "ssh") and helper.sh's text and digest.
    """
    try:
        connection_loader.get(SSH_HOP, class_only=True)
    except Exception:  # noqa: BLE001 - only a head start: the worker loads it as before
        pass
    enter.helper_digest()


_warm_for_workers()


# The next steps of the helper's errors in an inventory's words (errors.HELPER_FAILURES).
ANSIBLE_STEPS = NextSteps(
    work="task",
    again="the task failed; the next task enters the new leader",
    fix_name="fix ansible_nspawn_container",
    boot_timeout="ansible_nspawn_boot_timeout",
    directory="ansible_nspawn_directory",
    helper="if ansible_nspawn_host_helper is set, install the helper of this version there "
           "(`nspawn-fast host-helper` prints it)",
    stop_timeout="the stop timeout",
)


def helper_error(target: NspawnTarget, code: str, message: str) -> NspawnError:
    """The host helper's error code as a typed error with the next step (both Ansible paths)."""
    return helper_failure(code, message, where=target.where, name=target.container, steps=ANSIBLE_STEPS)


def to_ansible_error(err: NspawnError) -> AnsibleError:
    """The one translation from runtime errors to Ansible's UNREACHABLE/FAILED (both paths)."""
    if isinstance(err, (RemoteFileNotFound, LocalFileNotFound)):
        return AnsibleFileNotFound(str(err))
    if isinstance(err, (Unreachable, ConfigError)):
        return AnsibleConnectionFailure(str(err))
    return AnsibleError(str(err))


class Connection(ConnectionBase):
    # Ansible derives the plugin type from the class name, so it must be "Connection".
    """Run commands in a systemd-nspawn machine or directory tree, via SSH or locally."""

    transport = "nspawn"
    has_pipelining = True

    def __init__(self, play_context: t.Any, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(play_context, *args, **kwargs)
        self._option_sources: tuple[t.Any, t.Any, t.Any] = (None, None, None)
        self._target: NspawnTarget | None = None
        self._host: HostShell | None = None
        self._leader: enter.Leader | None = None
        # Set when the container went away during this task: the task's later commands
        # (Ansible's temp-dir cleanup) fail with the same message instead of a confusing one.
        self._restarted: NspawnError | None = None
        # This task's nonce for the container's "not booted" answer, and whether the
        # lookup skips the host's readiness cache (after such an answer).
        self._rnonce = secrets.token_hex(8)
        self._fresh = False
        # Whether this task's commands go through the helper's installer (the host had no
        # installed copy of this version of it: enter.via_installed_helper).
        self._install_helper = False

    # -- options: ours are declared in the shim's DOCUMENTATION; the SSH hop
    # -- resolves its own from the same variables, as a stock ssh host would.
    def set_options(self, task_keys: t.Any = None, var_options: t.Any = None,
                    direct: t.Any = None) -> None:
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self._option_sources = (task_keys, var_options, direct)

    def set_become_plugin(self, plugin: t.Any) -> None:
        super().set_become_plugin(plugin)
        if self._host is not None:
            self._hop.set_become_plugin(plugin)

    @property
    def _hop(self) -> t.Any:
        host = self._host
        return host.ssh if isinstance(host, SshHost) else host.local  # type: ignore[union-attr]

    def _connect(self) -> Connection:
        if self._connected:
            return self
        try:
            self._target = target_from_options(self.get_option)
        except NspawnError as err:
            raise to_ansible_error(err) from None
        hop_name = "ansible.builtin.local" if self._target.local else SSH_HOP
        hop = connection_loader.get(hop_name, self._play_context, "/dev/null", shell=self._shell)
        task_keys, var_options, direct = self._option_sources
        hop.set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        if self.become is not None:
            hop.set_become_plugin(self.become)
        self._host = LocalHost(hop) if self._target.local else SshHost(hop)
        display.vvv(f"ESTABLISH NSPAWN CONNECTION TO {self._target.where}",
                    host=self._target.container or self._target.host)
        self._connected = True
        return self

    @property
    def target(self) -> NspawnTarget:
        assert self._target is not None
        return self._target

    def _display_host(self) -> str:
        return self.target.container or self.target.directory or self.target.host

    def _check(self, rc: int, stdout: bytes, stderr: bytes) -> None:
        found = enter.parse_helper_error(rc, stdout, stderr)
        if found is not None:
            err = helper_error(self.target, *found)
            if isinstance(err, ContainerRestarted):
                self._restarted = err
            raise to_ansible_error(err)

    def _inside(self, argv: list[str]) -> str:
        """The host command line that runs `argv` in the container (or tree) for this task.

        The task's first command carries the leader lookup (one SSH round trip, not two):
        the helper's `run` verb finds and checks the leader and says which on stderr; the
        task's later commands name that leader (`cmd`), which the helper re-verifies.
        """
        if self.target.is_directory:
            words = enter.inside_argv(self.target, None, argv)
        elif self._restarted is not None:
            raise to_ansible_error(self._restarted)
        elif self._leader is None:
            words = enter.run_argv(self.target, self._fresh, self._rnonce, argv)
        else:
            words = enter.cmd_argv(self.target, self._leader, self._rnonce, argv)
        return shlex.join(enter.via_installed_helper(words, install=self._install_helper))

    def _settle(self, rc: int, out: bytes, err: bytes) -> tuple[bytes, bytes, bool]:
        """After a helper call: (stdout, stderr) without our records, and whether to run it again.

        Raises the helper's own errors. A first command whose container said it is booting or
        shutting down did not run: it is run again once, with the full readiness wait. A host
        without the installed helper ran nothing either: the command goes again, through the
        installer.
        """
        found = enter.parse_helper_error(rc, out, err)
        if found is not None and found[0] == enter.NO_HELPER and not self._install_helper:
            display.vvv(f"NSPAWN: installing the helper on {self.target.host}", host=self._display_host())
            self._install_helper = True
            return out, err, True
        self._check(rc, out, err)
        if self.target.is_directory:
            self._check_tree(rc, out + err)  # with a tty (ssh -tt) both streams are merged
            return enter.strip_tree_marker(out), enter.strip_tree_marker(err), False
        first = self._leader is None
        if first:
            try:
                leader, err = enter.split_leader(err)
                if leader is None:  # a tty merged stderr into stdout
                    leader, out = enter.split_leader(out)
            except ValueError as e:
                raise to_ansible_error(helper_error(self.target, "lookup-failed", str(e))) from None
            if leader is None:
                said = _said(err or out).strip()[-errors.DETAIL_CHARS:]
                raise to_ansible_error(helper_error(self.target, "lookup-failed", f"rc={rc}: {said}"))
            self._leader = leader
            display.vvv(f"NSPAWN: leader of {self.target.where} is PID {leader.pid}",
                        host=self._display_host())
        if enter.not_ready(out + err, self._rnonce):
            if first and not self._fresh:
                display.vvv(f"NSPAWN: {self.target.where} is booting or shutting down: waiting",
                            host=self._display_host())
                self._leader, self._fresh = None, True
                return out, err, True
            self._restarted = helper_error(self.target, "leader-changed", errors.SHUTTING_DOWN)
            raise to_ansible_error(self._restarted)
        return out, err, False

    def _run_on_host(self, command: str, in_data: bytes | None = None,
                     sudoable: bool = True) -> tuple[int, bytes, bytes]:
        assert self._host is not None
        try:
            return self._host.run(command, in_data=in_data, sudoable=sudoable)
        except AnsibleConnectionFailure as e:
            # SSH's own message, said of the container the user asked for.
            raise to_ansible_error(errors.host_unreachable(self.target.where, e.message)) from e

    def exec_command(self, cmd: str, in_data: bytes | None = None,
                     sudoable: bool = True) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv(f"EXEC ({self.target.where}) {cmd}", host=self._display_host())
        # In a machine, as sshd would run it: by root's login shell there ("-c", helper.sh).
        argv = ["/bin/sh", "-c", cmd] if self.target.is_directory else ["-c", cmd]
        while True:
            command = self._inside(argv)
            rc, out, err = self._run_on_host(command, in_data=in_data, sudoable=sudoable)
            out, err, again = self._settle(rc, out, err)
            if not again:
                return rc, out, err

    def _check_tree(self, rc: int, stderr: bytes) -> None:
        """systemd-nspawn's own failure (tree busy, not supported) makes the tree UNREACHABLE."""
        reason = enter.tree_failure(rc, stderr)
        if reason is not None:
            raise to_ansible_error(errors.tree_refused(self.target, reason))

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path} IN {self.target.where}",
                    host=self._display_host())
        b_in = to_bytes(in_path, errors="surrogate_or_strict")
        if not os.path.exists(b_in):
            raise to_ansible_error(errors.local_missing(in_path))
        assert self._host is not None
        with open(b_in, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            while True:
                source.seek(0)
                command = self._inside(enter.put_argv(out_path, size))
                rc, err = self._host.stream(command, source, None)
                _, err, again = self._settle(rc, b"", err)
                if not again:
                    break
        if rc != 0:
            raise to_ansible_error(errors.put_failed(self.target, out_path, _said(err), rc))

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} FROM {self.target.where} TO {out_path}",
                    host=self._display_host())
        b_out = to_bytes(out_path, errors="surrogate_or_strict")
        # Written next to the destination and renamed: no partial file on failure.
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(b_out) or b".", prefix=b".nspawn-fast-")
        try:
            with os.fdopen(fd, "wb") as sink:
                assert self._host is not None
                while True:
                    sink.seek(0)
                    sink.truncate()
                    command = self._inside(enter.fetch_argv(in_path))
                    rc, err = self._host.stream(command, None, sink)
                    _, err, again = self._settle(rc, b"", err)
                    if not again:
                        break
            if rc != 0:
                if rc == enter.FETCH_MISSING_RC:
                    raise to_ansible_error(errors.remote_missing(self.target, in_path))
                raise to_ansible_error(errors.fetch_failed(self.target, in_path, out_path, _said(err), rc))
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, b_out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def reset(self) -> None:
        if self._host is not None and hasattr(self._hop, "reset"):
            self._hop.reset()
        self.close()

    def close(self) -> None:
        if self._host is not None:
            self._hop.close()
        self._leader = None
        self._restarted = None
        self._fresh = False
        self._connected = False


def _said(stderr: bytes) -> str:
    """A host command's stderr as the detail of a message."""
    return to_text(stderr, errors="surrogate_or_replace")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
