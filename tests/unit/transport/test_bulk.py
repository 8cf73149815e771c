"""The bulk path's own logic: ssh arguments, deadlines, bounded streams, the helper's answers."""
from __future__ import annotations

import io
import shlex
import shutil
import subprocess

import ansible.errors
import pytest

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.errors import TransferError
from ansible_nspawn_fast.target import NspawnTarget
from ansible_nspawn_fast.transport import bulk


def test_compression_is_turned_off_and_the_rest_kept() -> None:
    args = shlex.split(bulk.uncompressed_ssh_args("-C -o ControlMaster=auto -o ControlPersist=60s"))
    assert "-C" not in args
    # ssh keeps the first value of an -o option: ours comes before any of the user's.
    assert args[:2] == ["-o", "Compression=no"]
    assert args[2:] == ["-o", "ControlMaster=auto", "-o", "ControlPersist=60s"]
    assert shlex.split(bulk.uncompressed_ssh_args("")) == ["-o", "Compression=no"]


def test_control_path_is_its_own_per_host_port_user() -> None:
    a = bulk.control_path("10.0.0.1", 22, "root")
    assert a.startswith("%(directory)s/nfb-")
    assert a != bulk.control_path("10.0.0.1", 2222, "root")
    assert a != bulk.control_path("10.0.0.2", 22, "root")
    assert a == bulk.control_path("10.0.0.1", 22, "root")
    assert len(a % {"directory": ""}) < 20  # unix socket paths are short


def test_deadline_grows_with_size() -> None:
    assert bulk.transfer_timeout(0) == bulk.TIMEOUT_BASE_S
    assert bulk.transfer_timeout(100 << 20) == bulk.TIMEOUT_BASE_S + 100


def test_run_bounded_copies_stdout_and_keeps_the_tail_of_stderr() -> None:
    sink = io.BytesIO()
    script = "head -c 300000 /dev/zero; head -c 100000 /dev/zero | tr '\\0' e >&2; exit 3"
    rc, err, got = bulk.run_bounded(["sh", "-c", script], None, sink, 300000, 30)
    assert (rc, got, len(sink.getvalue())) == (3, 300000, 300000)
    assert len(err) == bulk.STDERR_TAIL and set(err) == {ord("e")}


def test_run_bounded_feeds_stdin_through_a_pipe_it_owns(tmp_path) -> None:
    # A pipe, not the file: ssh must see the end of its input when the controller dies.
    src = tmp_path / "src"
    src.write_bytes(b"y" * (3 * bulk.READ_SIZE + 17))
    sink = io.BytesIO()
    with open(src, "rb") as source:
        rc, _, _ = bulk.run_bounded(["sh", "-c", "test -p /dev/stdin && wc -c"], source, sink, 100, 30)
    assert rc == 0 and sink.getvalue().split() == [str(3 * bulk.READ_SIZE + 17).encode()]


def test_run_bounded_tells_an_early_exit_of_the_reader(tmp_path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"z" * (4 * bulk.READ_SIZE))
    with open(src, "rb") as source:
        rc, err, _ = bulk.run_bounded(["sh", "-c", "head -c 10 >/dev/null; echo refused >&2; exit 4"],
                                      source, None, 0, 30)
    assert rc == 4 and b"refused" in err


def test_run_bounded_stops_a_sender_past_its_announced_size() -> None:
    with pytest.raises(TransferError, match="more than the 1000 bytes"):
        bulk.run_bounded(["sh", "-c", "exec cat /dev/zero"], None, io.BytesIO(), 1000, 30)


def test_run_bounded_stops_at_the_deadline() -> None:
    with pytest.raises(TransferError, match="did not finish within"):
        bulk.run_bounded(["sleep", "30"], None, None, 0, 0.5)


def _channel(reply: str) -> bulk.Channel:
    target = NspawnTarget(host="h1", container="c1")
    leader = enter.Leader(10, 20, "machine-c1.scope", "/usr/bin")
    return bulk.Channel(target, leader, lambda command: ["sh", "-c", reply])


