"""Read `ansible_nspawn_args` the way systemd-nspawn reads its command line, then apply a policy.

Directory mode runs `systemd-nspawn <connection's options> <ansible_nspawn_args> -- <command>`.
A text blocklist is not enough to keep those extra arguments from undoing the connection's own
options: systemd-nspawn parses with getopt_long ("+..." option string; the parser newer
systemd has instead keeps the same rules), so `-D/x`, `-qD/x`, `-D` followed by the value as the next
word and any unambiguous abbreviation (`--direc=/x`) all mean --directory, and a later option
wins over an earlier one. So we walk the words exactly like getopt_long, name each option by its
canonical name, and refuse by that name:

- `--name=value`; `--name value` only when the option requires an argument; an optional
  argument only with `=`;
- a long name may be abbreviated to any prefix that names one option (an exact name wins over
  longer names it is a prefix of); a prefix of several options is an error;
- short options bundle (`-qD/x`); one that takes an argument takes the rest of the word or,
  when nothing is left, the next word, whatever it looks like;
- parsing stops at `--` or at the first word that is not an option (`-` alone is not one):
  the rest would be the command, which the connection supplies itself.

The tables are the union of systemd 252's and current systemd's options, so an abbreviation
counts as unambiguous only if it is unambiguous in every version from 252 on.
"""
from __future__ import annotations

import dataclasses
import enum
import posixpath
from collections.abc import Callable, Sequence

from .errors import ConfigError


class Arg(enum.Enum):
    """How an option takes its argument (getopt_long's has_arg)."""

    NONE = "no_argument"
    REQUIRED = "required_argument"
    OPTIONAL = "optional_argument"


_N, _R, _O = Arg.NONE, Arg.REQUIRED, Arg.OPTIONAL

# systemd 252's long options, in the order of its getopt_long table.
LONG_OPTIONS_252: dict[str, Arg] = {
    "help": _N, "version": _N, "directory": _R, "template": _R, "ephemeral": _N,
    "user": _R, "private-network": _N, "as-pid2": _N, "boot": _N, "uuid": _R, "read-only": _N,
    "capability": _R, "ambient-capability": _R, "drop-capability": _R, "no-new-privileges": _R,
    "link-journal": _R, "bind": _R, "bind-ro": _R, "tmpfs": _R, "overlay": _R, "overlay-ro": _R,
    "inaccessible": _R, "machine": _R, "hostname": _R, "slice": _R, "setenv": _R,
    "selinux-context": _R, "selinux-apifs-context": _R, "quiet": _N, "share-system": _N,
    "register": _R, "keep-unit": _N, "network-interface": _R, "network-macvlan": _R,
    "network-ipvlan": _R, "network-veth": _N, "network-veth-extra": _R, "network-bridge": _R,
    "network-zone": _R, "network-namespace-path": _R, "personality": _R, "image": _R,
    "volatile": _O, "port": _R, "property": _R, "private-users": _O, "private-users-chown": _O,
    "private-users-ownership": _R, "kill-signal": _R, "settings": _R, "chdir": _R,
    "pivot-root": _R, "notify-ready": _R, "root-hash": _R, "root-hash-sig": _R, "verity-data": _R,
    "system-call-filter": _R, "rlimit": _R, "oom-score-adjust": _R, "cpu-affinity": _R,
    "resolv-conf": _R, "timezone": _R, "console": _R, "pipe": _N, "oci-bundle": _R,
    "no-pager": _N, "set-credential": _R, "load-credential": _R, "bind-user": _R,
    "suppress-sync": _R,
}

# Long options current systemd added after 252 (it still has all of 252's). It also made
# --user's argument optional (taking a next word not starting with '-'), with --uid for the old
# meaning; both are refused, so keeping 252's "required" cannot hide a later word from the policy.
LONG_OPTIONS_ADDED: dict[str, Arg] = {
    "cleanup": _N, "no-ask-password": _N, "image-policy": _R, "mstack": _R, "uid": _R,
    "private-users-delegate": _R, "forward-journal": _R, "forward-journal-max-use": _R,
    "forward-journal-keep-free": _R, "forward-journal-max-file-size": _R,
    "forward-journal-max-files": _R, "bind-user-shell": _R, "bind-user-group": _R,
    "background": _R, "system": _N,
}

