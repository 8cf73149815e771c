"""The operator tools against the lab: `nspawn-fast enter`, `stop` and `chroots`.

Everything goes through the real CLI and real ssh to the lab's hosts (their port and key in
`--ssh-args`, as a user's ~/.ssh/config would give them). Runs on this machine ("no HOST:")
are played on a lab host, where the package is copied for the module's tests. The stop tests
use only guest h2-c2 (started again afterwards) and a scratch machine of their own on host 2;
the chroots tests a scratch dir on host 1. All of it is removed at the end.
"""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shlex
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from conftest import guest_sh, host_sh, ssh_argv

import ansible_nspawn_fast

PACKAGE = Path(ansible_nspawn_fast.__file__).parent  # what runs here, copied to the hosts
CHROOT_PLAYBOOKS = Path(__file__).parent / "playbooks" / "chroots"
INSTALLED = "/opt/nf-ops-test"  # the package, copied to the lab's hosts
ON_HOST = f"PYTHONPATH={INSTALLED} exec python3 -m ansible_nspawn_fast.cli"
SCRATCH = "nf-ops-scratch"  # a machine with a plain sh as init, on host 2
CHROOTS_DIR = "/srv/nf-chroots-test"
STOP_GUEST = "h2-c2"


def ssh_args(lab) -> str:
    return (f"-i {lab['key']} -o UserKnownHostsFile={lab['known_hosts']} -o StrictHostKeyChecking=yes "
            "-o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR")


def spec(host, name: str = "") -> str:
    return f"root@127.0.0.1:{host['port']}:{name}"


