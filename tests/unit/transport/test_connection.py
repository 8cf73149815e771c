"""nspawn_linear's Connection with a fake multiplexer: what it asks, what it makes of the answers.

The multiplexer (its NspawnService and ansible_mitogen's ContextService) and the contexts it
returns are faked; the options, the stacks and the error table are the real ones. A call on
the task's interpreter that loses it is what mitogen raises then: ChannelError.
"""
from __future__ import annotations

import shlex

import ansible_mitogen.process
import mitogen.core
import pytest
from ansible.errors import AnsibleConnectionFailure, AnsibleError

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.errors import HELPER_FAILURES, UNKNOWN_FAILURE, Unreachable
from ansible_nspawn_fast.target import NspawnTarget
from ansible_nspawn_fast.transport import bulk, connection as linear, lifetime, plan

from ..test_connection import RECORD, FakeHost
from ..test_connection import connection as plugin_connection

VARS = {"inventory_hostname": "web", "ansible_host": "server1",
        "ansible_python_interpreter": "/usr/bin/python3"}
TARGET = NspawnTarget(host="server1", container="web")
LEADER = enter.Leader(4242, 99, "systemd-nspawn@web.service", "/usr/bin:/bin")
RESTARTED = LEADER._replace(pid=5151, start=120)
LOST = "the respondent Context has disconnected"


class FakeContext:
    """A mitogen context: plain calls are answered by function name and recorded, a call without
    reply (an inline file transfer) is recorded, and a call on the task's chain finds the
    interpreter gone."""

    def __init__(self, context_id: int) -> None:
        self.context_id, self.name = context_id, f"context{context_id}"
        self.answers: dict = {}
        self.calls: list[tuple] = []
        self.sent: list[bytes] = []

    def call(self, fn, *args):
        self.calls.append((fn.__name__, *args))
        return self.answers.get(fn.__name__)

    def send(self, msg) -> None:
        self.sent.append(msg.data)

    def send_async(self, msg):
        class Lost:
            def get(self):
                raise mitogen.core.ChannelError(LOST)
        return Lost()


class FakeMultiplexer:
    """Its services as a task's worker calls them. NspawnService.get finds `leaders` in turn
    (the last one again and again); an entry ("lookup", code, message) is the helper's error."""

    def __init__(self, *leaders, boot_msg: str | None = None) -> None:
        self.host, self.container = FakeContext(1), FakeContext(5)
        self.leaders, self.boot_msg = list(leaders), boot_msg
        self.host_answer: dict | Exception = {"context": self.host, "msg": None}
        self.calls: list[tuple] = []

    def call_service(self, service_name: str, method_name: str, **kw):
        self.calls.append((service_name.rsplit(".", 1)[-1], method_name, kw))
        if service_name == linear.NSPAWN_SERVICE:
            return self._nspawn_get(**kw)
        if method_name == "get" and kw["stack"][-1]["method"] == plan.CONTAINER_METHOD:
            # ContextService: the container's interpreter it already has
            return {"context": self.container, "via": self.host, "msg": None,
                    "init_child_result": {"home_dir": "/root", "good_temp_dir": "/tmp", "fork_context": None}}
        if method_name == "get":  # ContextService: the host's context
            if isinstance(self.host_answer, Exception):
                raise self.host_answer
            return self.host_answer
        return None  # ContextService.reset / put

    def _nspawn_get(self, host_stack, target, python, connect_timeout, extra_hops, connect):
        found = self.leaders.pop(0) if len(self.leaders) > 1 else self.leaders[0]
        if found[0] == "lookup":
            return {"lookup": found[1:], "stack": host_stack}
        hop = plan.container_hop(NspawnTarget(**target), found, python, connect_timeout)
        res = {"stack": [*host_stack, hop, *extra_hops], "leader": list(found), "cached": False, "msg": None}
        if connect:
            res.update(msg=self.boot_msg, method_name=plan.CONTAINER_METHOD if self.boot_msg else None,
                       context=None if self.boot_msg else self.container, via=self.host,
                       init_child_result={"home_dir": "/root", "good_temp_dir": "/tmp", "fork_context": None})
        return res

    def asked(self, service: str, method: str) -> list[dict]:
        return [kw for s, m, kw in self.calls if (s, m) == (service, method)]