LONG_OPTIONS: dict[str, Arg] = {**LONG_OPTIONS_252, **LONG_OPTIONS_ADDED}

# getopt_long's option string, unchanged from 252 to now: '+' = stop at the first non-option.
SHORT_OPTSTRING = "+hD:u:abL:M:jS:Z:qi:xp:nUE:P"

# Short option -> canonical name; -U and -j have no long form and are their own name.
SHORT_OPTIONS: dict[str, str] = {
    "h": "--help", "D": "--directory", "u": "--user", "a": "--as-pid2", "b": "--boot",
    "L": "--selinux-apifs-context", "M": "--machine", "j": "-j", "S": "--slice",
    "Z": "--selinux-context", "q": "--quiet", "i": "--image", "x": "--ephemeral", "p": "--port",
    "n": "--network-veth", "U": "-U", "E": "--setenv", "P": "--pipe",
}


def _short_takes_arg(char: str) -> bool:
    return SHORT_OPTSTRING[SHORT_OPTSTRING.index(char) + 1:].startswith(":")


@dataclasses.dataclass(frozen=True)
class OptionUse:
    """One option as systemd-nspawn would read it."""

    word: str  # the word that names it, as written (a whole bundle like '-qD/x')
    option: str  # canonical name: '--directory', or '-U'/'-j'
    value: str | None  # its argument; None when it has none (or it is missing)


class NspawnArgsError(ValueError):
    """systemd-nspawn would reject these arguments before running anything."""


OnOption = Callable[[OptionUse], None]


def _resolve_long(word: str, name: str) -> str:
    if name in LONG_OPTIONS:
        return name
    matches = sorted(n for n in LONG_OPTIONS if name and n.startswith(name))
    if not matches:
        raise NspawnArgsError(f"{word!r} is not an option of systemd-nspawn (252 or later)")
    if len(matches) > 1:
        names = ", ".join(f"--{m}" for m in matches)
        raise NspawnArgsError(f"{word!r} is ambiguous: it abbreviates {names}; write the option out in full")
    return matches[0]


def _take(use: OptionUse, on_option: OnOption | None, uses: list[OptionUse]) -> None:
    # The policy sees each option before any argument error, as soon as nspawn would act on it.
    if on_option is not None:
        on_option(use)
    uses.append(use)


def parse_nspawn_args(args: Sequence[str], on_option: OnOption | None = None) -> tuple[list[OptionUse], list[str]]:
    """Walk `args` like systemd-nspawn's getopt_long.

    Returns the options in order and the operands: the words from where option parsing stopped
    on ('--' included). `on_option` is called for each option before its argument is checked.
    Raises NspawnArgsError where nspawn would report an error.
    """
    uses: list[OptionUse] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--" or word == "-" or not word.startswith("-"):
            return uses, list(args[i:])
        if word.startswith("--"):
            name, eq, inline = word[2:].partition("=")
            long_name = _resolve_long(word, name)
            kind = LONG_OPTIONS[long_name]
            take_next = kind is Arg.REQUIRED and not eq
            value = inline if eq else (args[i + 1] if take_next and i + 1 < len(args) else None)
            _take(OptionUse(word, f"--{long_name}", value), on_option, uses)
            if eq and kind is Arg.NONE:
                raise NspawnArgsError(f"{word!r} gives --{long_name} a value, but it takes none")
            if take_next and value is None:
                raise NspawnArgsError(f"{word!r} (--{long_name}) needs a value, and no word follows it")
            i += 2 if take_next else 1
            continue
        i += 1
        for pos in range(1, len(word)):
            char = word[pos]
            if char not in SHORT_OPTIONS:
                raise NspawnArgsError(f"{word!r}: -{char} is not an option of systemd-nspawn")
            if not _short_takes_arg(char):
                _take(OptionUse(word, SHORT_OPTIONS[char], None), on_option, uses)
                continue
            rest = word[pos + 1:]
            value = rest or (args[i] if i < len(args) else None)
            _take(OptionUse(word, SHORT_OPTIONS[char], value), on_option, uses)
            if value is None:
                raise NspawnArgsError(f"{word!r}: -{char} ({SHORT_OPTIONS[char]}) needs a value, "
                                      "and no word follows it")
            if not rest:
                i += 1
            break
    return uses, []


