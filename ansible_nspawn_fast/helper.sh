#!/bin/sh
# The host side of ansible-nspawn-fast: finds a container's leader and runs things inside it.
#
# Runs on the host that runs the containers, as root (or through sudo), as
#     sh -c "<this file>" nspawn-fast NONCE VERB ARGS...
# or, installed on the host as a file (so that a sudoers rule can name it), as
#     /path/to/nspawn-fast-helper NONCE VERB ARGS...
# with every value a separate, quoted argument. It needs sh, coreutils (timeout), util-linux's
# nsenter, and systemd-container (machinectl, systemd-nspawn).
#
#   lookup NAME TIMEOUT          wait (up to TIMEOUT s) until machine NAME runs and is booted,
#                                then print one record: NSPAWN-FAST-LEADER NONCE PID START UNIT PATH
#   exec PID START UNIT PATH ARGV...
#                                re-verify that leader, enter the container, run ARGV inside
#   run NAME TIMEOUT FRESH RNONCE ARGV...
#                                lookup and exec in one (the plugin's first command of a task):
#                                the leader record on stderr, then ARGV inside
#   cmd PID START UNIT PATH RNONCE ARGV...
#                                the plugin's later commands of that task
#   tree DIR NSPAWN-OPTION... -- ARGV...
#                                check that DIR is an OS tree, then run ARGV in it with
#                                systemd-nspawn (options checked by the controller; this
#                                helper builds the command line itself, never runs ARGV here)
#   enter-partial PID START UNIT PATH SKIP ARGV...
#                                exec, but staying in the host's network and/or PID namespace
#                                (SKIP: net, pid or net,pid; the operator's debugging entry)
#   stop NAME TIMEOUT            ask machine NAME to shut down (poweroff, or SIGTERM to a leader
#                                that is neither systemd nor nspawn's stub init) and wait up to
#                                TIMEOUT s for its leader to exit; kills nothing
#
# Threat model: root inside a container is hostile. So:
# - what runs on the host is decided only from data the host owns: machined's record of the
#   machine (leader PID and unit), and the kernel's /proc entries of that PID (start time,
#   namespaces, cgroup). The leader must be a live process inside the machine's own unit
#   cgroup, in namespaces other than the host's, with the start time seen at lookup;
# - the host never reads a file of the container and never runs a binary of it outside the
#   container: the environment (LANG, SHELL) is read by the container's own shell after every
#   namespace was joined; container output reaches the host only as an exit status;
# - every host-side step that could wait on the container has a timeout;
# - only the process that runs inside joins the container's cgroup, never this shell, so a
#   container cannot freeze or kill the helper that reports on it;
# - the helper's own errors are one line `NSPAWN-FAST-ERROR NONCE CODE MESSAGE` on stderr and
#   exit status 211; the NONCE is chosen by the controller per run and never enters the
#   container, so a command inside cannot fake a helper error.
set -u
nonce=$1 verb=$2
shift 2
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() {
  code=$1
  shift
  printf '\nNSPAWN-FAST-ERROR %s %s %s\n' "$nonce" "$code" "$*" >&2
  exit 211
}

need() {
  command -v "$1" >/dev/null 2>&1 || die missing-tool "$1 is not installed on the host (install $2)"
}

# The functions below return their results in upper-case variables rather than on stdout:
# a command substitution would fork a subshell for every check of every command.

