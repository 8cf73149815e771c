"""helper.sh's run_inside when the leader it was given exits before the command joins its
cgroup (a reboot or stop under way): the command did not start, and the controller is told so
in the form it retries (the first command of a task) or as a changed leader, never as a refusal."""
import re
import subprocess

from ansible_nspawn_fast import enter

HELPER = enter.host_helper()
FUNCTIONS = "".join(re.search(rf"^{name}\(\) \{{.*?^\}}\n", HELPER, re.S | re.M).group(0)
                    for name in ("die", "starttime", "unit_cgroups", "verified", "ns_flags", "run_inside"))


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