@pytest.fixture
def mux(monkeypatch):
    """make(*leaders): the fake multiplexer every binding of the test talks to."""
    made = []

    class Binding:
        def get_service_context(self):
            return made[-1]

        def close(self):
            pass

    class WorkerModel:
        def get_binding(self, name):
            return Binding()

    monkeypatch.setattr(ansible_mitogen.process, "get_worker_model", WorkerModel)
    monkeypatch.setattr(lifetime, "exit_with_parent", lambda: None)  # not for the test process

    def make(*leaders, **kw) -> FakeMultiplexer:
        made.append(FakeMultiplexer(*leaders, **kw))
        return made[-1]
    return make


@pytest.fixture
def conn(nspawn_connection):
    return nspawn_connection(VARS, linear=True)


def test_one_call_per_task_gets_the_containers_interpreter(mux, conn):
    m = mux(LEADER)
    conn._connect()
    asked, = m.asked("NspawnService", "get")
    assert asked["target"]["container"] == "web" and asked["connect"] is True
    assert asked["host_stack"][0]["method"] == "ssh" and asked["host_stack"][0]["kwargs"]["hostname"] == "server1"
    assert conn.context is m.container
    assert len(m.calls) == 1  # no other round trip to the multiplexer


def test_later_items_of_a_loop_take_the_same_interpreter_back_without_a_lookup(mux, conn):
    fake = mux(LEADER)
    conn._connect()
    for _item in range(3):
        # What ansible_mitogen does before each item of a loop: let go of the interpreter.
        conn.on_action_run(task_vars=dict(VARS), delegate_to_hostname=None, loader_basedir=None)
        assert not conn.connected
        conn._connect()
        assert conn.context is fake.container
    assert len(fake.asked("NspawnService", "get")) == 1
    container_gets = [kw for kw in fake.asked("ContextService", "get")
                      if kw["stack"][-1]["method"] == plan.CONTAINER_METHOD]
    assert len(container_gets) == 3


def test_a_lost_host_connection_is_unreachable(mux, conn):
    m = mux(LEADER)
    conn._connect()
    m.host_answer = {"context": FakeContext(9), "msg": None}  # the multiplexer connected anew
    with pytest.raises(AnsibleConnectionFailure, match="lost the connection to host server1 while running "
                                                       f"a task in container web: {LOST}"):
        conn.exec_command("true")
    assert m.host.calls == []  # a lost host's leader cache went with it: nothing to forget


def test_an_unreachable_multiplexer_is_unreachable(mux, conn):
    m = mux(LEADER)
    conn._connect()
    m.host_answer = mitogen.core.ChannelError("the multiplexer went away")
    with pytest.raises(AnsibleConnectionFailure, match="lost the connection to host server1"):
        conn.exec_command("true")


SSH_REFUSED = "ssh: connect to host server1 port 22: Connection refused"


class RefusingHost(FakeHost):
    """The ssh plugin of a host that cannot be reached."""

    def run(self, command, in_data=None, sudoable=True):
        raise AnsibleConnectionFailure(SSH_REFUSED)


def test_a_host_that_cannot_be_reached_is_the_same_error_on_both_paths(mux, conn):
    with pytest.raises(AnsibleError) as on_plugin:
        plugin_connection(RefusingHost(), TARGET).exec_command("true")
    m = mux(LEADER)
    # The multiplexer's answer when its ssh to the host failed (ContextService's message).
    m._nspawn_get = lambda **kw: {"msg": SSH_REFUSED, "method_name": "ssh", "stack": kw["host_stack"]}
    with pytest.raises(AnsibleError) as on_linear:
        conn.exec_command("true")
    assert type(on_plugin.value) is type(on_linear.value) is AnsibleConnectionFailure
    assert str(on_plugin.value) == str(on_linear.value) == f"cannot reach container web on host server1: {SSH_REFUSED}"


