"""`nspawn-fast stop`: the helper's stop verb once, its errors as one line and an exit status."""
import pytest

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.cli import main
from ansible_nspawn_fast.ops import helper, stop


@pytest.fixture
def answer(monkeypatch):
    """Set what the helper's stop call answers; records the argv it was given."""
    seen = {}

    def set_answer(rc: int, out: bytes = b"", err: bytes = b""):
        def run_captured(place, argv, timeout):
            seen.update(argv=argv, timeout=timeout)
            return rc, out, err
        monkeypatch.setattr(helper, "run_captured", run_captured)
        return seen
    return set_answer


def said(code: str, message: str) -> bytes:
    return f"\nNSPAWN-FAST-ERROR {enter.RUN_NONCE} {code} {message}\n".encode()


def test_a_clean_stop_is_one_helper_call_bounded_by_the_timeout(answer, capsys):
    seen = answer(0, b"web stopped (poweroff)\n")
    assert main(["stop", "--timeout", "5", "db1:web"]) == 0
    assert seen["argv"][5:] == ["stop", "web", "5"] and seen["timeout"] == 65
    assert capsys.readouterr().err == "nspawn-fast: web stopped (poweroff) on host db1\n"


@pytest.mark.parametrize("code, status, words", [
    ("stop-timeout", stop.TIMEOUT_STATUS, "machine web on host db1 did not stop in time: it ran on. Wait longer "
                                          "(--timeout), or end it (machinectl terminate web)"),
    ("stop-failed", 1, "cannot stop machine web on host db1: it ran on"),
    ("not-running", 1, "machine web on host db1 is not running or not known to machined: it ran on. Start it"),
])
def test_the_helpers_errors_are_one_line_with_their_status(answer, capsys, code, status, words):
    answer(211, b"", said(code, "it ran on"))
    assert main(["stop", "db1:web"]) == status
    err = capsys.readouterr().err
    assert err.startswith(f"nspawn-fast: error: {words}") and err.count("\n") == 1
