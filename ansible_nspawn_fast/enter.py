"""Host-side commands that find a container's leader and run things inside it.

Every command sent to the host is `sh -c HOST_HELPER nspawn-fast VERB ARGS...`:
a small POSIX sh library that needs nothing but sh, coreutils, util-linux's
nsenter and machinectl (systemd-container) on the host. All values travel as
separate, quoted positional arguments, never spliced into the script.

Failures of the helper itself (not of the user's command) are reported as one
line `NSPAWN-FAST-ERROR <code> <message>` on stderr with exit status 211 (not
255, which the ssh plugin takes for its own failure and censors under no_log);
parse_helper_error() turns it into a typed error.

Why it enters the way it does (see ANCHORS.md, pitfalls 1-7):
- only the namespaces that differ from the host's are joined (user included,
  for private-user containers; nsenter orders user-namespace entry itself);
- the shell joins the leader's cgroup first so that the container's limits
  apply (nsenter -C only joins the cgroup namespace, util-linux#2006);
- the environment is the container's (PATH from its init, LANG from its
  locale.conf, HOME/USER/SHELL of root), not the SSH session's (util-linux#2080);
- nsenter runs with --no-fork and the helper forks with a subshell: the only
  waiter outside the container is a non-interactive sh, which does not stop
  itself when the container's shutdown SIGSTOPs the child, so a container
  rebooting under a running command does not wedge (LAB-NOTES);
- the leader is identified by PID *and* start time, so a reused PID is never
  entered, and a command killed because its container went away is reported
  as that, not as the command's failure.
"""
from __future__ import annotations

import shlex
from typing import NamedTuple

from .target import NspawnTarget

HELPER_ERROR_RC = 211
HELPER_ERROR_MARK = b"NSPAWN-FAST-ERROR "
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