# ST: the start time of process $1 (field 22 of /proc/PID/stat, clock ticks since boot): with
# the PID it names one process for good, so a reused PID is never mistaken for the leader.
# PSTATE: its state (field 3; Z: it exited and waits for its parent, X: dead).
starttime() {
  ST='' PSTATE='' s=''
  read -r s <"/proc/$1/stat" 2>/dev/null || [ -n "$s" ] || return 1
  s=${s##*) } # the process name may contain anything: cut through its last ") "
  # shellcheck disable=SC2086 # the remaining fields are numbers: split them
  set -- $s
  [ $# -ge 20 ] || return 1
  PSTATE=$1
  shift 19
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  ST=$1
}

# CGROUPS: the cgroup directories of process $1 (unified hierarchy, and systemd's named one on
# hybrid hosts), one a line, each only if it lies inside unit $2 under slices. Only the first
# line of each kind counts: a cgroup name with a newline in it can only add lines after it.
unit_cgroups() {
  CGROUPS='' seen=''
  while IFS= read -r line; do
    case $line in
      0::/*)
        kind=unified d=/sys/fs/cgroup p=${line#0::}
        [ -e "$d/cgroup.procs" ] || d=/sys/fs/cgroup/unified
        ;;
      *:name=systemd:/*) kind=systemd d=/sys/fs/cgroup/systemd p=${line#*:name=systemd:} ;;
      *) continue ;;
    esac
    case " $seen " in *" $kind "*) continue ;; esac
    seen="$seen $kind"
    case $p in */../* | */.. | */./* | *//*) continue ;; esac
    case $p in
      /*.slice/"$2" | /*.slice/"$2"/*) CGROUPS="$CGROUPS$d$p
" ;;
    esac
  done <"/proc/$1/cgroup"
}

# Whether PID $1 is a live process of unit $2 in namespaces other than the host's (then ST is
# its start time). Status 1: no such process (it exited); 2: a process that is not that
# machine's.
verified() {
  case $1 in '' | *[!0-9]* | 0 | 1) return 2 ;; esac
  case $2 in '' | */* | .*) return 2 ;; esac
  starttime "$1" || return 1
  # A leader that exited but is not reaped yet (the end of a reboot) still has its stat and
  # cgroup files, but no namespaces left to enter.
  case $PSTATE in Z* | X*) return 1 ;; esac
  [ "/proc/$1/ns/pid" -ef /proc/self/ns/pid ] && return 2
  [ "/proc/$1/ns/mnt" -ef /proc/self/ns/mnt ] && return 2
  unit_cgroups "$1" "$2" 2>/dev/null
  [ -n "$CGROUPS" ] || return 2
}

# FLAGS: nsenter flags for the namespaces of $1 that differ from the host's (user included,
# for private-user containers; nsenter orders user-namespace entry itself).
# SKIP (net, pid or net,pid; empty for tasks) leaves namespaces out: the operator's debugging
# entry (`nspawn-fast enter --no-network`), e.g. to install packages through the host's network.
ns_flags() {
  FLAGS=''
  for pair in mnt:m uts:u ipc:i net:n pid:p cgroup:C user:U; do
    ns=${pair%%:*}
    case ",${SKIP:-}," in *",$ns,"*) continue ;; esac
    [ "/proc/$1/ns/$ns" -ef "/proc/self/ns/$ns" ] || FLAGS="$FLAGS -${pair#*:}"
  done
}

# Whether leader $1 has a shutdown request not yet handled: machinectl reboot/poweroff signal
# the leader (SIGINT, SIGRTMIN+3..6 and +13..16 for systemd, SIGTERM for other inits), and for
# an instant after machinectl returns, systemd in it still says "running". The kernel's
# pending-signal masks (/proc/PID/status SigPnd, ShdPnd) show such a signal until it is read.
SHUTDOWN_SIGNALS=0x3c0f000004002
shutdown_pending() {
  while IFS='	' read -r k v; do
    case $k in
      SigPnd: | ShdPnd:)
        case $v in '' | *[!0-9a-fA-F]*) continue ;; esac
        [ $((0x$v & SHUTDOWN_SIGNALS)) -ne 0 ] && return 0
        [ "$k" = ShdPnd: ] && return 1 # the kernel prints it after SigPnd: the rest is not read
        ;;
    esac
  done <"/proc/$1/status"
  return 1
}

