"""The runtime's own errors, each naming the host, the container and the next step.

Both Ansible paths (the connection plugin, connection.py, and nspawn_linear's connection,
transport/connection.py and transport/bulk.py) build every message of their own here and
raise it through one translator, connection.to_ansible_error: an `Unreachable` or a
`ConfigError` becomes AnsibleConnectionFailure (the host is UNREACHABLE), a missing file
AnsibleFileNotFound, any other `NspawnError` AnsibleError (the task FAILED). The same cause
says the same words on both paths.

The host helper reports its own failures as a code (helper.sh: `die CODE MESSAGE`; the host
interpreter's lookup adds two of its own). HELPER_FAILURES is the one table of what each code
means: its error type and its cause, said once. Only the next step differs between the
interfaces: the connection names an inventory variable (ansible_nspawn_boot_timeout), the
operator tools a flag (--boot-timeout); each passes its words as `NextSteps`.
"""
from __future__ import annotations

import dataclasses
import typing as t

if t.TYPE_CHECKING:
    from .target import NspawnTarget


class NspawnError(Exception):
    """Base class: message names what failed, where, and what to do next."""


class ConfigError(NspawnError):
    """The inventory or options are invalid; nothing was run."""


class Unreachable(NspawnError):
    """The container cannot be entered: unknown, stopped, host tools missing, SSH down."""


class ContainerRestarted(NspawnError):
    """The container's leader changed while a task was using it."""


class TransferError(NspawnError):
    """A put_file/fetch_file did not complete; nothing partial was left behind."""


class RemoteFileNotFound(TransferError):
    """The file to fetch does not exist in the container."""


class LocalFileNotFound(TransferError):
    """The file to put does not exist on the controller."""


class InterpreterLost(NspawnError):
    """nspawn_linear: the container's interpreter exited during a task (the container did not)."""


class NoInterpreter(NspawnError):
    """nspawn_linear: the container has no Python; only raw tasks can run there."""


@dataclasses.dataclass(frozen=True)
class NextSteps:
    """An interface's words for what the user does next (str.format fields of the table)."""

    work: str          # what was running in the container: "task", "command"
    again: str         # after a restart
    fix_name: str      # when the machine name is wrong
    boot_timeout: str  # the setting of the boot wait
    directory: str     # the setting that names a tree
    helper: str        # when the helper on the host did not understand its arguments
    stop_timeout: str  # the setting of the stop wait


@dataclasses.dataclass(frozen=True)
class HelperFailure:
    """What one helper error code means: its error type, its cause, the next step.

    `cause` may use {where} (the container and its host), {name} (the machine name),
    {message} (the helper's own words) and `next_step` the fields of NextSteps too.
    """

    kind: type[NspawnError]
    cause: str
    next_step: str = ""


HELPER_FAILURES: dict[str, HelperFailure] = {
    "not-running": HelperFailure(
        Unreachable, "{where} is not running or not known to machined: {message}",
        "start it on its host (machinectl start {name}) or {fix_name}"),
    "not-ready": HelperFailure(
        Unreachable, "{where} is running but not booted: {message}",
        "wait, raise {boot_timeout} (0 enters it as it is) or look at `systemctl --failed` in it"),
    "leader-changed": HelperFailure(
        ContainerRestarted, "{where} stopped or restarted while this {work} was running ({message})",
        "{again}"),
    "refused": HelperFailure(
        Unreachable, "refusing to enter {where}: {message}",
        "check `machinectl status {name}` on its host"),
    "cgroup": HelperFailure(
        Unreachable, "refusing to enter {where}: {message}",
        "check `machinectl status {name}` on its host"),
    # The helper's message names the tool and what to install.
    "missing-tool": HelperFailure(Unreachable, "cannot enter {where}: {message}"),
    "no-directory": HelperFailure(
        Unreachable, "{where} cannot be used: {message}",
        "point {directory} at the root of an OS tree"),
    "usage": HelperFailure(
        Unreachable, "the host helper did not accept its arguments for {where}: {message}", "{helper}"),
    "stop-timeout": HelperFailure(
        Unreachable, "{where} did not stop in time: {message}",
        "wait longer ({stop_timeout}), or end it (machinectl terminate {name})"),
    "stop-failed": HelperFailure(Unreachable, "cannot stop {where}: {message}"),
    # The host interpreter's lookup (transport/hostside.py) and the plugin's first command: no
    # leader record of this run came back; the host's own words follow.
    "lookup-failed": HelperFailure(Unreachable, "cannot look up the leader of {where}: {message}"),
}