_TREE = ("the connection passes --directory=<ansible_nspawn_directory> itself; set "
         "ansible_nspawn_directory to the tree instead")
_IMAGE = ("it makes systemd-nspawn run a disk image or another root instead of the tree in "
          "ansible_nspawn_directory; point ansible_nspawn_directory at the tree instead")
_REGISTRATION = ("the connection runs each command in an unregistered one-shot container "
                 "(--register=no --keep-unit); registering it or moving it to another scope "
                 "would make every command a machine on the host: drop it")
_IDENTITY = ("it changes the machine's identity, which comes from the tree; use --hostname= "
             "to change the host name commands see")
_EXITS = ("systemd-nspawn would print or clean up and exit successfully without running the "
          "command, so every task would seem to succeed: drop it")
_START = ("the connection runs each command as PID 2 under a stub init (--as-pid2), which is "
          "how its exit status and signals reach the connection: drop it")
_CONSOLE = ("the connection passes --pipe so that the command's stdin, stdout and stderr are "
            "its own pipes; another console mode breaks file transfer and output: drop it")
_CHOWN = ("it can chown every file of the tree on disk into a user namespace range; shift the "
          "tree once outside Ansible and pass --private-users=UIDBASE (or =yes)")
_USER = ("commands would run as another user than root, which breaks become and the ownership "
         "of transferred files; use become/become_user instead")

# Refused by canonical name. The rule: refuse what the connection sets itself or what would
# change how it talks to the command, which tree or image is used, the tree on disk, or the
# machine's identity or registration; allow the rest (mounts, environment, networking,
# capabilities, resources, --read-only, --hostname, --chdir, --resolv-conf, ...).
REFUSED: dict[str, str] = {
    # Which tree: the connection's --directory must stay the only root.
    "--directory": _TREE,
    "--image": _IMAGE,
    "--oci-bundle": "an OCI bundle names its own root and command; " + _IMAGE,
    "--mstack": _IMAGE,
    "--image-policy": "it only applies to disk images (--image); " + _IMAGE,
    "--root-hash": "it only applies to disk images (--image); " + _IMAGE,
    "--root-hash-sig": "it only applies to disk images (--image); " + _IMAGE,
    "--verity-data": "it only applies to disk images (--image); " + _IMAGE,
    "--pivot-root": "it makes a directory inside the tree the root; " + _IMAGE,
    "--template": ("it fills the tree from a template directory on disk when it is missing; "
                   "prepare the tree before the play and set ansible_nspawn_directory to it"),
    # The tree's changes must persist: these run commands on a throw-away copy or layer.
    "--ephemeral": "commands would run in a throw-away snapshot of the tree, so no change a task makes would stay",
    "--volatile": "the tree would be mounted under a throw-away tmpfs or overlay, so changes tasks make would be lost",
    "--overlay": ("an overlay can replace the root or hide parts of the tree, and sends writes to "
                  "another directory; use --bind= or --bind-ro= to add host directories"),
    "--overlay-ro": ("an overlay can replace the root or hide parts of the tree; use --bind-ro= "
                     "to add host directories"),
    # The tree on disk: these write to it (or to the host) beyond what the tasks do.
    "--private-users-ownership": _CHOWN,
    "--private-users-chown": _CHOWN,
    "-U": "it means --private-users=pick, which implies --private-users-ownership=auto: " + _CHOWN,
    "--link-journal": ("it creates journal directories and links in the tree and under "
                       "/var/log/journal on the host for the tree's machine ID: drop it"),
    "-j": ("it means --link-journal=try-guest, which creates journal directories and links in the "
           "tree and on the host: drop it"),
    # Identity and registration.
    "--machine": _IDENTITY,
    "--uuid": _IDENTITY,
    "--register": _REGISTRATION,
    "--keep-unit": _REGISTRATION,
    "--system": _REGISTRATION,
    "--settings": ("a .nspawn settings file can override the start mode, command, tree and mounts "
                   "the connection chose; pass the options you need here instead"),
    # How the connection runs and talks to the command.
    "--as-pid2": _START,
    "--boot": _START,
    "--share-system": ("it shares the host's PID, IPC and UTS namespaces, which systemd-nspawn "
                       "refuses together with --as-pid2 (the connection's mode): drop it"),
    "--pipe": _CONSOLE,
    "--console": _CONSOLE,
    "--kill-signal": ("it changes the signal that stops the command when the connection ends it "
                      "(timeouts, cancelled runs): drop it"),
    "--user": _USER,
    "--uid": _USER,
    "--help": _EXITS,
    "--version": _EXITS,
    "--cleanup": _EXITS,
}