# INIT: what leader $1 runs, from its process name: systemd (its readiness is asked of it),
# early (still systemd-nspawn's child, before it executes the init), final (systemd-shutdown:
# the last seconds of an instance), stub (nspawn's own PID 1 of an --as-pid2 container: no
# readiness protocol; it ignores SIGTERM and turns poweroff into SIGTERM for its payload),
# other (an init without a readiness protocol).
init_kind() {
  c=''
  read -r c <"/proc/$1/comm" 2>/dev/null
  case $c in
    systemd) INIT=systemd ;;
    "(sd-stubinit)") INIT=stub ;;
    systemd-nspawn | "(sd-"*) INIT=early ;;
    systemd-shutdow*) INIT=final ;;
    *) INIT=other ;;
  esac
}

# Runs in the container, by its own /bin/sh, after every namespace was joined: the
# environment a login there would get (not the SSH session's), then a fork, so that the
# command is inside the container's PID namespace. Files are read only if regular (a FIFO
# would block), with shell builtins (no process per command).
# shellcheck disable=SC2016 # expanded by the container's shell, not here
INNER='PATH=$1 HOME=/root USER=root LOGNAME=root SHELL=/bin/sh rn=$2
shift 2
# A booting or stopping systemd instance: the command is not run, and the controller, told so
# with its nonce, waits for a booted instance ("-": no such check). Every command checks
# /run/nologin; the first of a task ("NONCE+") asks systemd too: right after a reboot request
# systemd stops units before it writes that file. "running" is told by the exit status alone
# (no second process to read the answer), degraded and maintenance by the answer; sd-bus bounds
# each call (SYSTEMD_BUS_TIMEOUT, else its own 25 s).
if [ "$rn" != - ] && [ -d /run/systemd/system ]; then
  ready=1
  [ -e /run/nologin ] && ready=""
  case $rn in
    *+)
      if [ -n "$ready" ] && ! SYSTEMD_BUS_TIMEOUT=10 systemctl is-system-running >/dev/null 2>&1; then
        case $(SYSTEMD_BUS_TIMEOUT=10 systemctl is-system-running 2>/dev/null) in degraded|maintenance) ;; *) ready="" ;; esac
      fi ;;
  esac
  if [ -z "$ready" ]; then
    printf "\nNSPAWN-FAST-NOT-READY %s\n" "${rn%+}" >&2
    exit 1
  fi
fi
if [ -f /etc/passwd ]; then
  while IFS=: read -r n _ _ _ _ _ s; do
    if [ "$n" = root ]; then [ -n "$s" ] && SHELL=$s; break; fi
  done </etc/passwd
fi
for f in /etc/locale.conf /etc/default/locale; do
  [ -f "$f" ] || continue
  while IFS= read -r l; do
    case $l in LANG=*) l=${l#LANG=}; l=${l#[[:punct:]]}; LANG=${l%[[:punct:]]}; export LANG; break 2 ;; esac
  done <"$f"
done
export PATH HOME USER LOGNAME SHELL
# "-c CMD": CMD by the login shell of root, as sshd runs a command (/bin/sh if that shell cannot run
# commands, such as nologin).
if [ "$1" = -c ]; then
  case $SHELL in */nologin | */false | "") set -- /bin/sh "$@" ;; *) [ -x "$SHELL" ] && set -- "$SHELL" "$@" || set -- /bin/sh "$@" ;; esac
fi
(exec "$@")'

# Whether $pid is still the leader this command was given: a live process of $unit in a
# container, started at $start (when known).
leader_still_there() {
  verified "$pid" "$unit" && [ "$ST" = "${start:-$ST}" ]
}

# The command did not start because the instance is going away: the same answer as the
# container's own "not booted" (INNER), with the run nonce, which the controller retries.
say_not_ready() {
  printf '\nNSPAWN-FAST-NOT-READY %s\n' "${RN%+}" >&2
}