def test_a_bad_option_is_the_same_error_on_both_paths(nspawn_connection):
    bad = {**VARS, "ansible_nspawn_container": "web;reboot"}
    raised = []
    for linear_path in (False, True):
        with pytest.raises(AnsibleError) as e:
            nspawn_connection(bad, linear=linear_path)._connect()
        raised.append(e.value)
    assert [type(e) for e in raised] == [AnsibleConnectionFailure] * 2
    assert str(raised[0]) == str(raised[1]) and "invalid container name 'web;reboot'" in str(raised[0])


@pytest.mark.parametrize("after", [RESTARTED, ("lookup", "not-running", "no machine 'web'")])
def test_a_restarted_or_stopped_container_fails_the_task_as_on_the_plugin_path(mux, conn, after):
    m = mux(LEADER, after)
    conn._connect()
    with pytest.raises(AnsibleError) as raised:
        conn.exec_command("true")
    assert not isinstance(raised.value, AnsibleConnectionFailure)  # FAILED, not UNREACHABLE
    assert str(raised.value) == str(plugin_error("leader-changed", LOST))
    # The host's cache is asked anew (it may hold the leader of an instance shutting down), and
    # the dead interpreter is dropped: the next task starts one at the container's new leader.
    assert ("forget", "web") in m.host.calls
    reset, = m.asked("ContextService", "reset")
    assert [hop["method"] for hop in reset["stack"]] == ["ssh", plan.CONTAINER_METHOD]


def test_an_interpreter_gone_alone_fails_the_task_and_says_so(mux, conn):
    m = mux(LEADER)
    conn._connect()
    with pytest.raises(AnsibleError, match="the interpreter in container web on host server1 exited while this "
                                           "task was running, the container did not restart") as raised:
        conn.exec_command("true")
    assert not isinstance(raised.value, AnsibleConnectionFailure)
    assert m.asked("ContextService", "reset")


def test_a_small_file_goes_inline_to_the_containers_interpreter(mux, conn, tmp_path):
    m = mux(LEADER)
    src = tmp_path / "f.txt"
    src.write_bytes(b"hello")
    conn.put_file(str(src), "/root/f.txt")
    sent, = m.container.sent
    assert b"write_path" in sent and b"/root/f.txt" in sent and b"hello" in sent


def test_a_container_without_python_gets_raw_commands_and_files_through_the_plugin_path(
        mux, conn, monkeypatch, tmp_path):
    m = mux(LEADER, boot_msg="python3: not found")
    m.host.answers["run"] = (1, b"")  # `command -v python3` inside, through the helper
    host = FakeHost((0, b"out\n", RECORD), (0, b"", b""), (0, b"content", b""))
    monkeypatch.setattr("ansible_nspawn_fast.connection.SshHost", lambda hop: host)
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 10)
    assert conn.exec_command("echo out") == (0, b"out\n", b"")
    conn.put_file(str(src), "/root/f.bin")
    conn.fetch_file("/etc/hostname", str(tmp_path / "hostname"))
    assert [c[0] for c in host.calls] == ["run", "cmd", "cmd"]
    assert host.calls[1][-3:] == ["put", "/root/f.bin", "10"] and host.stdin == [b"x" * 10]
    assert (tmp_path / "hostname").read_bytes() == b"content"
    probe, = [c for c in m.host.calls if c[0] == "run"]  # asked inside, through the helper
    assert probe[1][-3:] == ['command -v "$1" >/dev/null', "sh", "/usr/bin/python3"] and "exec" in probe[1]
    with pytest.raises(AnsibleError, match="has no Python interpreter"):
        conn.get_chain()