HOST_HELPER = r"""
set -u
die() { code=$1; shift; printf '\nNSPAWN-FAST-ERROR %s %s\n' "$code" "$*" >&2; exit __HELPER_ERROR_RC__; }
need() { command -v "$1" >/dev/null 2>&1 || die missing-tool "$1 is not installed on the host (install $2)"; }
starttime() {
  read -r s < "/proc/$1/stat" 2>/dev/null || return 1
  s=${s##*) }
  set -- $s
  shift 19
  printf '%s' "$1"
}
ns_flags() {
  f=""
  for pair in mnt:m uts:u ipc:i net:n pid:p cgroup:C user:U; do
    ns=${pair%%:*}
    [ "/proc/$1/ns/$ns" -ef "/proc/$$/ns/$ns" ] || f="$f -${pair#*:}"
  done
  printf '%s' "$f"
}
join_cgroup() {
  while IFS=: read -r _ ctl path; do
    case $ctl in
      "") d=/sys/fs/cgroup; [ -e $d/cgroup.procs ] || d=/sys/fs/cgroup/unified ;;
      name=systemd) d=/sys/fs/cgroup/systemd ;;
      *) continue ;;
    esac
    [ -w "$d$path/cgroup.procs" ] && echo $$ > "$d$path/cgroup.procs" 2>/dev/null
  done < "/proc/$1/cgroup"
  return 0
}
check_leader() {
  [ "$(starttime "$1")" = "$2" ] || \
    die leader-changed "the container's leader process $1 is gone: the container stopped or restarted"
}
enter() {
  pid=$1; start=$2; path=$3; lang=$4; shell=$5; shift 5
  check_leader "$pid" "$start"
  flags=$(ns_flags "$pid")
  join_cgroup "$pid"
  env -i "PATH=${path:-__DEFAULT_PATH__}" HOME=/root USER=root LOGNAME=root \
    "SHELL=${shell:-/bin/sh}" ${lang:+"LANG=$lang"} ${TERM:+"TERM=$TERM"} \
    nsenter -t "$pid" $flags -r -w -F -- /bin/sh -c '(exec "$@"); exit $?' sh "$@"
  rc=$?
  # Killed by a signal: say so if it was the container going away, not the command failing.
  if [ "$rc" -ge 128 ]; then
    check_leader "$pid" "$start"
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ]; then
      case $(machine_state "$pid" "$start") in
        running|degraded|maintenance|starting|initializing) ;;
        *) die leader-changed "the container is shutting down" ;;
      esac
    fi
  fi
  exit "$rc"
}
container_env() {
  root=/proc/$1/root
  path=$(tr '\0' '\n' < "/proc/$1/environ" 2>/dev/null | sed -n 's/^PATH=//p')
  lang=""
  for f in etc/locale.conf etc/default/locale; do
    [ -r "$root/$f" ] && lang=$(sed -n 's/^LANG=//p' "$root/$f" | tr -d "\"'" | head -n 1)
    [ -n "$lang" ] && break
  done
  shell=$(awk -F: '$1 == "root" { print $7 }' "$root/etc/passwd" 2>/dev/null)
  printf '%s\n%s\n%s\n' "${path:-__DEFAULT_PATH__}" "$lang" "${shell:-/bin/sh}"
}
machine_state() {
  # The booted container's own view, without waiting: running, starting, stopping, ...
  ( enter "$1" "$2" "" "" "" systemctl is-system-running ) 2>/dev/null
}
probe() {
  # One look at machine $1: prints "PID STARTTIME" and returns 0 when it can be entered;
  # else prints why and returns 1 (it is booting, stopping or restarting: worth waiting)
  # or 2 (it is not running). $2 = 0: take any registered leader, booted or not.
  if ! leader=$(machinectl show --property=Leader --value -- "$1" 2>&1); then
    # systemd-nspawn@.service between a reboot's exit and its restart: not registered.
    case $(systemctl show --property=SubState --value "systemd-nspawn@$1.service" 2>/dev/null) in
      auto-restart|start-pre|start) echo "$1 is restarting"; return 1 ;;
    esac
    printf '%s' "$leader" | head -n 1
    return 2
  fi
  start=$(starttime "$leader") || { echo "its leader $leader exited"; return 1; }
  if [ "$2" -gt 0 ] && [ "$(cat "/proc/$leader/comm" 2>/dev/null)" = systemd ]; then
    state=$(machine_state "$leader" "$start")
    case $state in
      running|degraded|maintenance) ;;
      *) echo "systemctl is-system-running says '${state:-nothing}'"; return 1 ;;
    esac
  fi
  echo "$leader $start"
}
lookup() {
  name=$1; timeout=$2
  need machinectl systemd-container
  need nsenter util-linux
  deadline=$(( $(date +%s) + timeout ))
  while :; do
    found=$(probe "$name" "$timeout")
    case $? in
      0) break ;;
      2) die not-running "$found; machinectl list shows: $(
           machinectl list --no-legend 2>&1 | awk '{print $1}' | tr '\n' ' ')" ;;
    esac
    [ "$(date +%s)" -lt "$deadline" ] || \
      die not-ready "$name is not ready after ${timeout}s ($found)"
    sleep 0.2
  done
  printf '%s\n' "$found"
  container_env "${found%% *}"
}
tree() {
  dir=$1; shift
  need systemd-nspawn systemd-container
  [ -d "$dir" ] || die no-directory "$dir does not exist"
  [ -e "$dir/usr/lib/os-release" ] || [ -e "$dir/etc/os-release" ] || \
    die no-directory "$dir has no usr/lib/os-release or etc/os-release: not an OS tree"
  exec "$@"
}
verb=$1; shift
case $verb in
  lookup) lookup "$@" ;;
  exec) enter "$@" ;;
  tree) tree "$@" ;;
  *) die usage "unknown verb $verb" ;;
esac
""".replace("__DEFAULT_PATH__", DEFAULT_PATH).replace("__HELPER_ERROR_RC__", str(HELPER_ERROR_RC))

