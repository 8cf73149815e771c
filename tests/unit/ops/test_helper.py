import pytest

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.ops import helper
from ansible_nspawn_fast.ops.errors import OpsError
from ansible_nspawn_fast.ops.place import Place

MARK = b"NSPAWN-FAST-ERROR " + enter.RUN_NONCE.encode() + b" "
REMOTE = Place(host="db1")


def filtered(data: bytes, step: int) -> tuple[bytes, bytes | None]:
    f = helper.HelperLineFilter()
    out = b"".join(f.feed(data[i:i + step]) for i in range(0, len(data), step)) + f.close()
    return out, f.found


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_the_helper_line_and_its_blank_line_are_taken_out(step):
    data = b"out 1\npartial" + b" line\n\n" + MARK + b"leader-changed it is gone\n"
    out, found = filtered(data, step)
    assert out == b"out 1\npartial line\n"
    assert enter.parse_helper_error(211, b"", found) == ("leader-changed", "it is gone")


@pytest.mark.parametrize("step", [1, 2, 1000])
def test_everything_else_passes_unchanged(step):
    data = b"a\n\nb\n\nNSPAWN-FAST-ERROR 0000 not-ours x\nNSPAWN-FAST\nno newline"
    assert filtered(data, step) == (data, None)


def test_a_partial_line_that_cannot_be_the_marker_is_passed_at_once():
    f = helper.HelperLineFilter()
    assert f.feed(b"Password: ") == b"Password: "
    assert f.feed(b"NSPAWN") == b""  # might still be the marker
    assert f.feed(b"-ish\n") == b"NSPAWN-ish\n"


@pytest.mark.parametrize("code", ["not-running", "not-ready", "leader-changed", "refused", "cgroup",
                                  "missing-tool", "usage", "something-new"])
def test_failures_are_one_line_naming_machine_and_host(code):
    message = str(helper.failure(REMOTE, "web", code, "what the\nhelper said"))
    assert "\n" not in message
    assert "web" in message and "db1" in message and "what the helper said" in message


def test_not_running_says_how_to_start_it():
    assert "machinectl start web" in str(helper.failure(REMOTE, "web", "not-running", "x"))


def test_machine_target_checks_the_name_first():
    with pytest.raises(OpsError, match="not a machine name"):
        helper.machine_target(REMOTE, "web;touch /tmp/x")
    with pytest.raises(OpsError, match="name the machine"):
        helper.machine_target(REMOTE, "")
    target = helper.machine_target(REMOTE, "web", boot_timeout=5, sudo=True)
    assert (target.host, target.container, target.local, target.boot_timeout, target.host_sudo) == \
        ("db1", "web", False, 5, True)
    assert helper.machine_target(Place(), "web", sudo=True).local


def test_check_names_ssh_failures_and_helper_errors():
    with pytest.raises(OpsError, match="cannot reach host db1 over ssh: .*Connection refused"):
        helper.check(REMOTE, "web", 255, b"", b"ssh: connect to host db1 port 22: Connection refused\n")
    with pytest.raises(OpsError, match="not running"):
        helper.check(REMOTE, "web", 211, b"", b"\n" + MARK + b"not-running no machine\n")
    helper.check(REMOTE, "web", 0, b"fine", b"")
    helper.check(Place(), "web", 255, b"", b"")  # a command's own 255 on this machine