def plugin_error(code: str, message: str) -> AnsibleError:
    """What the plugin path raises when the helper says `code` in the task's first command."""
    err = f"\nNSPAWN-FAST-ERROR {enter.RUN_NONCE} {code} {message}\n".encode()
    try:
        plugin_connection(FakeHost((211, b"", err)), TARGET).exec_command("true")
    except AnsibleError as e:
        return e
    raise AssertionError(f"the plugin path did not fail on {code}")


@pytest.mark.parametrize("code", sorted(HELPER_FAILURES) + ["code-of-a-newer-helper"])
def test_a_helper_error_is_the_same_error_on_both_paths(mux, nspawn_connection, code):
    expected = plugin_error(code, "what the helper said")
    kind = HELPER_FAILURES.get(code, UNKNOWN_FAILURE).kind
    assert isinstance(expected, AnsibleConnectionFailure) is issubclass(kind, Unreachable)
    marker = f"NSPAWN-FAST-ERROR {enter.RUN_NONCE} {code} what the helper said"
    # Said by the lookup (in the host's interpreter) or as the container's interpreter starts.
    for said in ({"leaders": [("lookup", code, "what the helper said")]},
                 {"leaders": [LEADER], "boot_msg": f"EOF on stream\n{marker}\n"}):
        m = mux(*said["leaders"], boot_msg=said.get("boot_msg"))
        with pytest.raises(AnsibleError) as raised:
            nspawn_connection(VARS, linear=True)._connect()
        assert (type(raised.value), str(raised.value)) == (type(expected), str(expected)), m.calls


# -- large files: the bulk session of transport/bulk.py -----------------------------------


def _recording_channel(monkeypatch, tmp_path, script: str) -> list[str]:
    """Bulk sessions run `script` locally instead of ssh; returns the host command lines."""
    commands: list[str] = []

    def builder(connection, target):
        def argv_for(command: str) -> list[str]:
            commands.append(command)
            return ["sh", "-c", script]
        return argv_for
    monkeypatch.setattr(bulk, "host_argv_builder", builder)
    monkeypatch.setattr(bulk, "BULK_MIN_BYTES", 100)
    return commands


def test_a_large_file_goes_to_the_tasks_leader_over_the_bulk_session(mux, conn, monkeypatch, tmp_path):
    m = mux(LEADER)
    got = tmp_path / "got"
    commands = _recording_channel(monkeypatch, tmp_path, f"cat > {got}")
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 100)
    conn.put_file(str(src), "/root/f.bin")
    assert got.read_bytes() == b"x" * 100 and m.container.sent == []  # nothing inline
    argv = shlex.split(commands[0])
    verb = argv.index("cmd")  # the helper re-verifies the leader the task found
    assert argv[verb + 1:verb + 3] == ["4242", "99"] and argv[-3:] == ["put", "/root/f.bin", "100"]


def test_a_file_below_the_threshold_stays_inline(mux, conn, monkeypatch, tmp_path):
    m = mux(LEADER)
    commands = _recording_channel(monkeypatch, tmp_path, "exit 1")
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 99)
    conn.put_file(str(src), "/root/f.bin")
    assert commands == [] and len(m.container.sent) == 1


def test_a_large_fetch_asks_the_size_then_takes_the_bulk_session(mux, conn, monkeypatch, tmp_path):
    m = mux(LEADER)
    commands = _recording_channel(monkeypatch, tmp_path, "head -c 150 /dev/zero")
    conn._connect()
    monkeypatch.setattr(conn, "get_chain", lambda *a, **kw: m.container)
    m.container.answers["getsize"] = 150
    conn.fetch_file("/root/f.bin", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == b"\0" * 150
    assert ("getsize", "/root/f.bin") in m.container.calls
    assert shlex.split(commands[0])[-2:] == ["fetch", "/root/f.bin"]