def test_a_refused_upload_names_the_container(tmp_path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x" * 10)
    with pytest.raises(ansible.errors.AnsibleError, match=r"failed to put /d/f in container c1 on host h1 "
                                                          r"\(rc=1\): no space"):
        _channel("cat >/dev/null; echo no space >&2; exit 1").put(str(src), "/d/f")


def test_ssh_failure_is_unreachable(tmp_path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x")
    with pytest.raises(ansible.errors.AnsibleConnectionFailure, match="SSH to host h1 failed"):
        _channel("exit 255").put(str(src), "/d/f")


def test_a_fetch_that_changed_size_leaves_nothing(tmp_path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"old")
    with pytest.raises(ansible.errors.AnsibleError, match="changed while being read"):
        _channel("printf abc").fetch("/f", str(out), 4)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_transfer_stopped_by_its_bounds_names_the_file_and_the_container(tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    with pytest.raises(ansible.errors.AnsibleError) as raised:
        _channel("exec cat /dev/zero").fetch("/f", str(out), 4)
    assert not isinstance(raised.value, ansible.errors.AnsibleConnectionFailure)  # FAILED
    assert str(raised.value) == ("failed to fetch /f from container c1 on host h1: the container sent more than "
                                 f"the 4 bytes it announced: transfer stopped (nothing was written to {out}; "
                                 "run the task again)")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(bulk, "transfer_timeout", lambda size: 0.5)
    src = tmp_path / "f"
    src.write_bytes(b"x")
    with pytest.raises(ansible.errors.AnsibleError, match=r"^failed to put /d/f in container c1 on host h1: the "
                                                          r"transfer did not finish within 0 s: transfer stopped "
                                                          r"\(the old file"):
        _channel("sleep 30").put(str(src), "/d/f")


def test_a_fetch_of_a_missing_file(tmp_path) -> None:
    with pytest.raises(ansible.errors.AnsibleFileNotFound, match="/f does not exist in container c1"):
        _channel(f"exit {enter.FETCH_MISSING_RC}").fetch("/f", str(tmp_path / "out"), 4)
    assert list(tmp_path.iterdir()) == []


def test_a_fetch_replaces_the_destination_when_complete(tmp_path) -> None:
    out = tmp_path / "out"
    _channel("printf abcd").fetch("/f", str(out), 4)
    assert out.read_bytes() == b"abcd"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the ssh client")
def test_ssh_reads_compression_off_even_after_the_defaults() -> None:
    argv = bulk.uncompressed_ssh_args("-C -o Compression=yes -o ControlPersist=60s")
    cp = subprocess.run(["ssh", "-G", *shlex.split(argv), "127.0.0.1"], capture_output=True, text=True)
    assert "compression no" in cp.stdout.splitlines()



# -- the same failure says the same on the plugin path (its put/fetch through the host shell) ---
def _plugin(answer: tuple[int, bytes, bytes]):
    from tests.unit.test_connection import RECORD, FakeHost, connection
    rc, out, err = answer
    return connection(FakeHost((rc, out, RECORD + err)), NspawnTarget(host="h1", container="c1"))


@pytest.mark.parametrize("rc, said", [(1, b"no space"), (255, b"ssh: connect to host h1: Connection refused")])
def test_a_failed_upload_is_the_same_error_on_both_paths(tmp_path, rc, said) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x" * 10)
    with pytest.raises(ansible.errors.AnsibleError) as on_plugin:
        _plugin((rc, b"", said + b"\n")).put_file(str(src), "/d/f")
    with pytest.raises(ansible.errors.AnsibleError) as on_bulk:
        _channel(f"cat >/dev/null; echo {shlex.quote(said.decode())} >&2; exit {rc}").put(str(src), "/d/f")
    assert type(on_plugin.value) is type(on_bulk.value)
    assert isinstance(on_bulk.value, ansible.errors.AnsibleConnectionFailure) is (rc == 255)
    assert str(on_plugin.value) == str(on_bulk.value)
    assert str(on_bulk.value).startswith("failed to put /d/f in container c1 on host h1")


@pytest.mark.parametrize("rc", [1, enter.FETCH_MISSING_RC])
def test_a_failed_download_is_the_same_error_on_both_paths(tmp_path, rc) -> None:
    out = tmp_path / "out"
    with pytest.raises(ansible.errors.AnsibleError) as on_plugin:
        _plugin((rc, b"", b"cat: read error\n")).fetch_file("/f", str(out))
    with pytest.raises(ansible.errors.AnsibleError) as on_bulk:
        _channel(f"echo 'cat: read error' >&2; exit {rc}").fetch("/f", str(out), 4)
    assert type(on_plugin.value) is type(on_bulk.value)
    assert str(on_plugin.value) == str(on_bulk.value)
    assert list(tmp_path.iterdir()) == []