# run_inside PID UNIT PATH ARGV...: ARGV in the container of leader PID. A subshell joins the
# leader's cgroup (so the container's limits apply and its processes stay in its units;
# nsenter -C only joins the cgroup namespace) and becomes nsenter: this shell stays outside.
# $TIMEOUT, when set, bounds the whole entry (timeout kills its process group).
run_inside() {
  pid=$1 unit=$2 path=$3
  shift 3
  ns_flags "$pid"
  unit_cgroups "$pid" "$unit" 2>/dev/null
  (
    read -r me _ </proc/self/stat # this subshell's own PID ($$ is the helper's)
    joined=''
    set -f # cgroup paths are named inside the container: no globbing, split at newlines only
    join_cgroups() {
      IFS='
'
      for dir in $CGROUPS; do
        echo "$me" >"$dir/cgroup.procs" 2>/dev/null && joined=1
      done
      IFS=' 	
'
    }
    join_cgroups
    if [ -z "$joined" ]; then
      # A leader that exited since it was checked (a reboot or stop under way) took its cgroup
      # with it: the command did not start, as when systemd in it is stopping (the first
      # command of a task waits for the next instance). A live one may have moved within its
      # unit: its cgroups are read once more.
      if leader_still_there; then
        join_cgroups
        [ -n "$joined" ] || die cgroup "cannot join the cgroup of $unit: refusing to run outside it"
      elif [ "${RN:--}" != - ]; then
        say_not_ready
        exit 1
      else
        die leader-changed "the container's leader process $pid is gone: the container stopped or restarted"
      fi
    fi
    # shellcheck disable=SC2086 # TIMEOUT and FLAGS are lists of words
    exec ${TIMEOUT:-} env -i ${TERM:+"TERM=$TERM"} "$NSENTER" -t "$pid" $FLAGS -r -w -F -- \
      /bin/sh -c "$INNER" sh "$path" "${RN:--}" "$@"
  )
}

# Whether the booted container of leader $1 accepts tasks: its systemd says running, degraded
# or maintenance. Only the exit status of the container's own systemctl is used, within 10 s.
is_ready() {
  shutdown_pending "$1" 2>/dev/null && return 1
  # A full entry, even for an operator's partial one (SKIP)
  TIMEOUT="timeout -k 2 10" saved_skip=${SKIP:-} SKIP='' saved_rn=${RN:--} RN=-
  # shellcheck disable=SC2016 # expanded by the container's shell
  run_inside "$1" "$2" "$DEFAULT_PATH" /bin/sh -c \
    'case $(systemctl is-system-running 2>/dev/null) in running|degraded|maintenance) exit 0;; esac; exit 1' \
    </dev/null >/dev/null 2>&1
  r=$?
  TIMEOUT='' SKIP=$saved_skip RN=$saved_rn
  return "$r"
}

# PATH of the container's init from the kernel's copy of its environment, bounded, and only if
# it is a plain list of directories; else the default. It is only ever used inside.
init_path() {
  p=$(head -c 65536 "/proc/$1/environ" 2>/dev/null | tr '\0' '\n' | sed -n 's/^PATH=//p' | head -n 1)
  case $p in '' | *[!A-Za-z0-9/_.:+-]*) p=$DEFAULT_PATH ;; esac
  printf '%s' "$p"
}

# machined's record of machine $1: sets leader and unit. First its state file in /run
# (written by machined, root's only: no D-Bus round trip), then `machinectl show`.
record_from_run() {
  leader='' unit=''
  f=/run/systemd/machines/$1
  [ -f "$f" ] && [ ! -L "$f" ] || return 1
  while IFS='=' read -r k v; do
    case $k in LEADER) leader=$v ;; SCOPE) unit=$v ;; esac
  done <"$f"
  [ -n "$leader" ] && [ -n "$unit" ]
}
record_from_machined() {
  leader='' unit=''
  out=$(timeout 10 machinectl show --property=Leader --property=Unit -- "$1" 2>/dev/null) || return 1
  while IFS='=' read -r k v; do
    case $k in Leader) leader=$v ;; Unit) unit=$v ;; esac
  done <<EOF
$out
EOF
  [ -n "$leader" ] && [ -n "$unit" ]
}