# Runs inside the container (or tree) with stdin = the file: write to a temp
# file next to the destination, then rename, so a failed transfer leaves no
# partial file. An existing destination keeps its mode and owner, a new one
# gets the default mode of the umask (as sftp would).
PUT_SCRIPT = r"""
set -e
dest=$1
dir=$(dirname -- "$dest")
mkdir -p -- "$dir"
tmp=$(mktemp -- "$dest.nspawn-fast.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
if [ -e "$dest" ]; then
  chmod --reference="$dest" -- "$tmp"
  chown --reference="$dest" -- "$tmp" 2>/dev/null || true
else
  chmod "$(printf '%o' $(( 0666 & ~0$(umask) )))" -- "$tmp"
fi
mv -f -- "$tmp" "$dest"
trap - EXIT
"""

FETCH_ARGV = ("cat", "--")


class Leader(NamedTuple):
    """A running container's leader, identified by PID and start time, with its environment.

    Found once per task by lookup_command(); every command of the task passes it back so
    the host side only checks the identity and enters (no lookup, few processes).
    """

    pid: int
    start: int
    path: str
    lang: str
    shell: str

    def args(self) -> list[str]:
        return [str(self.pid), str(self.start), self.path, self.lang, self.shell]


def _helper(target: NspawnTarget, verb: str, *args: str) -> str:
    """The host command line for one helper call, every value quoted."""
    words = ["sh", "-c", HOST_HELPER, "nspawn-fast", verb, *args]
    if target.host_sudo:
        words = ["sudo", "-n", "--", *words]
    return " ".join(shlex.quote(w) for w in words)


def lookup_command(target: NspawnTarget) -> str:
    """Prints 'PID STARTTIME', then PATH, LANG and SHELL of the booted container (parse_leader)."""
    return _helper(target, "lookup", str(target.container), str(target.boot_timeout))


def nspawn_argv(target: NspawnTarget, *command: str) -> list[str]:
    """systemd-nspawn for a not-running tree: one short-lived container per command."""
    return ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--as-pid2", "--pipe",
            f"--directory={target.directory}", *target.nspawn_args, "--", *command]


def _run_inside(target: NspawnTarget, leader: Leader | None, argv: list[str]) -> str:
    if target.is_directory:
        return _helper(target, "tree", str(target.directory), *nspawn_argv(target, *argv))
    assert leader is not None, "machine mode needs the leader from lookup_command()"
    return _helper(target, "exec", *leader.args(), *argv)


def exec_command(target: NspawnTarget, leader: Leader | None, cmd: str) -> str:
    """Run `cmd` (a shell command line, as Ansible builds it) inside."""
    return _run_inside(target, leader, ["/bin/sh", "-c", cmd])


def put_command(target: NspawnTarget, leader: Leader | None, dest: str) -> str:
    """Stream stdin into `dest` inside, atomically."""
    return _run_inside(target, leader, ["/bin/sh", "-c", PUT_SCRIPT, "put", dest])


def fetch_command(target: NspawnTarget, leader: Leader | None, src: str) -> str:
    """Stream `src` from inside to stdout."""
    return _run_inside(target, leader, [*FETCH_ARGV, src])


def parse_leader(stdout: bytes) -> Leader:
    """Parse lookup_command()'s output: its last four lines (a login banner may precede them)."""
    lines = stdout.decode("utf-8", "replace").replace("\r", "").rstrip("\n").split("\n")
    ids, path, lang, shell = lines[-4:]
    pid, start = ids.split()
    return Leader(int(pid), int(start), path, lang, shell)


def parse_helper_error(rc: int, stdout: bytes, stderr: bytes) -> tuple[str, str] | None:
    """(code, message) when the helper, not the command, failed; else None.

    The marker is looked for in stderr, and in stdout too because a command run
    with a tty (ssh -tt, for become) gets both streams merged.
    """
    if rc != HELPER_ERROR_RC:
        return None
    for stream in (stderr, stdout):
        for line in reversed(stream.splitlines()):
            line = line.strip()
            if line.startswith(HELPER_ERROR_MARK):
                code, _, message = line[len(HELPER_ERROR_MARK):].decode("utf-8", "replace").partition(" ")
                return code, message
    return None
