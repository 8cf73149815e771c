"""The runtime's own errors, each naming the host, the container and the next step.

The Ansible adapter translates them in one place (connection.py): an
`Unreachable` becomes AnsibleConnectionFailure (the host is UNREACHABLE), any
other `NspawnError` becomes AnsibleError (the task FAILED).

The host helper reports its own failures as a code (helper.sh: `die CODE MESSAGE`; the host
interpreter's lookup adds two of its own). HELPER_FAILURES is the one table of what each code
means: its error type and its cause, said once. Only the next step differs between the
interfaces: the connection names an inventory variable (ansible_nspawn_boot_timeout), the
operator tools a flag (--boot-timeout); each passes its words as `NextSteps`.
"""
from __future__ import annotations

import dataclasses


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