# One look at machine $1. Sets FOUND="PID START UNIT" and returns 0 when it can be entered;
# else sets FOUND to why and returns 1 (booting, stopping or restarting: worth waiting) or 2
# (not running). $2 = 0: take any registered leader, booted or not.
probe() {
  if ! { record_from_run "$1" && verified "$leader" "$unit"; }; then
    if ! record_from_machined "$1"; then
      # Not registered: systemd-nspawn@.service may be between a reboot's exit and its restart,
      # still stopping or starting, or still running for the instant between machined's
      # unregistering the machine and systemd-nspawn's exit. Worth waiting while it is; not
      # running once it settled.
      state=$(timeout 10 systemctl show --property=ActiveState --property=SubState --value \
        "systemd-nspawn@$1.service" 2>/dev/null | tr '\n' ' ')
      case $state in
        activating* | deactivating* | reloading* | *auto-restart* | active*) FOUND="$1 is restarting ($state)"; return 1 ;;
      esac
      FOUND=$(timeout 10 machinectl show --property=Leader --value -- "$1" 2>&1 >/dev/null | head -c 300 | head -n 1)
      return 2
    fi
    verified "$leader" "$unit"
    v=$?
    if [ "$v" -eq 2 ]; then
      # A leader that exited, its PID reused by another process between the two reads, looks
      # the same as a forged one for an instant: read machined's record once more.
      record_from_machined "$1" || { FOUND="$1 stopped"; return 1; }
      verified "$leader" "$unit"
      v=$?
      [ "$v" -ne 2 ] || die refused "machined names PID $leader as the leader of $1, but it is not" \
        "a process of $unit in a container: refusing to enter it"
    fi
    [ "$v" -eq 0 ] || { FOUND="its leader $leader exited"; return 1; }
  fi
  start=$ST
  if [ "$2" -gt 0 ]; then
    if shutdown_pending "$leader" 2>/dev/null; then
      FOUND="its leader has a shutdown request pending"
      return 1
    fi
    init_kind "$leader"
    case $INIT in
      early) FOUND="its init has not started yet"; return 1 ;;
      final) FOUND="it is shutting down"; return 1 ;;
    esac
    if [ "$INIT" = systemd ] && ! is_ready "$leader" "$unit"; then
      FOUND="systemctl is-system-running in it does not say running"
      return 1
    fi
  fi
  FOUND="$leader $start $unit"
}

# wait_ready NAME TIMEOUT: wait until machine NAME runs and is booted; sets FOUND to
# "PID START UNIT", or dies (not running, not ready in time).
wait_ready() {
  case $2 in '' | *[!0-9]*) die usage "boot timeout must be a number of seconds" ;; esac
  deadline=''
  while :; do
    probe "$1" "$2"
    case $? in
      0) return 0 ;;
      2) die not-running "$FOUND; machinectl list shows: $(
        timeout 10 machinectl list --no-legend 2>&1 | head -c 4000 | awk '{print $1}' | tr '\n' ' ')" ;;
    esac
    now=$(date +%s)
    [ -n "$deadline" ] || deadline=$((now + $2))
    [ "$now" -lt "$deadline" ] || die not-ready "$1 is not ready after ${2}s ($FOUND)"
    sleep 0.2
  done
}

lookup() {
  wait_ready "$1" "$2"
  # shellcheck disable=SC2086 # "PID START UNIT"
  set -- $FOUND
  printf 'NSPAWN-FAST-LEADER %s %s %s %s %s\n' "$nonce" "$1" "$2" "$3" "$(init_path "$1")"
}

