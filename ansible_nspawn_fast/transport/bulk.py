"""Large files under nspawn_linear: their own SSH session, not mitogen's message loop.

ansible_mitogen sends a file through FileService: 128 KiB messages from the multiplexer,
over the host's one SSH connection (compressed: mitogen's default), routed by the host's
interpreter to the container's. For a large file that costs several times the copy itself:
ssh's zlib on already-dense data and every chunk through two Python routers. A file of at
least `BULK_MIN_BYTES` goes instead through a session of its own to the host (ansible-core's
`ssh` plugin, from the same variables, without compression, on a ControlPersist master of
its own), into the container by the helper's `cmd` verb at the task's leader (re-verified
by the helper), where the plugin path's scripts run: an upload is written to a temp file
beside the destination and renamed only when every announced byte came; a download is
written to a temp file beside the local destination and renamed only when it has the size
the container announced before it started.

Bounds (container root is hostile): a download may not exceed its announced size; every
transfer has a deadline (`transfer_timeout`), after which its ssh is killed; only the tail
of stderr is kept. Nothing of what the container sends picks a path on the host or the
controller.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import selectors
import shlex
import subprocess
import tempfile
import time
import typing as t

from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.loader import connection_loader

from .. import enter, errors
from ..connection import helper_error, to_ansible_error
from ..errors import TransferError
from ..target import NspawnTarget

# Below this, a new ssh session (its master's handshake) costs more than the message loop saves.
BULK_MIN_BYTES = 8 << 20
# Deadline of one transfer: a base for the session and helper, plus the bytes at a slow rate.
TIMEOUT_BASE_S = 120.0
TIMEOUT_MIN_RATE = 1 << 20  # bytes per second
STDERR_TAIL = 64 << 10
READ_SIZE = 1 << 20


def transfer_timeout(size: int) -> float:
    """Seconds one transfer of `size` bytes may take before its ssh is killed."""
    return TIMEOUT_BASE_S + size / TIMEOUT_MIN_RATE


def uncompressed_ssh_args(ssh_args: str) -> str:
    """`ssh_args` without `-C` and with compression off (first value wins for -o).

    Ansible's default ssh_args start with -C: zlib on a file that is already dense
    (packages, archives, images) is slower than the network it would save.
    """
    kept = [a for a in shlex.split(ssh_args or "") if a != "-C"]
    return shlex.join(["-o", "Compression=no", *kept])


def control_path(host: str, port: t.Any, user: t.Any) -> str:
    """A ControlPath of the bulk sessions' own (ssh_plugin's `%(directory)s` form): never a
    master that the plugin path or a stock ssh host opened with compression on."""
    digest = hashlib.sha1(f"nspawn-bulk-{host}-{port}-{user}".encode()).hexdigest()[:10]
    return "%(directory)s/nfb-" + digest


class BulkUnavailable(Exception):
    """This transfer stays on the message loop (the reason is for -vvv)."""


class Channel:
    """The bulk sessions of one task to one container, at the leader the task found."""

    def __init__(self, target: NspawnTarget, leader: enter.Leader, argv_for: t.Callable[[str], list]):
        self.target = target
        self.leader = leader
        self._argv_for = argv_for  # host command line -> argv that runs it on the host
        self._rnonce = secrets.token_hex(8)

    # -- the two transfers -------------------------------------------------------------
    def put(self, in_path: str, out_path: str) -> None:
        with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as source:
            self.put_stream(source, os.fstat(source.fileno()).st_size, out_path)

    def put_stream(self, source: t.BinaryIO, size: int, out_path: str) -> None:
        """`size` bytes of `source` into `out_path` in the container; the old file stays
        unless all of them arrive (the script inside counts them before its rename)."""
        def failed(detail: str, rc: int | None = None) -> errors.NspawnError:
            return errors.put_failed(self.target, out_path, detail, rc)
        try:
            rc, err, _ = run_bounded(self._argv(enter.put_argv(out_path, size)), source, None, 0,
                                     transfer_timeout(size))
        except TransferError as e:
            raise to_ansible_error(failed(str(e))) from None
        self._settle(rc, err, failed)

    def fetch(self, in_path: str, out_path: str, size: int) -> None:
        """`in_path` of the container (announced as `size` bytes) into local `out_path`."""
        b_out = to_bytes(out_path, errors="surrogate_or_strict")
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(b_out) or b".", prefix=b".nspawn-fast-")

        def failed(detail: str, rc: int | None = None) -> errors.NspawnError:
            return errors.fetch_failed(self.target, in_path, out_path, detail, rc)
        try:
            with os.fdopen(fd, "wb") as sink:
                try:
                    rc, err, got = run_bounded(self._argv(enter.fetch_argv(in_path)), None, sink, size,
                                               transfer_timeout(size))
                except TransferError as e:
                    raise to_ansible_error(failed(str(e))) from None
            if rc == enter.FETCH_MISSING_RC and enter.parse_helper_error(rc, b"", err) is None:
                raise to_ansible_error(errors.remote_missing(self.target, in_path))
            self._settle(rc, err, failed)
            if got != size:
                raise to_ansible_error(failed(f"it changed while being read ({got} bytes, {size} announced)"))
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, b_out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # -- helpers -----------------------------------------------------------------------
    def _argv(self, inside: list[str]) -> list:
        return self._argv_for(shlex.join(enter.cmd_argv(self.target, self.leader, self._rnonce, inside)))

    def _settle(self, rc: int, err: bytes, failed: t.Callable[[str, int], errors.NspawnError]) -> None:
        """Raise the helper's error, the container's "going down" or the transfer's failure."""
        found = enter.parse_helper_error(rc, b"", err)
        if found is not None:
            raise to_ansible_error(helper_error(self.target, *found))
        if enter.not_ready(err, self._rnonce):
            raise to_ansible_error(helper_error(self.target, "leader-changed", errors.SHUTTING_DOWN))
        if rc != 0:
            raise to_ansible_error(failed(to_text(err, errors="surrogate_or_replace"), rc))


