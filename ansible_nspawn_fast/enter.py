"""Host command lines that find a container's leader and run things inside it.

Every command sent to the host is `sh -c HELPER nspawn-fast NONCE VERB ARGS...`, where
HELPER is helper.sh of this package: a small POSIX sh program that needs nothing on the host
but sh, coreutils, util-linux's nsenter and systemd-container. Its header says how it meets
the threat model (root in a container is hostile): leaders only from machined and /proc,
re-verified right before entering; no container file read and no container binary run
outside the container; every wait bounded. All values travel as separate, quoted
positional arguments, never spliced into a script; `helper_argv` is the one place that
builds a helper command line, for the connection plugin and for the strategy alike.

The helper's own failures are one line `NSPAWN-FAST-ERROR NONCE CODE MESSAGE` on stderr
with exit status 211 (not 255, which the ssh plugin takes for its own failure and censors
under no_log). NONCE is random per controller process and never enters a container, so a
command inside cannot fake one; parse_helper_error() turns it into (code, message).
"""
from __future__ import annotations

import functools
import hashlib
import re
import secrets
from typing import NamedTuple

from .target import NspawnTarget

HELPER_ERROR_RC = 211
HELPER_ERROR_MARK = b"NSPAWN-FAST-ERROR "
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Chosen once per controller process: its workers and the multiplexer are forks of it.
RUN_NONCE = secrets.token_hex(12)

# What a lookup may print: the helper validates both on the host, this re-checks them.
_UNIT_RE = re.compile(r"[A-Za-z0-9@_.:\\-]+\.(?:service|scope)")
_PATH_RE = re.compile(r"[A-Za-z0-9/_.:+-]+")
# Printed on stderr by a tree's payload as it starts: without it, a failure is systemd-nspawn's own.
TREE_STARTED = b"NSPAWN-FAST-TREE-STARTED"


@functools.cache
def host_helper() -> str:
    """helper.sh's text. Read on first use: the host interpreters import this module too."""
    from importlib.resources import files
    return (files(__package__) / "helper.sh").read_text(encoding="utf-8")


# Runs inside the container (or tree) with stdin = the file: write to a temp file next to
# the destination, and rename it into place only when exactly SIZE bytes arrived: a transfer
# cut short (ssh killed, connection lost) ends at EOF like a complete one, and must leave the
# old file as it was and no temp file. An existing destination keeps its mode and owner, a
# new one gets the default mode of the umask (as sftp would).
PUT_SCRIPT = r"""
set -e
dest=$1 size=$2
tmp=
trap '[ -z "$tmp" ] || rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM PIPE
dir=$(dirname -- "$dest")
mkdir -p -- "$dir"
tmp=$(mktemp -- "$dest.nspawn-fast.XXXXXX")
cat > "$tmp"
got=$(wc -c < "$tmp")
if [ "$got" -ne "$size" ]; then
  echo "nspawn-fast: received $got of $size bytes: $dest left unchanged" >&2
  exit 1
fi
if [ -e "$dest" ]; then
  chmod --reference="$dest" -- "$tmp"
  chown --reference="$dest" -- "$tmp" 2>/dev/null || true
else
  chmod "$(printf '%o' $(( 0666 & ~0$(umask) )))" -- "$tmp"
fi
mv -f -- "$tmp" "$dest"
tmp=
"""

# Runs inside: a missing source is told by its exit status, not by a (translated) message.
FETCH_MISSING_RC = 66
FETCH_SCRIPT = r"""
[ -e "$1" ] || [ -L "$1" ] || exit 66
exec cat -- "$1"
"""


class Leader(NamedTuple):
    """A running container's leader: PID and start time (one process for good), its unit.

    Found once per task by the lookup verb, from machined's record and /proc only; every
    command of the task passes it back and the helper re-verifies it before entering.
    `path` is the PATH of the container's init (used inside only).
    """

    pid: int
    start: int
    unit: str
    path: str

    def args(self) -> list[str]:
        return [str(self.pid), str(self.start), self.unit, self.path]


def helper_argv(target: NspawnTarget, verb: str, *args: str, nonce: str = RUN_NONCE) -> list[str]:
    """The one builder of a helper call: argv for the host (sudo -n when configured)."""
    if target.host_helper:
        argv = [target.host_helper, nonce, verb, *args]
    else:
        argv = ["sh", "-c", host_helper(), "nspawn-fast", nonce, verb, *args]
    if target.host_sudo:
        argv = ["sudo", "-n", "--", *argv]
    return argv