# The readiness cache of the plugin's per-task lookups: /run/nspawn-fast/ready/NAME holds
# "PID START UNIT PATH" of the last leader of NAME found booted. Root's own directory and
# files (test -O; a symlink is never followed), written only by this helper: a container
# cannot touch it, and an entry counts only while that very process (PID and start time)
# is machined's leader. It spares the full readiness check, not the cheap ones (a pending
# shutdown signal, systemd-shutdown) nor the container's own /run/nologin check inside.
# (test -O, owned by this user, is not POSIX but dash, bash and busybox have it; a shell
# without it only loses the cache.)
# shellcheck disable=SC3067
CACHE_DIR=/run/nspawn-fast/ready
# shellcheck disable=SC3067
cache_read() {
  C_LINE=''
  f=$CACHE_DIR/$1
  [ -d "$CACHE_DIR" ] && [ ! -L "$CACHE_DIR" ] && [ -O "$CACHE_DIR" ] || return 1
  [ -f "$f" ] && [ ! -L "$f" ] && [ -O "$f" ] || return 1
  read -r C_LINE <"$f" 2>/dev/null || [ -n "$C_LINE" ]
}
# shellcheck disable=SC3067
cache_write() {
  [ -d "$CACHE_DIR" ] || (umask 077 && mkdir -p "$CACHE_DIR") 2>/dev/null || return 0
  [ ! -L "$CACHE_DIR" ] && [ -O "$CACHE_DIR" ] || return 0
  (umask 077 && printf '%s\n' "$2" >"$CACHE_DIR/.$1.$$" && mv -f "$CACHE_DIR/.$1.$$" "$CACHE_DIR/$1") 2>/dev/null
  return 0
}

# run NAME TIMEOUT FRESH RNONCE ARGV...: the plugin's first command of a task carries its own
# lookup (one SSH round trip): find and check the leader (the cache unless FRESH is 1), tell
# the controller on stderr (its nonce: the container cannot fake it), then run ARGV inside.
# RNONCE marks the container's "not booted" answer (INNER), which the controller retries.
run() {
  [ $# -ge 5 ] || die usage "run needs NAME TIMEOUT FRESH RNONCE COMMAND..."
  name=$1 timeout=$2 fresh=$3 rn=$4
  shift 4
  leader='' line=''
  if [ "$fresh" != 1 ] && cache_read "$name" && record_from_run "$name" && verified "$leader" "$unit"; then
    line="$leader $ST $unit"
    case $C_LINE in "$line "*) ;; *) line='' ;; esac
    if [ -n "$line" ]; then
      init_kind "$leader"
      { shutdown_pending "$leader" 2>/dev/null || [ "$INIT" = final ] || [ "$INIT" = early ]; } && line=''
    fi
  fi
  if [ -n "$line" ]; then
    path=${C_LINE##* }
  else
    wait_ready "$name" "$timeout"
    # shellcheck disable=SC2086 # "PID START UNIT"
    set -- $FOUND "$@"
    path=$(init_path "$1")
    line="$1 $2 $3"
    cache_write "$name" "$line $path"
    shift 3
  fi
  # shellcheck disable=SC2086 # "PID START UNIT"
  set -- $line "$@"
  printf 'NSPAWN-FAST-LEADER %s %s %s %s %s\n' "$nonce" "$1" "$2" "$3" "$path" >&2
  pid=$1 start=$2 unit=$3 RN=$rn+
  shift 3
  run_checked "$@"
}

# cmd PID START UNIT PATH RNONCE ARGV...: a later command of the task, at the leader its first
# one found: re-verified, then this process becomes ARGV inside.
cmd() {
  [ $# -ge 6 ] || die usage "cmd needs PID START UNIT PATH RNONCE COMMAND..."
  RN=$5
  a1=$1 a2=$2 a3=$3 a4=$4
  shift 5
  enter "$a1" "$a2" "$a3" "$a4" "$@"
}

# The leader handed back by the controller must still be machined's leader's process (same
# PID and start time, still that unit's, still in a container) right before entering it.
check_leader() {
  verified "$1" "$3"
  case $? in
    0) [ "$ST" = "$2" ] && return 0 ;;
    2) starttime "$1" && [ "$ST" = "$2" ] && die refused "PID $1 is no longer a process of $3 in a container: refusing to enter it" ;;
  esac
  die leader-changed "the container's leader process $1 is gone: the container stopped or restarted"
}

enter() {
  [ $# -ge 5 ] || die usage "exec needs PID START UNIT PATH COMMAND..."
  pid=$1 start=$2 unit=$3 path=$4
  shift 4
  case $path in '' | *[!A-Za-z0-9/_.:+-]*) path=$DEFAULT_PATH ;; esac
  check_leader "$pid" "$start" "$unit"
  run_checked "$@"
}