class TransferTooLarge(Exception):
    pass


def run_bounded(argv: list, stdin: t.BinaryIO | None, sink: t.BinaryIO | None, limit: int,
                timeout: float) -> tuple[int, bytes, int]:
    """Run `argv` with stdin fed from a file; stdout (at most `limit` bytes) into `sink`.

    Returns (rc, the tail of stderr, bytes of stdout). Past the deadline, or past the
    limit, the process is killed and TransferError raised (the caller says which file). stdin goes through a pipe this
    process feeds (not the file itself): if the controller dies mid-upload, ssh sees the end
    of its input, the container's side gets fewer bytes than announced, and the old file
    stays (given the file, ssh would finish the upload on its own after the controller died).
    """
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE if sink is not None else subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
            try:  # fewer, larger reads and writes (Linux; the default pipe holds 64 KiB)
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, READ_SIZE)
            except OSError:
                pass
    deadline = time.monotonic() + timeout
    err, got, pending = bytearray(), 0, memoryview(b"")
    try:
        with selectors.DefaultSelector() as sel:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    sel.register(pipe, selectors.EVENT_READ)
            if proc.stdin is not None:
                os.set_blocking(proc.stdin.fileno(), False)
                sel.register(proc.stdin, selectors.EVENT_WRITE)
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(argv, timeout)
                for key, _ in sel.select(left):
                    if key.fileobj is proc.stdin:
                        if not pending:
                            pending = memoryview(stdin.read(READ_SIZE))  # type: ignore[union-attr]
                        if not pending:  # the whole file is in: ssh sees the end of its input
                            sel.unregister(proc.stdin)
                            proc.stdin.close()
                            continue
                        try:
                            pending = pending[os.write(key.fd, pending):]
                        except BrokenPipeError:  # ssh ended early: its status and stderr tell why
                            sel.unregister(proc.stdin)
                            proc.stdin.close()
                        continue
                    data = os.read(key.fd, READ_SIZE)
                    if not data:
                        sel.unregister(key.fileobj)
                    elif key.fileobj is proc.stderr:
                        err += data
                        del err[:-STDERR_TAIL]
                    else:
                        got += len(data)
                        if got > limit:
                            raise TransferTooLarge()
                        sink.write(data)  # type: ignore[union-attr]
        proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise errors.transfer_stopped(f"the transfer did not finish within {timeout:.0f} s") from None
    except TransferTooLarge:
        _kill(proc)
        raise errors.transfer_stopped(f"the container sent more than the {limit} bytes it announced") from None
    except BaseException:
        _kill(proc)
        raise
    finally:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass
    return proc.returncode, bytes(err), got


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def host_argv_builder(connection: t.Any, target: NspawnTarget) -> t.Callable[[str], list]:
    """How a host command line runs for the bulk sessions of `connection`'s task.

    Raises BulkUnavailable where the message loop must stay: a password (ansible-core's
    ssh plugin would hold the whole file in memory to feed it with its own plumbing).
    """
    if target.local:
        return lambda command: ["/bin/sh", "-c", command]
    hop = connection_loader.get("ansible.builtin.ssh", connection._play_context, "/dev/null",
                                shell=connection._shell)
    task_keys, var_options, direct = connection._option_sources
    hop.set_options(task_keys=task_keys, var_options=var_options, direct=direct)
    if hop.get_option("password") or connection._play_context.password:
        raise BulkUnavailable("a password is set for SSH")
    hop.set_option("ssh_args", uncompressed_ssh_args(hop.get_option("ssh_args")))
    hop.host = hop.get_option("host")
    hop.set_option("control_path", control_path(hop.host, hop.get_option("port"),
                                                hop.get_option("remote_user")))

    def argv_for(command: str) -> list:
        return hop._build_command(hop.get_option("ssh_executable"), "ssh", hop.host, command)
    return argv_for


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