# The plugin's per-command form of an inline helper call: the host keeps helper.sh as a file
# named by its SHA-256 in root's own runtime directory, so each command sends this short
# script instead of the whole helper (and the host's shells parse 400 bytes, not 27 KB).
# The file is run only if it and its directory are root's own (test -O, the same rule as the
# readiness cache), a regular file, not a symlink: only root can create anything under /run,
# and the installer below gives it its name only after its hash matched. Anything else is
# this run's `no-helper` error, and the connection sends the same command once more through
# the installer.
HELPER_DIR = "/run/nspawn-fast"
NO_HELPER = "no-helper"
_TRUSTED = '[ -f "$f" ] && [ ! -L "$f" ] && [ -O "$f" ] && [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ]'
INSTALLED_HELPER = f"""d=$1 f=$1/helper-$2
shift 2
if {_TRUSTED}; then exec sh "$f" "$@"; fi
printf '\\nNSPAWN-FAST-ERROR %s {NO_HELPER} the helper is not installed on this host\\n' "$1" >&2
exit {HELPER_ERROR_RC}
"""
# Installs helper.sh (argument 3) as DIR/helper-SHA256 (a temp file in the root-only directory,
# renamed only when its SHA-256 matches), then runs it; the helper inline when it cannot.
INSTALL_HELPER = f"""d=$1 f=$1/helper-$2 h=$2 t=$3
shift 3
if ! {{ {_TRUSTED}; }}; then
  (umask 077 && mkdir -p "$d") 2>/dev/null
  if [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ]; then
    tmp=$d/.helper-$h.$$
    if (umask 077 && printf '%s' "$t" >"$tmp") 2>/dev/null; then
      s=$(sha256sum <"$tmp" 2>/dev/null) && [ "${{s%% *}}" = "$h" ] && mv -f "$tmp" "$f" 2>/dev/null
    fi
    rm -f "$tmp" 2>/dev/null
  fi
fi
if {_TRUSTED}; then exec sh "$f" "$@"; fi
exec sh -c "$t" nspawn-fast "$@"
"""


@functools.cache
def helper_digest() -> str:
    """SHA-256 of helper.sh: the name of its installed copy."""
    return hashlib.sha256(host_helper().encode("utf-8")).hexdigest()


def via_installed_helper(argv: list[str], install: bool = False) -> list[str]:
    """A helper call (helper_argv) through the host's installed copy of the helper.

    `install`: through the installer, which installs the copy first (the answer to a
    `no-helper` error). A call of a helper file named by the inventory is left as it is.
    """
    inline = ["sh", "-c", host_helper(), "nspawn-fast"]
    at = next((i for i in range(len(argv) - 3) if argv[i:i + 4] == inline), None)
    if at is None:
        return argv
    if install:
        script = ["sh", "-c", INSTALL_HELPER, "nspawn-fast", HELPER_DIR, helper_digest(), host_helper()]
    else:
        script = ["sh", "-c", INSTALLED_HELPER, "nspawn-fast", HELPER_DIR, helper_digest()]
    return argv[:at] + script + argv[at + 4:]


def lookup_argv(target: NspawnTarget, nonce: str = RUN_NONCE) -> list[str]:
    """Waits until the machine is booted; prints one leader record (parse_leader)."""
    return helper_argv(target, "lookup", str(target.container), str(target.boot_timeout), nonce=nonce)


def tree_args(target: NspawnTarget, *command: str) -> list[str]:
    """The tree verb's arguments: systemd-nspawn runs `command` in a not-running tree.

    The helper builds the systemd-nspawn command line itself (one short-lived, unregistered
    container per command, the command as PID 2) from the tree, the checked `nspawn_args`
    and the command; its payload first says on stderr that it started (tree_failure()).
    """
    return [str(target.directory), *target.nspawn_args, "--", *command]


def inside_argv(target: NspawnTarget, leader: Leader | None, argv: list[str]) -> list[str]:
    """The host argv that runs `argv` in the machine of `leader`, or in the tree."""
    if target.is_directory:
        return helper_argv(target, "tree", *tree_args(target, *argv))
    assert leader is not None, "machine mode needs the leader from the lookup"
    return helper_argv(target, "exec", *leader.args(), *argv)


