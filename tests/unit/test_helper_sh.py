"""The operator verbs of helper.sh (enter-partial, stop): what can be checked without a host."""
import re
import subprocess

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.target import NspawnTarget

HELPER = enter.host_helper()
# The helper's functions the operator verbs build on: a rename elsewhere must not leave them
# calling a function that no longer exists (sh would only fail at run time).
USED = ["die", "starttime", "unit_cgroups", "ns_flags", "init_kind", "is_ready", "record_from_machined",
        "probe", "check_leader", "run_inside", "enter", "enter_partial", "still_running", "machine_names",
        "stop_machine"]


def test_every_function_the_operator_verbs_call_is_defined():
    defined = set(re.findall(r"^([a-z_]+)\(\) \{", HELPER, re.M))
    assert not set(USED) - defined


def test_the_verbs_are_dispatched():
    assert re.search(r"^  enter-partial\) enter_partial \"\$@\" ;;$", HELPER, re.M)
    assert re.search(r"^  stop\) stop_machine \"\$@\" ;;$", HELPER, re.M)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    argv = enter.helper_argv(NspawnTarget(host="h", container="web"), *args, nonce="n")
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_bad_arguments_are_usage_errors_before_anything_runs():
    for args in (("stop", "web"), ("stop", "web", "soon"), ("enter-partial", "1", "2", "u", "/bin", "net"),
                 ("enter-partial", "1234", "2", "u.service", "/bin", "mnt", "true")):
        cp = run(*args)
        if "missing-tool" in cp.stderr:  # a controller without nsenter/machinectl: checked first
            continue
        assert cp.returncode == 211 and "NSPAWN-FAST-ERROR n usage " in cp.stderr, (args, cp.stderr)