def cli(lab, *args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`nspawn-fast CMD --ssh-args ... ARGS` as a user runs it."""
    cmd, *rest = args
    return subprocess.run([sys.executable, "-m", "ansible_nspawn_fast.cli", cmd, "--ssh-args", ssh_args(lab),
                           *rest], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL if input is None else None, input=input)


def one_line_error(cp: subprocess.CompletedProcess[str]) -> str:
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nspawn-fast: error: "), cp.stderr
    assert "Traceback" not in cp.stderr
    return lines[0]


@pytest.fixture(scope="module")
def hosts(lab):
    """Host 1 and host 2, with the package copied to both (for runs "on this machine")."""
    h1, h2 = lab["hosts"][0], lab["hosts"][1]
    for h in (h1, h2):
        tar = subprocess.run(["tar", "-C", str(PACKAGE.parent), "--exclude=__pycache__", "-cf", "-", PACKAGE.name],
                             capture_output=True, check=True).stdout
        subprocess.run([*ssh_argv(lab, h["port"]),
                        f"rm -rf {INSTALLED} && mkdir -p {INSTALLED} && tar -xf - -C {INSTALLED}"],
                       input=tar, check=True, timeout=60)
    yield h1, h2
    for h in (h1, h2):
        host_sh(lab, h, f"rm -rf {INSTALLED}", check=False)


def wait_running(lab, host, guest: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cp = guest_sh(lab, host, guest, "systemctl is-system-running", check=False)
        if cp.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(1)
    raise AssertionError(f"{guest} is not running again after {timeout}s")


@pytest.fixture
def scratch(lab, hosts):
    """start(init): a registered machine on host 2 whose init is `sh -c INIT`, with a private
    network namespace (the lab's guests share their host's): the SIGTERM path of stop, and
    --no-network, are checked on it."""
    h2 = hosts[1]
    root = f"/run/{SCRATCH}"

    def remove() -> None:
        host_sh(lab, h2, f"systemctl stop {SCRATCH}.service 2>/dev/null; systemctl reset-failed {SCRATCH}.service "
                         f"2>/dev/null; rm -rf {root}; true", check=False)

    def start(init: str) -> int:
        remove()
        host_sh(lab, h2, f"""set -e
mkdir -p {root}/usr {root}/etc {root}/tmp {root}/root
for l in bin sbin lib lib64; do ln -s usr/$l {root}/$l; done
systemd-run --quiet --unit={SCRATCH} systemd-nspawn --quiet --keep-unit --register=yes \
  --machine={SCRATCH} --directory={root} --bind-ro=/usr --private-network -- /bin/sh -c {shlex.quote(init)}
for i in $(seq 100); do machinectl show {SCRATCH} >/dev/null 2>&1 && exit 0; sleep 0.1; done
journalctl -u {SCRATCH} -n 20 >&2; exit 1""")
        return int(host_sh(lab, h2, f"machinectl show -p Leader --value {SCRATCH}").stdout)

    yield start
    remove()


# --- enter -------------------------------------------------------------------------------------
def test_enter_runs_a_command_with_stdin_streams_and_exit_code(lab, hosts):
    h1 = hosts[0]
    cp = cli(lab, "enter", spec(h1, "h1-c1"), "--", "sh", "-c",
             'echo "out $(hostname) $HOME"; cat; echo err >&2; exit 7', input="from stdin\n")
    assert (cp.returncode, cp.stdout, cp.stderr) == (7, "out h1-c1 /root\nfrom stdin\n", "err\n")


def test_enter_unknown_or_stopped_machine_is_one_line_and_exit_1(lab, hosts):
    h1 = hosts[0]
    for name in ("no-such-machine", h1["special"]["stopped"]):
        cp = cli(lab, "enter", spec(h1, name), "--", "true")
        assert cp.returncode == 1, cp.stderr
        line = one_line_error(cp)
        assert f"machine {name} on host 127.0.0.1" in line
        assert "machinectl list shows:" in line and "h1-c1" in line and f"machinectl start {name}" in line


def test_enter_on_this_machine(lab, hosts):
    h1 = hosts[0]
    cp = host_sh(lab, h1, f"echo in | {ON_HOST} enter h1-c2 -- sh -c 'cat; hostname; exit 4'; echo rc=$?")
    assert cp.stdout == "in\nh1-c2\nrc=4\n", cp.stderr


def test_no_network_stays_in_the_hosts_network_namespace(lab, hosts, scratch):
    h2 = hosts[1]
    leader = scratch('trap "" TERM; while :; do sleep 1; done')
    host_ns = host_sh(lab, h2, f"readlink /proc/self/ns/net /proc/{leader}/ns/mnt").stdout.split()
    probe = ["--", "readlink", "/proc/self/ns/net", "/proc/self/ns/mnt"]
    inside = cli(lab, "enter", spec(h2, SCRATCH), *probe)
    outside = cli(lab, "enter", "--no-network", spec(h2, SCRATCH), *probe)
    assert inside.returncode == outside.returncode == 0, inside.stderr + outside.stderr
    assert inside.stdout.split()[0] != host_ns[0]  # its own network namespace...
    assert outside.stdout.split() == host_ns  # ...left for the host's; its mounts still the container's


def test_no_pid_stays_in_the_hosts_pid_namespace(lab, hosts):
    h1 = hosts[0]
    proc = subprocess.Popen([sys.executable, "-m", "ansible_nspawn_fast.cli", "enter", "--ssh-args", ssh_args(lab),
                             "--no-pid", spec(h1, "h1-c1"), "--", "sh", "-c", "echo $$; read x; echo done-$x"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid = proc.stdout.readline().strip()
        assert pid.isdigit(), pid
        # From the host: that PID is the command's, in the host's PID namespace and the container's mounts.
        links = host_sh(lab, h1, f"L=$(machinectl show -p Leader --value h1-c1); readlink /proc/{pid}/ns/pid "
                                 f"/proc/self/ns/pid /proc/{pid}/ns/mnt /proc/$L/ns/mnt").stdout.split()
        assert links[0] == links[1] and links[2] == links[3], links
        out, _ = proc.communicate("x\n", timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (0, "done-x\n")


class Terminal:
    """Drives a command on a pty as a user at a terminal would."""

    def __init__(self, argv: list[str], rows: int, cols: int) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvpe(argv[0], argv, {**os.environ, "TERM": "xterm"})
        self.resize(rows, cols)
        self.out = ""
        self.status: int | None = None

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, pattern: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.out):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} in {self.out[-2000:]!r}"
            if select.select([self.fd], [], [], left)[0]:
                try:
                    self.out += os.read(self.fd, 65536).decode(errors="replace")
                except OSError:
                    assert re.search(pattern, self.out), f"no {pattern!r} in {self.out[-2000:]!r}"

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    self.out += os.read(self.fd, 65536).decode(errors="replace")
                except OSError:
                    pass
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        raise AssertionError(f"still running: {self.out[-2000:]!r}")

    def close(self) -> None:
        if self.status is None:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.mark.parametrize("where", ["over ssh", "on this machine"])
def test_interactive_login_shell_on_a_terminal(lab, hosts, where):
    h1 = hosts[0]
    if where == "over ssh":  # ssh -t
        argv = [sys.executable, "-m", "ansible_nspawn_fast.cli", "enter", "--ssh-args", ssh_args(lab),
                spec(h1, "h1-c1")]
    else:  # our own pty, on a host reached by ssh -tt as a user logged in there
        base = ssh_argv(lab, h1["port"])
        argv = [base[0], "-tt", *base[1:], f"{ON_HOST} enter h1-c1"]
    term = Terminal(argv, 33, 111)
    try:
        term.expect(r"h1-c1:~# ")
        term.send("shopt -q login_shell && echo LOGIN-''yes; stty size; echo $((6*7))-$(hostname)\r")
        term.expect(r"LOGIN-yes\r\n33 111\r\n42-h1-c1")
        term.resize(40, 120)  # SIGWINCH reaches the shell's terminal
        time.sleep(1)
        term.send("stty size\r")
        term.expect(r"40 120")
        term.send("echo SLE''EPING; sleep 60\r")  # Ctrl-C reaches the container's foreground job
        term.expect(r"SLEEPING\r\n")
        time.sleep(1)
        term.send("\x03")
        term.send("echo after-$?\r")
        term.expect(r"after-130")
        term.send("exit 3\r")
        assert term.wait() == 3
    finally:
        term.close()


# --- stop --------------------------------------------------------------------------------------
# The README's drop-in (program path aside), plus KillSignal=SIGKILL: without the ExecStop= every
# process would be killed outright, so a complete slow ExecStop in the guest proves it was ours.
DROP_IN = f"""[Service]
ExecStop=/usr/bin/env PYTHONPATH={INSTALLED} python3 -m ansible_nspawn_fast.cli stop %i --timeout 60
TimeoutStopSec=75
KillSignal=SIGKILL
"""
SLOW_UNIT = """[Service]
ExecStart=/bin/sleep infinity
ExecStop=/bin/sh -c 'sleep 5; echo stopped-cleanly > /var/lib/nf-slow-stop.done'
TimeoutStopSec=30
"""


def test_stop_as_execstop_lets_a_slow_service_finish(lab, hosts):
    h2 = hosts[1]
    unit = f"systemd-nspawn@{STOP_GUEST}.service"
    drop_in = f"/run/systemd/system/{unit}.d/nf-ops-test.conf"
    # A started target that wants the unit keeps it loaded once stopped: otherwise systemd may
    # garbage-collect it, and with it the exit record of its ExecStop, before it is read.
    pin = "/run/systemd/system/nf-ops-pin.target"
    marker = f"/var/lib/machines/{STOP_GUEST}/var/lib/nf-slow-stop.done"  # the guest's /var/lib
    guest_sh(lab, h2, STOP_GUEST, f"rm -f /var/lib/nf-slow-stop.done; mkdir -p /run/systemd/system; "
                                  f"printf %s {shlex.quote(SLOW_UNIT)} > /run/systemd/system/nf-slow-stop.service; "
                                  "systemctl daemon-reload && systemctl start nf-slow-stop.service")
    try:
        host_sh(lab, h2, f"mkdir -p {Path(drop_in).parent}; printf %s {shlex.quote(DROP_IN)} > {drop_in}; "
                         f"printf '[Unit]\\nWants={unit}\\n' > {pin}; "
                         "systemctl daemon-reload && systemctl start nf-ops-pin.target")
        t0 = time.monotonic()
        host_sh(lab, h2, f"systemctl stop {unit}")
        took = time.monotonic() - t0
        state = host_sh(lab, h2, f"cat {marker}; systemctl show -p Result -p ExecStop {unit}; "
                                 f"journalctl -u {unit} --since '-2min' -o cat | grep 'nspawn-fast: ' || true").stdout
        assert took >= 5, f"stopped in {took:.1f}s: the slow ExecStop in the guest did not run"
        assert "stopped-cleanly" in state  # the guest's service stopped completely
        assert "Result=success" in state, state
        assert "ansible_nspawn_fast.cli stop" in state and "code=exited ; status=0 }" in state, state  # ours, exit 0
        assert f"nspawn-fast: {STOP_GUEST} stopped (poweroff" in state, state
    finally:
        host_sh(lab, h2, f"systemctl stop nf-ops-pin.target; rm -f {drop_in} {marker} {pin}; "
                         f"rmdir {Path(drop_in).parent}; systemctl daemon-reload; "
                         f"machinectl start {STOP_GUEST}", check=False)
        wait_running(lab, h2, STOP_GUEST)


def test_stop_sends_sigterm_to_other_inits_and_says_when_time_is_up(lab, hosts, scratch):
    h2 = hosts[1]
    leader = scratch('trap "" TERM; while :; do sleep 1; done')  # ignores SIGTERM
    t0 = time.monotonic()
    cp = cli(lab, "stop", spec(h2, SCRATCH), "--timeout", "3")
    took = time.monotonic() - t0
    assert cp.returncode == 3, cp.stderr
    line = one_line_error(cp)
    assert "did not stop in time" in line and "nothing was killed" in line and "SIGTERM" in line
    assert 2 <= took < 20
    assert host_sh(lab, h2, f"machinectl show -p Leader --value {SCRATCH}").stdout.strip() == str(leader)
    # The helper alone, as a host without the package would run it from its ExecStop=.
    helper = subprocess.run([sys.executable, "-m", "ansible_nspawn_fast.cli", "host-helper"],
                            capture_output=True, text=True, check=True).stdout
    cp = host_sh(lab, h2, f"printf %s {shlex.quote(helper)} > {INSTALLED}/helper; "
                          f"sh {INSTALLED}/helper exec-stop stop {SCRATCH} 1; echo rc=$?")
    assert "rc=211" in cp.stdout and "NSPAWN-FAST-ERROR exec-stop stop-timeout" in cp.stderr

    scratch('trap "exit 0" TERM; while :; do sleep 1; done')  # shuts down on SIGTERM
    cp = cli(lab, "stop", spec(h2, SCRATCH), "--timeout", "20")
    assert cp.returncode == 0, cp.stderr
    assert f"{SCRATCH} stopped (SIGTERM to its leader" in cp.stderr
    assert host_sh(lab, h2, f"machinectl show {SCRATCH}", check=False).returncode != 0


def test_stop_unknown_is_an_error_and_not_running_is_fine(lab, hosts):
    h1 = hosts[0]
    cp = cli(lab, "stop", spec(h1, "no-such-machine"))
    assert cp.returncode == 1
    assert "machinectl list shows:" in one_line_error(cp)
    cp = cli(lab, "stop", spec(h1, h1["special"]["stopped"]))
    assert cp.returncode == 0 and "is not running" in cp.stderr, cp.stderr


# --- chroots -----------------------------------------------------------------------------------
def summary(stdout: str) -> dict[str, list[str]]:
    """The summary table at the end of the output: tree -> its columns."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.split()[:2] == ["tree", "result"])
    return {line.split()[0]: line.split() for line in lines[start + 1:] if line.strip()}


def test_chroots_create_maintain_fail_alone_and_stay_idempotent(lab, hosts, tmp_path):
    h1 = hosts[0]
    host_sh(lab, h1, f"rm -rf {CHROOTS_DIR}; mkdir -p {CHROOTS_DIR} && "
                     f"cp -a /srv/nspawn-fast/trees/buildroot {CHROOTS_DIR}/broken")
    books = tmp_path / "playbooks"
    books.mkdir()
    for name in ("made", "broken", "failcreate", "invalid"):
        shutil.copy(CHROOT_PLAYBOOKS / f"{name}.yml", books)
    try:
        first = cli(lab, "chroots", spec(h1), "--dir", CHROOTS_DIR, "--playbooks", str(books), timeout=600)
        table = summary(first.stdout)
        assert first.returncode == 1, first.stdout[-3000:] + first.stderr
        assert table["made"][1:5] == ["created", "3", "1", "0"], table
        assert table["broken"][1:5] == ["failed", "1", "1", "1"], table
        assert table["failcreate"][1] == "failed" and "exit 1" in " ".join(table["failcreate"])
        assert table["invalid"][1] == "failed" and "does not load" in " ".join(table["invalid"])
        # Only the two trees, complete; nothing half-made, nothing for the playbook that did not load.
        listing = host_sh(lab, h1, f"ls -A {CHROOTS_DIR}; cat {CHROOTS_DIR}/made/etc/nf-chroots-test").stdout
        assert listing == "broken\nmade\nmaintained by nspawn-fast chroots\n"

        (books / "broken.yml").unlink()
        for name in ("failcreate", "invalid"):
            (books / f"{name}.yml").unlink()
        again = cli(lab, "chroots", spec(h1), "--dir", CHROOTS_DIR, "--playbooks", str(books), timeout=600)
        table = summary(again.stdout)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr
        assert table["made"][1:5] == ["ok", "3", "0", "0"], table  # changed=0
        assert table["broken"][1] == "skipped", table  # a tree without a playbook is left alone
    finally:
        host_sh(lab, h1, f"rm -rf {CHROOTS_DIR}", check=False)