def put_argv(dest: str, size: int) -> list[str]:
    """Inside: stdin into `dest`, which it replaces only if all `size` bytes came."""
    return ["/bin/sh", "-c", PUT_SCRIPT, "put", dest, str(size)]


def fetch_argv(src: str) -> list[str]:
    """Inside: `src` to stdout (exit FETCH_MISSING_RC when it does not exist)."""
    return ["/bin/sh", "-c", FETCH_SCRIPT, "fetch", src]


NOT_READY_MARK = b"NSPAWN-FAST-NOT-READY "


def run_argv(target: NspawnTarget, fresh: bool, rnonce: str, argv: list[str]) -> list[str]:
    """The plugin's first command of a task: lookup and command in one helper call.

    The helper prints the leader record on stderr (split_leader() takes it out) and the
    command's output follows; `fresh` skips the host's readiness cache.
    """
    return helper_argv(target, "run", str(target.container), str(target.boot_timeout),
                       "1" if fresh else "0", rnonce, *argv)


def cmd_argv(target: NspawnTarget, leader: Leader, rnonce: str, argv: list[str]) -> list[str]:
    """A later command of the task, at the leader its first command found."""
    return helper_argv(target, "cmd", *leader.args(), rnonce, *argv)


def split_leader(data: bytes, nonce: str = RUN_NONCE) -> tuple[Leader | None, bytes]:
    """The leader record of a `run` call (said with this run's nonce) and `data` without it."""
    mark = f"NSPAWN-FAST-LEADER {nonce} ".encode()
    start = data.find(mark)
    if start < 0:
        return None, data
    end = data.find(b"\n", start)
    end = len(data) if end < 0 else end + 1
    return parse_leader(data[start:end].rstrip(b"\r\n"), nonce), data[:start] + data[end:]


def not_ready(data: bytes, rnonce: str) -> bool:
    """Whether the container refused to start the command: its systemd is booting or stopping."""
    return NOT_READY_MARK + rnonce.encode() in data


def parse_leader(stdout: bytes, nonce: str = RUN_NONCE) -> Leader:
    """The one leader record of a lookup, said with this run's nonce; ValueError otherwise.

    Only the host prints it (the container never writes to a lookup's output), and a login
    banner of the host's shell may precede it: anything but exactly one record is refused.
    """
    mark = f"NSPAWN-FAST-LEADER {nonce} ".encode()
    records = [line[len(mark):] for line in stdout.replace(b"\r", b"").split(b"\n") if line.startswith(mark)]
    if len(records) != 1:
        raise ValueError(f"expected one leader record, got {len(records)}")
    fields = records[0].decode("ascii").split(" ")
    if len(fields) != 4 or not (fields[0].isdigit() and fields[1].isdigit()):
        raise ValueError(f"malformed leader record {records[0]!r}")
    pid, start, unit, path = fields
    if not _UNIT_RE.fullmatch(unit) or not _PATH_RE.fullmatch(path) or int(pid) <= 1:
        raise ValueError(f"malformed leader record {records[0]!r}")
    return Leader(int(pid), int(start), unit, path)


def parse_helper_error(rc: int, stdout: bytes, stderr: bytes,
                       nonce: str = RUN_NONCE) -> tuple[str, str] | None:
    """(code, message) when the helper, not the command, failed; else None.

    The marker is looked for in stderr, and in stdout too because a command run
    with a tty (ssh -tt, for become) gets both streams merged. Only a marker with this
    run's nonce counts.
    """
    if rc != HELPER_ERROR_RC:
        return None
    mark = HELPER_ERROR_MARK + nonce.encode() + b" "
    for stream in (stderr, stdout):
        for line in reversed(stream.splitlines()):
            line = line.strip()
            if line.startswith(mark):
                code, _, message = line[len(mark):].decode("utf-8", "replace").partition(" ")
                return code, message
    return None


def tree_failure(rc: int, stderr: bytes) -> str | None:
    """systemd-nspawn's own reason when it failed before the tree's payload started, else None."""
    if rc == 0 or TREE_STARTED in stderr:
        return None
    return stderr.decode("utf-8", "replace").strip() or f"systemd-nspawn exited with {rc}"


def strip_tree_marker(data: bytes) -> bytes:
    """The payload's start line is ours, not the command's output."""
    for line in (TREE_STARTED + b"\r\n", TREE_STARTED + b"\n"):
        if line in data:
            return data.replace(line, b"", 1)
    return data
