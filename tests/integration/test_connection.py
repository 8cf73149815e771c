"""`ansible_connection: nspawn`: real ansible-playbook runs against the lab's containers over SSH.

One shared playbook set (playbooks/shared.yml) runs with and without pipelining under the stock
strategies (the plugin alone) and under ours (the persistent interpreters of nspawn_linear and
nspawn_free), with the same assertions.
"""
from __future__ import annotations

import filecmp
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import guest_sh, host_sh

PLAYBOOKS = Path(__file__).parent / "playbooks"
BIN = Path(sys.executable).parent
STRATEGIES = ["linear", "free", "nspawn_linear", "nspawn_free"]
SECRET = "Sekrit-Do-Not-Log-4711"


def run_ansible(lab: dict, *args: str, env: dict | None = None, tool: str = "ansible-playbook",
                timeout: int = 900) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "ANSIBLE_CONFIG": lab["ansible_cfg"], "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_DEPRECATION_WARNINGS": "0", **(env or {})}
    proc = subprocess.run([str(BIN / tool), *args], env=full_env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    proc.output = proc.stdout + proc.stderr  # type: ignore[attr-defined]
    return proc


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines -> {host: {'ok': n, 'failed': n, 'unreachable': n, ...}}."""
    result = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M):
        result[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return result


def first_host(lab: dict) -> dict:
    return lab["hosts"][0]


@pytest.fixture(scope="session")
def big_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "random-50M.bin"
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(50):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            out.write(chunk)
    Path(f"{path}.sha256").write_text(digest.hexdigest())
    return path


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("pipelining", [False, True], ids=["no-pipelining", "pipelining"])
def test_shared_playbook(lab, strategy, pipelining, big_file, tmp_path):
    proc = run_ansible(lab, str(PLAYBOOKS / "shared.yml"), "-e", f"fetch_dir={tmp_path}",
                       env={"ANSIBLE_STRATEGY": strategy, "ANSIBLE_PIPELINING": str(pipelining),
                            "NSPAWN_FAST_BIG_FILE": str(big_file)})
    assert proc.returncode == 0, proc.output[-6000:]
    counts = recap(proc.output)
    host1 = first_host(lab)
    expected = [g for h in lab["hosts"] for g in h["guests"]]
    expected += [host1["special"]["userns"], host1["special"]["nopy"], host1["tree"]["name"]]
    for name in expected:
        assert name in counts, f"{name} did not run: {proc.output[-3000:]}"
        assert counts[name]["failed"] == 0 and counts[name]["unreachable"] == 0, name
        assert counts[name]["ok"] > 0, name
    for name in lab["hosts"][0]["guests"]:
        assert filecmp.cmp(big_file, tmp_path / name / "big.bin", shallow=False), name


def test_no_helper_process_left_on_the_hosts(lab):
    """After the playbooks, nothing of ours keeps running on the hosts."""
    run_ansible(lab, "containers", "-m", "ansible.builtin.command", "-a", "true",
                tool="ansible")
    for host in lab["hosts"]:
        # The brackets keep the pattern from matching this command's own shell.
        proc = host_sh(lab, host, "pgrep -af 'check_leade[r]|nsente[r]' || true")
        assert proc.stdout.strip() == "", proc.stdout


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_stopped_and_refused_containers_are_unreachable_and_the_play_goes_on(lab, strategy, tmp_path):
    host1 = first_host(lab)
    marker = "/tmp/nspawn-fast-pwned"
    extra = tmp_path / "refused.yml"
    extra.write_text(
        "refused:\n  hosts:\n    refused-name:\n"
        f"      ansible_nspawn_container: 'web;touch {marker}'\n"
        "      ansible_connection: nspawn\n"
        f"      ansible_host: 127.0.0.1\n      ansible_port: {host1['port']}\n"
        # A host whose sshd is not there (nothing listens on this port).
        "down:\n  hosts:\n    ssh-down:\n"
        f"      ansible_nspawn_container: {host1['guests'][0]}\n"
        "      ansible_connection: nspawn\n      ansible_host: 127.0.0.1\n      ansible_port: 2299\n")
    proc = run_ansible(lab, "-i", lab["inventory"], "-i", str(extra),
                       str(PLAYBOOKS / "unreachable.yml"), env={"ANSIBLE_STRATEGY": strategy})
    assert proc.returncode == 4, proc.output[-4000:]  # 4: some hosts were unreachable
    counts = recap(proc.output)
    stopped = host1["special"]["stopped"]
    assert counts[stopped]["unreachable"] == 1
    assert counts["refused-name"]["unreachable"] == 1
    for name in host1["guests"]:
        assert counts[name]["ok"] == 2 and counts[name]["failed"] == 0, name
    # The messages name the container, the host and what machinectl shows.
    assert f"container {stopped} on host 127.0.0.1 is not running" in proc.output
    assert "machinectl list shows:" in proc.output and host1["guests"][0] in proc.output
    assert "invalid container name 'web;touch /tmp/nspawn-fast-pwned'" in proc.output
    # SSH's own message, said of the container.
    assert counts["ssh-down"]["unreachable"] == 1
    assert re.search(rf"cannot reach container {host1['guests'][0]} on host 127.0.0.1: .*"
                     r"port 2299: Connection refused", proc.output), proc.output[-3000:]
    assert "Traceback" not in proc.output
    # The refused name never reached a shell.
    host_sh(lab, host1, f"test ! -e {marker}")
    assert not Path(marker).exists()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_container_restarted_between_tasks_is_entered_again(lab, strategy):
    host1 = first_host(lab)
    proc = run_ansible(lab, str(PLAYBOOKS / "restart.yml"), "-e", f"restart_target={host1['guests'][-1]}",
                       "-e", f"container_host={host1['name']}", env={"ANSIBLE_STRATEGY": strategy})
    assert proc.returncode == 0, proc.output[-4000:]
    assert recap(proc.output)[host1["guests"][-1]]["failed"] == 0


REBOOT_UNTIL_NEW_LEADER = """
name={name}
old=$(machinectl show -p Leader --value "$name")
for attempt in 1 2 3; do
  machinectl reboot "$name"
  for i in $(seq 1 100); do
    new=$(machinectl show -p Leader --value "$name" 2>/dev/null)
    [ -n "$new" ] && [ "$new" != "$old" ] && exit 0
    sleep 0.1
  done
done
exit 1
"""


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_container_killed_during_a_task_fails_that_task_and_the_next_task_reconnects(lab, strategy):
    host2 = lab["hosts"][-1]
    guest = host2["guests"][-1]
    guest_sh(lab, host2, guest, "rm -f /tmp/killed-marker")
    env = {**os.environ, "ANSIBLE_CONFIG": lab["ansible_cfg"], "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_DEPRECATION_WARNINGS": "0", "ANSIBLE_STRATEGY": strategy}
    play = subprocess.Popen([str(BIN / "ansible-playbook"), str(PLAYBOOKS / "killed_during_task.yml"),
                             "-e", f"target={guest}"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while guest_sh(lab, host2, guest, "test -e /tmp/killed-marker", check=False).returncode != 0:
            assert play.poll() is None, play.stdout.read()
            assert time.monotonic() < deadline, "the long command never started"
            time.sleep(0.5)
        time.sleep(1)  # the sleep is running now
        host_sh(lab, host2, REBOOT_UNTIL_NEW_LEADER.format(name=guest))
        # The interrupted task must fail promptly, not after its 300 s sleep, and not hang.
        output, _ = play.communicate(timeout=150)
    finally:
        if play.poll() is None:
            play.kill()
            play.wait()
    assert play.returncode == 0, output[-5000:]
    counts = recap(output)[guest]
    assert counts["failed"] == 0 and counts["unreachable"] == 0 and counts["ignored"] == 1, output[-3000:]
    assert f"container {guest} on host 127.0.0.1 stopped or restarted" in output
    assert "Traceback" not in output


def test_verbose_output_shows_the_steps_and_never_a_password(lab, tmp_path):
    guest = first_host(lab)["guests"][0]
    src = tmp_path / "put-me.txt"
    src.write_text("verbose\n")
    proc = run_ansible(lab, guest, "-vvv", "-m", "ansible.builtin.copy",
                       "-a", f"src={src} dest=/root/put-me.txt",
                       "-e", f"ansible_password={SECRET}", "-e", f"ansible_become_password={SECRET}",
                       tool="ansible")
    assert proc.returncode == 0, proc.output[-4000:]
    assert f"ESTABLISH NSPAWN CONNECTION TO container {guest} on host 127.0.0.1" in proc.output
    assert re.search(rf"<{guest}> EXEC \(container {guest} on host 127.0.0.1\)", proc.output)
    assert re.search(rf"<{guest}> PUT .* TO .* IN container {guest}", proc.output)
    assert "NSPAWN: leader of" in proc.output
    assert SECRET not in proc.output


def test_ansible_doc_shows_the_options(lab):
    proc = run_ansible(lab, "-t", "connection", "nspawn", tool="ansible-doc")
    assert proc.returncode == 0, proc.output
    for text in ("nspawn_container", "ansible_nspawn_container", "nspawn_directory",
                 "ansible_ssh_common_args", "ansible_pipelining", "nspawn_boot_timeout"):
        assert text in proc.stdout, text