# run_checked ARGV...: ARGV inside the leader $pid (started $start, of $unit), waited for here:
# a command killed by a signal is told apart from its container going away (and ssh reports
# an exit status, which it does not for a process that died of a signal).
run_checked() {
  run_inside "$pid" "$unit" "$path" "$@"
  rc=$?
  [ "$rc" -eq 211 ] && exit 211
  # A task's first command that failed while its leader went away (nsenter found no namespaces
  # of a leader that exited right after its check, or the instance's end killed the command:
  # a reboot under way): the container's "not booted" answer, so the controller waits for the
  # next instance and runs the command there, as it does when the check itself says so.
  case ${RN:--} in
    *+) if [ "$rc" -ne 0 ] && ! leader_still_there; then
      say_not_ready
      exit "$rc"
    fi ;;
  esac
  # Killed by a signal: say so if it was the container going away, not the command failing.
  if [ "$rc" -ge 128 ]; then
    check_leader "$pid" "$start" "$unit"
    init_kind "$pid"
    if [ "$INIT" = final ] || { [ "$INIT" = systemd ] && ! is_ready "$pid" "$unit"; }; then
      die leader-changed "the container is shutting down"
    fi
  fi
  exit "$rc"
}

# enter-partial PID START UNIT PATH SKIP ARGV...: exec, but outside the namespaces in SKIP.
enter_partial() {
  [ $# -ge 6 ] || die usage "enter-partial needs PID START UNIT PATH SKIP COMMAND..."
  case $5 in net | pid | net,pid | pid,net) ;; *) die usage "enter-partial: SKIP is net, pid or net,pid" ;; esac
  SKIP=$5
  a1=$1 a2=$2 a3=$3 a4=$4
  shift 5
  enter "$a1" "$a2" "$a3" "$a4" "$@"
}

