"""Faults in the middle of a task under nspawn_linear, on the lab's last container (h2-c3).

- The SSH connection to the host (or the host's interpreter) is lost: the container is
  UNREACHABLE, with a message that says so; a rebooted container still FAILS the task.
- The controller is SIGKILLed or the SSH connection is lost: the container's interpreter
  stops what the interrupted task started and removes its partial transfers and temp dirs,
  and leaves alone what earlier, finished tasks left running on purpose.
- A full disk is named in the failure message.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import guest_sh, host_sh, ssh_argv
from test_connection import BIN, PLAYBOOKS, REBOOT_UNTIL_NEW_LEADER, recap, run_ansible

REMOTE_TMP = "/root/.ansible/tmp"  # remote_tmp's default, where the interpreter keeps its temp dirs


@pytest.fixture
def host(lab) -> dict:
    return lab["hosts"][-1]


@pytest.fixture
def guest(host) -> str:
    return host["guests"][-1]


def wait_for(check: Callable[[], bool], timeout: float, what: str, play: Play | subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    proc = play.proc if isinstance(play, Play) else play
    while not check():
        if proc is not None:
            output = play.output()[-2000:] if isinstance(play, Play) else ""
            assert proc.poll() is None, f"ansible-playbook ended before {what}: {output}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.2)


class Play:
    """ansible-playbook under nspawn_linear in the background, its output in a file."""

    def __init__(self, lab: dict, tmp_path: Path, tasks: str, guest: str) -> None:
        playbook = tmp_path / "play.yml"
        playbook.write_text(f"- hosts: {guest}\n  gather_facts: false\n  tasks:\n{tasks}")
        self.log = tmp_path / "play.log"
        env = {**os.environ, "ANSIBLE_CONFIG": lab["ansible_cfg"], "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_DEPRECATION_WARNINGS": "0", "ANSIBLE_STRATEGY": "nspawn_linear"}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([str(BIN / "ansible-playbook"), str(playbook)], env=env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 120) -> str:
        self.proc.wait(timeout=timeout)
        return self.output()

    def descendants(self) -> list[tuple[int, int, str]]:
        """(pid, ppid, cmdline) of every controller process under ansible-playbook."""
        procs = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except (OSError, ValueError, IndexError):
                    continue
                procs[int(entry.name)] = (ppid, cmd)
        found, todo = [], [self.proc.pid]
        while todo:
            parent = todo.pop()
            for pid, (ppid, cmd) in procs.items():
                if ppid == parent:
                    found.append((pid, ppid, cmd))
                    todo.append(pid)
        return found

    def ssh_to(self, host: dict) -> tuple[int, int]:
        """(pid, parent's pid) of the multiplexer's ssh to `host`: the parent is the multiplexer."""
        found = [(pid, ppid) for pid, ppid, cmd in self.descendants()
                 if cmd.startswith("ssh ") and f"-p {host['port']} " in cmd]
        assert len(found) == 1, found
        return found[0]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL, the main process only: as a user's `kill -9` would
            self.proc.wait()

    def stop(self) -> None:
        """Clean-up: the whole process group (workers, multiplexer, ssh)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


@pytest.fixture
def play_factory(lab, tmp_path, guest) -> Iterator[Callable[[str], Play]]:
    plays = []

    def start(tasks: str) -> Play:
        plays.append(Play(lab, tmp_path, tasks, guest))
        return plays[-1]
    yield start
    for play in plays:
        play.stop()


def marker() -> str:
    """A sleep duration no one else uses: `pgrep -f 'sleep MARKER'` finds only ours."""
    return f"{300 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 100000:05d}"


def in_guest(lab: dict, host: dict, guest: str, script: str) -> str:
    return guest_sh(lab, host, guest, script).stdout


def sleeping(lab: dict, host: dict, guest: str, duration: str) -> bool:
    return in_guest(lab, host, guest, f"pgrep -f '^sleep {duration}$' || true").strip() != ""


ASYNC_DIR = "/root/.ansible_async"  # async jobs' status files


@pytest.fixture
def no_leftovers(lab, host, guest) -> Iterator[Callable[[], list[str]]]:
    """Entries of the container's remote tmp dir new since the test began (none must stay).

    At the end it removes what the test's runs left there and in the async dir: a killed
    interpreter cannot clean up, an async job keeps its runner dir, stock Ansible too.
    """
    def entries(path: str) -> set[str]:
        return set(in_guest(lab, host, guest, f"mkdir -p {path}; ls -A {path}").split())
    before = {path: entries(path) for path in (REMOTE_TMP, ASYNC_DIR)}

    def new_entries(path: str = REMOTE_TMP) -> list[str]:
        return sorted(entries(path) - before[path])
    yield new_entries
    for path in before:
        for name in new_entries(path):
            if re.fullmatch(r"[\w.-]+", name):
                in_guest(lab, host, guest, f"rm -rf {path}/{name}")


def kill_in_guest(lab: dict, host: dict, guest: str, *durations: str) -> None:
    for duration in durations:
        guest_sh(lab, host, guest, f"pkill -KILL -f '^sleep {duration}$'", check=False)


# --- 1. what failed: the host connection, or the container ------------------------------
@pytest.mark.parametrize("what", ["host-interpreter", "ssh"])
def test_lost_host_connection_mid_task_is_unreachable_and_stops_the_task(lab, host, guest, play_factory,
                                                                        no_leftovers, what):
    duration = marker()
    play = play_factory(f"    - ansible.builtin.command: sleep {duration}\n")
    try:
        wait_for(lambda: sleeping(lab, host, guest, duration), 90, "the task's sleep started", play)
        ssh_pid, mux_pid = play.ssh_to(host)
        if what == "ssh":
            os.kill(ssh_pid, signal.SIGKILL)
        else:
            # The host's interpreter (and its fork) of this run: mitogen titles them
            # python3(mitogen:USER@CONTROLLER:MULTIPLEXER_PID).
            host_sh(lab, host, f"pkill -KILL -f 'mitogen:[^)]*:{mux_pid}\\)'")
        killed = time.monotonic()
        # The interpreter in the container stops the task's process as it exits.
        wait_for(lambda: not sleeping(lab, host, guest, duration), 5, "the task's sleep is gone")
        print(f"{what} killed: the task's sleep gone after {time.monotonic() - killed:.1f} s")
        output = play.wait(timeout=120)
        print(output)
        assert recap(output)[guest]["unreachable"] == 1, output[-3000:]
        assert re.search(rf"UNREACHABLE.*lost the connection to host 127\.0\.0\.1 while running a task in "
                         rf"container {guest}: ", output), output[-3000:]
        assert "stopped or restarted" not in output and "Traceback" not in output, output[-3000:]
        assert no_leftovers() == []
    finally:
        kill_in_guest(lab, host, guest, duration)


def test_container_rebooted_mid_task_still_fails_that_task(lab, host, guest, no_leftovers):
    guest_sh(lab, host, guest, "rm -f /tmp/killed-marker")
    env = {**os.environ, "ANSIBLE_CONFIG": lab["ansible_cfg"], "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_DEPRECATION_WARNINGS": "0", "ANSIBLE_STRATEGY": "nspawn_linear"}
    play = subprocess.Popen([str(BIN / "ansible-playbook"), str(PLAYBOOKS / "killed_during_task.yml"),
                             "-e", f"target={guest}"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: guest_sh(lab, host, guest, "test -e /tmp/killed-marker", check=False).returncode == 0,
                 120, "the long command started", play)
        time.sleep(1)
        host_sh(lab, host, REBOOT_UNTIL_NEW_LEADER.format(name=guest))
        output, _ = play.communicate(timeout=150)
    finally:
        if play.poll() is None:
            play.kill()
            play.wait()
    counts = recap(output)[guest]
    assert counts["failed"] == 0 and counts["unreachable"] == 0 and counts["ignored"] == 1, output[-3000:]
    assert f"container {guest} on host 127.0.0.1 stopped or restarted while this task was running" in output
    assert "lost the connection" not in output


def test_container_interpreter_killed_mid_task_fails_the_task_as_such(lab, host, guest, play_factory,
                                                                    no_leftovers):
    """Host and container are fine, only the interpreter went: FAILED, and not called a restart."""
    duration = marker()
    play = play_factory(f"    - ansible.builtin.command: sleep {duration}\n"
                        "      ignore_errors: true\n"
                        "    - ansible.builtin.ping:\n")
    try:
        wait_for(lambda: sleeping(lab, host, guest, duration), 90, "the task's sleep started", play)
        host_sh(lab, host, f"pkill -KILL -f '^[^ ]*python3[^ ]*\\(mitogen:nspawn:{guest}\\)'")
        output = play.wait(timeout=120)
        counts = recap(output)[guest]
        # The ignored failure counts as ok too: ok=2 is it and the ping after it.
        assert counts["ignored"] == 1 and counts["ok"] == 2 and counts["unreachable"] == 0, output[-3000:]
        assert f"the interpreter in container {guest} on host 127.0.0.1 exited while this task was " \
               "running, the container did not restart" in output, output[-3000:]
        assert "stopped or restarted" not in output
    finally:
        kill_in_guest(lab, host, guest, duration)


# --- 2, 3. what an interrupted task leaves in the container -----------------------------
def test_controller_sigkill_mid_command_leaves_no_process_and_no_temp_dir(lab, host, guest, play_factory,
                                                                         no_leftovers):
    duration = marker()
    play = play_factory(f"    - ansible.builtin.command: sleep {duration}\n")
    try:
        wait_for(lambda: sleeping(lab, host, guest, duration), 90, "the task's sleep started", play)
        assert no_leftovers() != [], "the task keeps a temp dir while it runs"  # what must go
        play.kill()
        wait_for(lambda: not sleeping(lab, host, guest, duration), 5, "the task's sleep is gone")
        wait_for(lambda: no_leftovers() == [], 5, f"temp dirs removed: {no_leftovers()}")
    finally:
        kill_in_guest(lab, host, guest, duration)


# Partial uploads: ansible_mitogen's (small files) and the bulk path's (large files: the plugin
# path's put script, beside the copy action's temp file in the task's temp dir).
TRANSFERS = ("find / -xdev \\( -name '.ansible_mitogen_transfer-*' -o -name '.source*.nspawn-fast.*' \\)"
             " 2>/dev/null")


def test_controller_sigkill_mid_copy_leaves_no_partial_file(lab, host, guest, play_factory, no_leftovers,
                                                           tmp_path):
    src = tmp_path / "big-100M.bin"
    with open(src, "wb") as out:
        for _ in range(100):
            out.write(os.urandom(1024 * 1024))
    dest = f"/root/nf-fault-copy-{uuid.uuid4().hex[:8]}.bin"
    assert in_guest(lab, host, guest, TRANSFERS) == ""
    # Watch from the host (through the leader's root, no process per check in the container):
    # the test kills the controller as soon as the partial transfer file exists.
    leader = host_sh(lab, host, f"machinectl show -p Leader --value {guest}").stdout.strip()
    watch = subprocess.Popen(
        [*ssh_argv(lab, host["port"]),
         f"for i in $(seq 1 1200); do for f in /proc/{leader}/root{REMOTE_TMP}/*/.ansible_mitogen_transfer-* "
         f"/proc/{leader}/root{REMOTE_TMP}/*/.source*.nspawn-fast.*; do "
         f'[ -e "$f" ] && {{ echo "$f"; exit 0; }}; done; sleep 0.05; done; exit 1'],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    play = play_factory(f"    - ansible.builtin.copy: {{src: {src}, dest: {dest}, mode: '0600'}}\n")
    try:
        found = watch.stdout.readline().strip()
        assert found, f"no transfer file seen: {play.output()[-2000:]}"
        play.kill()
        wait_for(lambda: in_guest(lab, host, guest, TRANSFERS) == "", 5,
                 "the partial transfer file is removed")
        wait_for(lambda: no_leftovers() == [], 5, f"temp dirs removed: {no_leftovers()}")
        assert in_guest(lab, host, guest, f"ls {dest} 2>/dev/null || true") == ""
    finally:
        watch.kill()
        watch.wait()
        guest_sh(lab, host, guest, f"rm -f {dest}; {TRANSFERS} -delete", check=False)


def test_what_finished_tasks_started_survives_a_controller_sigkill(lab, host, guest, play_factory,
                                                                  no_leftovers):
    """Only the interrupted task's processes are stopped: not a daemon or an async job started before."""
    daemon, job, task = marker(), marker(), marker()
    play = play_factory(
        f"    - ansible.builtin.shell: nohup sleep {daemon} >/dev/null 2>&1 &\n"
        f"    - ansible.builtin.command: sleep {job}\n"
        "      async: 600\n"
        "      poll: 0\n"
        f"    - ansible.builtin.command: sleep {task}\n")
    try:
        wait_for(lambda: sleeping(lab, host, guest, task), 90, "the last task's sleep started", play)
        play.kill()
        wait_for(lambda: not sleeping(lab, host, guest, task), 5, "the interrupted task's sleep is gone")
        time.sleep(2)
        assert sleeping(lab, host, guest, daemon), "the nohup'ed process of a finished task was killed"
        assert sleeping(lab, host, guest, job), "the async job was killed"
    finally:
        kill_in_guest(lab, host, guest, daemon, job, task)
        time.sleep(1)  # the async job writes its status file as its command ends


# --- 4. a full disk --------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["linear", "nspawn_linear"])
def test_disk_full_copy_names_the_cause(lab, host, guest, tmp_path, strategy):
    mnt = f"/mnt/nf-full-{uuid.uuid4().hex[:8]}"
    src = tmp_path / "five-M.bin"
    src.write_bytes(os.urandom(5 * 1024 * 1024))
    guest_sh(lab, host, guest, f"mkdir -p {mnt} && mount -t tmpfs -o size=1m nf-full {mnt}")
    try:
        proc = run_ansible(lab, guest, "-m", "ansible.builtin.copy", "-a", f"src={src} dest={mnt}/big.bin",
                           env={"ANSIBLE_STRATEGY": strategy}, tool="ansible")
        assert proc.returncode != 0, proc.output[-3000:]
        found = re.search(rf"^{guest} \| FAILED! => (\{{.*?^\}})", proc.stdout, re.M | re.S)
        assert found, proc.output[-3000:]
        msg = json.loads(found.group(1))["msg"]
        assert "No space left on device" in msg and f"{mnt}/" in msg, msg
        assert "deserialization" not in msg, msg
    finally:
        guest_sh(lab, host, guest, f"umount {mnt}; rmdir {mnt}", check=False)