# A code this version does not know (a host helper of another version): its words as they are.
UNKNOWN_FAILURE = HelperFailure(Unreachable, "cannot enter {where}: {code} {message}", "{helper}")


def helper_failure(code: str, message: str, *, where: str, name: str | None,
                   steps: NextSteps) -> NspawnError:
    """The typed error for the helper's `code`, its cause and the next step in `steps`' words.

    Only the table's templates are parsed: `message` (the host's words) is inserted as is.
    """
    failure = HELPER_FAILURES.get(code, UNKNOWN_FAILURE)
    fields = {**dataclasses.asdict(steps), "where": where, "name": name or "", "code": code,
              "message": message}
    text = failure.cause.format(**fields)
    step = failure.next_step.format(**fields)
    if step:
        text = f"{text}. {step[0].upper()}{step[1:]}"
    return failure.kind(text)


# -- causes of the two Ansible paths that are not the helper's codes ------------------------
# A host's own words (ssh's, systemd-nspawn's) are cut to their end: the cause is said last.
DETAIL_CHARS = 2000
# The helper's leader-changed message when the container said it is going down between two
# commands of a task (its "not booted" answer after the task's first command had run).
SHUTTING_DOWN = "it is shutting down"


def host_unreachable(where: str, detail: str) -> Unreachable:
    """SSH (or the multiplexer's connection) could not reach the host of `where`."""
    return Unreachable(f"cannot reach {where}: {detail}")


def host_lost(target: NspawnTarget, detail: str) -> Unreachable:
    """nspawn_linear: the host's connection went away while a task ran in one of its containers."""
    return Unreachable(f"lost the connection to {target.place} while running a task in {target.inside}: {detail}")


def interpreter_exited(target: NspawnTarget | None, detail: str) -> InterpreterLost:
    """nspawn_linear: only the container's interpreter exited (its leader is the same)."""
    if target is None:
        return InterpreterLost(f"the interpreter went away while this task was running: {detail}")
    kept = "" if target.is_directory else ", the container did not restart"
    return InterpreterLost(f"the interpreter in {target.where} exited while this task was running{kept} "
                           f"({detail}). The task failed; the next task starts a new interpreter")


def no_interpreter(where: str, python: str) -> NoInterpreter:
    return NoInterpreter(f"{where} has no Python interpreter ({python}): only raw tasks can run there; install "
                         "python3 in it (for example with a raw task) or set ansible_python_interpreter")


def tree_refused(target: NspawnTarget, reason: str) -> Unreachable:
    """systemd-nspawn refused to run the tree (busy, not supported): its own words."""
    return Unreachable(f"systemd-nspawn cannot run {target.where}: {reason[-DETAIL_CHARS:]}")


def local_missing(in_path: str) -> LocalFileNotFound:
    """ansible-core's own words for it (its ssh plugin and ansible_mitogen say the same)."""
    return LocalFileNotFound(f"file or module does not exist: {in_path}")


def remote_missing(target: NspawnTarget, in_path: str) -> RemoteFileNotFound:
    return RemoteFileNotFound(f"{in_path} does not exist in {target.where}")


def put_failed(target: NspawnTarget, out_path: str, detail: str, rc: int | None = None) -> NspawnError:
    """An upload into the container did not complete; the script inside kept the old file."""
    return _transfer_failed(target, f"failed to put {out_path} in {target.where}", detail, rc,
                            "the old file, if any, is unchanged; check the space and permissions there "
                            "and run the task again")


def fetch_failed(target: NspawnTarget, in_path: str, out_path: str, detail: str,
                 rc: int | None = None) -> NspawnError:
    """A download did not complete; the local file was written aside and never renamed."""
    return _transfer_failed(target, f"failed to fetch {in_path} from {target.where}", detail, rc,
                            f"nothing was written to {out_path}; run the task again")


def transfer_stopped(why: str) -> TransferError:
    """The controller stopped a transfer at one of its bounds (put_failed/fetch_failed say which file)."""
    return TransferError(f"{why}: transfer stopped")


def _transfer_failed(target: NspawnTarget, what: str, detail: str, rc: int | None, next_step: str) -> NspawnError:
    """`rc`: the host command's status (255 from ssh: the host, not the transfer, failed);
    None when the controller stopped the transfer (deadline, size)."""
    detail = detail.strip()[-DETAIL_CHARS:]
    if rc == 255 and not target.local:
        return Unreachable(f"{what}: SSH to host {target.host} failed: {detail} ({next_step})")
    status = "" if rc is None else f" (rc={rc})"
    return TransferError(f"{what}{status}: {detail} ({next_step})")