tree() {
  dir=$1
  shift
  case $dir in /*) ;; *) die usage "the tree's directory must be an absolute path" ;; esac
  need systemd-nspawn systemd-container
  [ -d "$dir" ] || die no-directory "$dir does not exist or is not a directory"
  [ -e "$dir/usr/lib/os-release" ] || [ -e "$dir/etc/os-release" ] ||
    die no-directory "$dir has no usr/lib/os-release or etc/os-release: not an OS tree"
  # Rotate the arguments: the options as they are; at "--", the payload's start line
  # (without that line on stderr, a failure is systemd-nspawn's own: tree busy, not
  # supported) and then the command.
  n=$# sep='' words=0
  while [ "$n" -gt 0 ]; do
    a=$1
    shift
    n=$((n - 1))
    if [ -z "$sep" ] && [ "$a" = -- ]; then
      sep=1
      # shellcheck disable=SC2016 # expanded by the payload's shell
      set -- "$@" -- /bin/sh -c 'echo NSPAWN-FAST-TREE-STARTED >&2; exec "$@"' sh
      continue
    fi
    [ -n "$sep" ] && words=$((words + 1))
    set -- "$@" "$a"
  done
  [ "$words" -gt 0 ] || die usage "tree needs -- COMMAND..."
  exec systemd-nspawn --quiet --register=no --keep-unit --as-pid2 --pipe "--directory=$dir" "$@"
}

# --- Operator tools: `nspawn-fast enter --no-network/--no-pid` and `nspawn-fast stop` --------

# Whether process $1 still is the one started at $2 and has not exited (a zombie has).
still_running() {
  starttime "$1" && [ "$ST" = "$2" ] || return 1
  case $PSTATE in Z* | X*) return 1 ;; esac
}

# The machines machined runs, for "not known" messages.
machine_names() {
  timeout 10 machinectl list --no-legend 2>&1 | head -c 4000 | awk '{print $1}' | tr '\n' ' '
}

# stop NAME TIMEOUT: ask machine NAME to shut down cleanly - machined's poweroff for a systemd
# init and nspawn's stub init, SIGTERM on the leader for any other init - and wait up to
# TIMEOUT s until that leader process (PID and start time) has exited. Kills nothing: when the
# time is up the caller decides (systemd, after an ExecStop=). A machine that is not running (an
# image machined knows, or one that went away while systemd runs this as its ExecStop=) needs
# nothing.
stop_machine() {
  [ $# -eq 2 ] || die usage "stop needs NAME TIMEOUT"
  name=$1 timeout=$2
  case $timeout in '' | *[!0-9]*) die usage "the stop timeout must be a number of seconds" ;; esac
  t0=$(date +%s)
  deadline=$((t0 + timeout))
  while :; do
    probe "$name" 0
    r=$?
    [ "$r" -eq 0 ] && break
    if [ "$r" -eq 2 ]; then
      timeout 10 machinectl show-image -- "$name" >/dev/null 2>&1 ||
        die not-running "$FOUND; machinectl list shows: $(machine_names)"
      echo "$name is not running"
      exit 0
    fi
    if ! record_from_machined "$name"; then
      # Unregistered while its unit is in transition: stopping (maybe this is its ExecStop=)
      # means done; starting means wait for it to register, then stop it.
      state=$(timeout 10 systemctl show --property=ActiveState --value "systemd-nspawn@$name.service" 2>/dev/null)
      case $state in activating | reloading) ;; *) echo "$name is not running"; exit 0 ;; esac
    fi
    [ "$(date +%s)" -lt "$deadline" ] || die stop-timeout "$name is not running yet after ${timeout}s ($FOUND): nothing was sent"
    sleep 0.2
  done
  # shellcheck disable=SC2086 # "PID START UNIT"
  set -- $FOUND
  pid=$1 start=$2
  # Still systemd-nspawn's child, before it executed the init: a signal now would kill the
  # container's start, not shut it down. Wait for the init (within the same time).
  init_kind "$pid"
  while [ "$INIT" = early ] && still_running "$pid" "$start"; do
    [ "$(date +%s)" -lt "$deadline" ] || die stop-timeout "the init of $name did not start within ${timeout}s: nothing was sent"
    sleep 0.2
    init_kind "$pid"
  done
  r=0 out=''
  case $INIT in
    systemd | stub) how=poweroff out=$(timeout 10 machinectl poweroff -- "$name" 2>&1) || r=$? ;;
    final) how="its own shutdown" ;; # systemd-shutdown: already on its way out
    *) how="SIGTERM to its leader" out=$(timeout 10 machinectl kill --kill-who=leader --signal=SIGTERM -- "$name" 2>&1) || r=$? ;;
  esac
  if [ "$r" -ne 0 ] && still_running "$pid" "$start"; then
    die stop-failed "machinectl could not ask $name to stop ($how): $(printf '%s' "$out" | head -c 300 | head -n 1)"
  fi
  while still_running "$pid" "$start"; do
    [ "$(date +%s)" -lt "$deadline" ] ||
      die stop-timeout "the leader $pid of $name is still running ${timeout}s after $how; nothing was killed"
    sleep 0.2
  done
  echo "$name stopped ($how, $(($(date +%s) - t0))s)"
}

case $verb in
  lookup | exec | enter-partial | stop | run | cmd)
    need timeout coreutils
    need machinectl systemd-container
    need nsenter util-linux
    NSENTER=''
    for d in /usr/bin /bin /usr/sbin /sbin /usr/local/bin /usr/local/sbin; do
      [ -x "$d/nsenter" ] && NSENTER=$d/nsenter && break
    done
    [ -n "$NSENTER" ] || die missing-tool "nsenter is not in /usr/bin, /bin, /usr/sbin or /sbin on the host"
    ;;
esac
case $verb in
  lookup) lookup "$@" ;;
  exec) enter "$@" ;;
  run) run "$@" ;;
  cmd) cmd "$@" ;;
  tree) tree "$@" ;;
  enter-partial) enter_partial "$@" ;;
  stop) stop_machine "$@" ;;
  *) die usage "unknown verb $verb" ;;
esac
