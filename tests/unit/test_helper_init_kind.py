"""The helper's init_kind against real processes: which init a container's leader runs decides
whether its readiness is asked of systemd, waited for (nspawn still starting it), or taken as
is (an init without a readiness protocol), and how `stop` asks it to shut down."""
import re
import subprocess
import time

import pytest

from ansible_nspawn_fast import enter

HELPER = enter.host_helper()
INIT_KIND = re.search(r"^init_kind\(\) \{.*?^\}\n", HELPER, re.S | re.M).group(0)


@pytest.fixture
def process_named(tmp_path):
    """Start `sleep` under another name (its comm is the executable's name) and yield its PID."""
    started = []

    def start(comm):
        exe = tmp_path / comm
        exe.symlink_to(subprocess.check_output(["sh", "-c", "command -v sleep"], text=True).strip())
        proc = subprocess.Popen([str(exe), "30"])
        started.append(proc)
        for _ in range(100):  # until it has executed (its comm is the new name)
            with open(f"/proc/{proc.pid}/comm") as f:
                if f.read().strip() == comm[:15]:
                    break
            time.sleep(0.01)
        return proc.pid

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def init_kind(pid):
    return subprocess.run(["sh", "-c", INIT_KIND + 'init_kind "$1"; echo "$INIT"', "sh", str(pid)],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("comm, kind", [
    ("systemd", "systemd"),
    # nspawn's own PID 1 of an --as-pid2 (ProcessTwo=yes) container: its payload runs, nothing to
    # wait for. Taken for nspawn's child before it executed the init, entering waited forever.
    ("(sd-stubinit)", "stub"),
    ("systemd-nspawn", "early"),
    ("systemd-shutdown", "final"),
    ("myinit.sh", "other"),
])
def test_init_kind_of_a_leader(process_named, comm, kind):
    assert init_kind(process_named(comm)) == kind


def test_stop_asks_the_stub_init_with_poweroff_which_it_handles_not_sigterm_which_it_ignores():
    stop = re.search(r"^stop_machine\(\) \{.*?^\}\n", HELPER, re.S | re.M).group(0)
    assert re.search(r"^\s+systemd \| stub\) how=poweroff ", stop, re.M), stop


def test_a_process_that_is_gone_is_no_systemd():
    assert init_kind(2 ** 22 + 1) == "other"  # above pid_max: never a process