# Several options print a list for the value 'help' and exit successfully; refusing that value
# for every option also covers versions whose handlers we have not read.
_HELP = "the value 'help' makes systemd-nspawn print a list and exit successfully without running the command"
_CAPABILITY_LISTS = frozenset({"--capability", "--drop-capability", "--ambient-capability"})
_ROOT_MOUNT = ("it mounts over the container's root directory, so commands would not run in the tree; "
               "mount somewhere below /")
_OWNERSHIP_VALUES = frozenset({"pick", "managed"})  # both imply --private-users-ownership=auto


def _split_mount_spec(value: str) -> list[str]:
    """Split at ':' as nspawn does for mount options: a backslash takes the next character as is."""
    fields: list[str] = []
    field, escaped = "", False
    for char in value:
        if escaped:
            field, escaped = field + char, False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append(field)
            field = ""
        else:
            field += char
    fields.append(field)
    return fields


def _mount_destination(option: str, value: str) -> str | None:
    if option == "--inaccessible":
        return value
    fields = _split_mount_spec(value)
    if option == "--tmpfs":
        return fields[0]
    if option in ("--bind", "--bind-ro"):
        # SOURCE[:DEST[:OPTIONS]]; without DEST the source path is the destination too.
        return fields[1] if len(fields) > 1 else fields[0].removeprefix("+")
    return None


def _is_root(path: str) -> bool:
    # '..' is resolved textually, which errs towards refusing.
    return path.startswith("/") and posixpath.normpath("/" + path.lstrip("/")) == "/"


def refusal_reason(use: OptionUse) -> str | None:
    """Why the policy refuses this option, or None when it is allowed."""
    if use.option in REFUSED:
        return REFUSED[use.option]
    if use.value is None:
        return None
    if use.option == "--private-users" and use.value in _OWNERSHIP_VALUES:
        return f"--private-users={use.value} implies --private-users-ownership=auto: {_CHOWN}"
    items = use.value.replace("\\", "").split(",") if use.option in _CAPABILITY_LISTS else [use.value]
    if "help" in items:
        return _HELP
    destination = _mount_destination(use.option, use.value)
    if destination is not None and _is_root(destination):
        return _ROOT_MOUNT
    return None


def _check_option(use: OptionUse) -> None:
    reason = refusal_reason(use)
    if reason is not None:
        raise ConfigError(f"{use.word!r} means {use.option}: {reason}")


def check_nspawn_args(args: Sequence[str]) -> None:
    """Raise ConfigError unless every word is an allowed systemd-nspawn option or its value."""
    try:
        _, operands = parse_nspawn_args(args, _check_option)
    except NspawnArgsError as err:
        raise ConfigError(str(err)) from None
    if operands and operands[0] == "--":
        raise ConfigError("'--' ends systemd-nspawn's options and what follows would be the command, "
                          "which the connection supplies itself: drop it")
    if operands:
        raise ConfigError(f"{operands[0]!r} is not an option: systemd-nspawn stops reading options there "
                          "and would run it as the command, which the connection supplies itself")
