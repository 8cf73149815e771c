"""The host's interpreter: its leader cache, checked by start time and pending shutdown signals."""
import os

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.target import NspawnTarget
from ansible_nspawn_fast.transport import hostside

MACHINE = NspawnTarget(host="h", container="web")


def test_start_time_identifies_a_live_process():
    assert hostside._start_time(os.getpid()) == hostside._start_time(os.getpid()) is not None
    assert hostside._start_time(2**22 + 17) is None


def test_cached_leader_is_reused_only_while_alive(monkeypatch):
    me = os.getpid()
    alive = (me, hostside._start_time(me), "systemd-nspawn@web.service", "/usr/bin")
    hostside._leaders["web"] = alive
    lookup = enter.lookup_argv(MACHINE, nonce="n1")
    assert hostside.leader("web", lookup, "n1", 5) == {"leader": alive, "cached": True}
    hostside._leaders["web"] = (me, -1, "systemd-nspawn@web.service", "/usr/bin")  # same PID, other start
    calls = []
    out = b"NSPAWN-FAST-LEADER n1 42 99 systemd-nspawn@web.service /usr/bin\n"
    monkeypatch.setattr(hostside.subprocess, "run", lambda argv, **kw: calls.append(argv) or
                        type("P", (), {"returncode": 0, "stdout": out, "stderr": b""})())
    assert hostside.leader("web", lookup, "n1", 5) == {
        "leader": (42, 99, "systemd-nspawn@web.service", "/usr/bin"), "cached": False}
    assert calls == [lookup]
    hostside.forget("web")


def test_a_lookup_that_prints_no_record_of_this_run_is_an_error(monkeypatch):
    out = b"NSPAWN-FAST-LEADER other 2 15 systemd-nspawn@web.service /usr/bin\n"
    monkeypatch.setattr(hostside.subprocess, "run", lambda argv, **kw:
                        type("P", (), {"returncode": 0, "stdout": out, "stderr": b""})())
    found = hostside.leader("web2", ["true"], "n1", 5)
    assert found["error"][0] == "lookup-failed" and "web2" not in hostside._leaders


def test_a_pending_shutdown_signal_is_seen(tmp_path, monkeypatch):
    import signal
    me = os.getpid()
    assert not hostside._shutdown_pending(me)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        signal.pthread_kill(__import__("threading").get_ident(), signal.SIGINT)  # pending: blocked
        assert hostside._shutdown_pending(me)
    finally:
        signal.sigwait({signal.SIGINT})  # take it, as systemd's signalfd would
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert not hostside._shutdown_pending(me)


def test_the_host_interpreter_and_the_helper_agree_on_the_shutdown_signals():
    # The same check in two places (the helper for the plugin, the host interpreter's cache
    # for the strategy): one set of signals.
    import re
    found = re.search(r"^SHUTDOWN_SIGNALS=(0x[0-9a-f]+)$", enter.host_helper(), re.M)
    assert found and int(found.group(1), 16) == hostside.SHUTDOWN_SIGNALS


def test_the_host_asks_the_expected_interpreter_only_for_the_expected_cached_leader(monkeypatch):
    me = os.getpid()
    alive = (me, hostside._start_time(me), "systemd-nspawn@web.service", "/usr/bin")
    hostside._leaders["web"] = alive
    asked = []
    monkeypatch.setattr(hostside, "ready", lambda context_id: asked.append(context_id) or True)
    service = hostside.HostService.__new__(hostside.HostService)
    found = service.leader("web", ["false"], "n1", 5, expect=list(alive), context_id=7)
    assert found == {"leader": alive, "cached": True, "ready": True} and asked == [7]
    other = [me, 1, "systemd-nspawn@web.service", "/usr/bin"]  # another instance's leader
    assert "ready" not in service.leader("web", ["false"], "n1", 5, expect=other, context_id=7)
    assert "ready" not in service.leader("web", ["false"], "n1", 5)
    assert asked == [7]
    hostside._leaders.pop("web", None)
