"""helper.sh's run_inside when the leader it was given exits before the command joins its
cgroup (a reboot or stop under way): the command did not start, and the controller is told so
in the form it retries (the first command of a task) or as a changed leader, never as a refusal."""
import re
import subprocess

from ansible_nspawn_fast import enter

HELPER = enter.host_helper()
FUNCTIONS = "".join(re.search(rf"^{name}\(\) \{{.*?^\}}\n", HELPER, re.S | re.M).group(0)
                    for name in ("die", "starttime", "unit_cgroups", "verified", "ns_flags", "leader_still_there",
                                 "say_not_ready", "run_inside"))


def gone_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def run_inside(pid: int, rn: str) -> subprocess.CompletedProcess[str]:
    script = FUNCTIONS + 'nonce=n NSENTER=/bin/false RN=$2 start=123\nrun_inside "$1" web.service /bin true\n'
    return subprocess.run(["sh", "-c", script, "sh", str(pid), rn], capture_output=True, text=True,
                          timeout=30)


def test_a_first_command_at_a_leader_that_exited_is_not_ready_with_the_run_nonce():
    cp = run_inside(gone_pid(), "r1+")
    assert cp.returncode == 1, cp
    assert enter.not_ready(cp.stderr.encode(), "r1"), cp.stderr
    assert "NSPAWN-FAST-ERROR" not in cp.stderr


def test_without_a_run_nonce_a_leader_that_exited_is_a_changed_leader():
    cp = run_inside(gone_pid(), "-")
    assert cp.returncode == 211, cp
    assert enter.parse_helper_error(cp.returncode, b"", cp.stderr.encode(), nonce="n")[0] == "leader-changed"


def test_a_leader_that_exited_but_is_not_reaped_yet_counts_as_exited():
    zombie = subprocess.Popen(["true"])  # not waited for: a zombie until the test reaps it
    try:
        for _ in range(200):
            with open(f"/proc/{zombie.pid}/stat") as f:
                if f.read().rsplit(") ", 1)[1].startswith("Z"):
                    break
        cp = subprocess.run(["sh", "-c", FUNCTIONS + 'verified "$1" web.service; echo $?', "sh",
                             str(zombie.pid)], capture_output=True, text=True, timeout=30)
        assert cp.stdout.strip() == "1", cp  # 1: exited (2 would be: not that machine's process)
    finally:
        zombie.wait()


def test_a_first_command_that_failed_as_its_leader_went_away_is_not_ready():
    run_checked = re.search(r"^run_checked\(\) \{.*?^\}\n", HELPER, re.S | re.M).group(0)
    # nsenter could not enter a leader that exited just after its check: status 1, nothing ran.
    script = (FUNCTIONS + run_checked + 'run_inside() { return 1; }\n'
              'nonce=n RN=r2+ pid=$1 start=123 unit=web.service path=/bin\nrun_checked true\n')
    cp = subprocess.run(["sh", "-c", script, "sh", str(gone_pid())], capture_output=True, text=True,
                        timeout=30)
    assert cp.returncode == 1 and enter.not_ready(cp.stderr.encode(), "r2"), cp
