"""Runs inside a container's interpreter: does this instance of the container take tasks?

The host's cache keeps a leader while its process lives, but a container that was just told
to reboot or power off keeps its leader for seconds while its systemd stops everything: a
task started then would run in an instance that is going away. So before each task with a
cached leader, the container's interpreter asks the container's systemd for its state, as
`systemctl is-system-running` would (running, degraded or maintenance take tasks; starting,
stopping and the rest do not), but without starting a process: one D-Bus call on systemd's
private socket (/run/systemd/private, root only; no bus daemon involved), answered in well
under a millisecond. A container without systemd as its init has no such socket and always
takes tasks. The answer (from the container, hence untrusted) only steers whether this
container's own tasks wait; every read is bounded in size and time.
"""
from __future__ import annotations

import contextlib
import os
import socket
import struct
import typing as t

import mitogen.core

PRIVATE_SOCKET = "/run/systemd/private"
READY_STATES = ("running", "degraded", "maintenance")
TIMEOUT = 2.0
# Seconds the asking side waits for that answer. Its own D-Bus exchange is bounded by TIMEOUT,
# but the container's root can stop or wedge the interpreter: the host's thread that asks
# (hostside.ready) must not wait on it for ever.
ASK_TIMEOUT = 10.0
MAX_REPLY = 65536


def accepts_tasks() -> bool:
    if not os.path.isdir("/run/systemd/system"):  # systemd is not this container's init
        return True
    try:
        return system_state() in READY_STATES
    except (OSError, ValueError, struct.error):
        return False


def ask(context: t.Any) -> bool:
    """accepts_tasks(), asked of a container's interpreter by the multiplexer or the host:
    an interpreter that is gone, fails or does not answer within ASK_TIMEOUT does not take
    tasks (the caller then looks the leader up again, uncached)."""
    try:
        answer = context.call_async(accepts_tasks)
    except mitogen.core.Error:
        return False
    try:
        return bool(answer.get(timeout=ASK_TIMEOUT).unpickle())
    except mitogen.core.TimeoutError:
        # A late answer has nowhere to go. (A receiver that got its one answer has removed
        # its handle already: it is closed only here, and a race with that is harmless.)
        with contextlib.suppress(KeyError):
            answer.close()
        return False
    except mitogen.core.Error:  # ChannelError (gone), CallError (failed)
        return False


def system_state(path: str = PRIVATE_SOCKET) -> str:
    """org.freedesktop.systemd1.Manager's SystemState, read over systemd's private socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(path)
        sock.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
        if not _read_line(sock).startswith(b"OK "):
            raise ValueError("authentication refused")
        # systemd's server answers only once this is settled (as systemctl does it)
        sock.sendall(b"NEGOTIATE_UNIX_FD\r\n")
        _read_line(sock)
        sock.sendall(b"BEGIN\r\n" + _get_call("org.freedesktop.systemd1.Manager", "SystemState"))
        kind, body = _read_message(sock)
        if kind != 2:  # METHOD_RETURN (3 would be an error)
            raise ValueError(f"D-Bus reply of type {kind}")
        return _variant_string(body)


def _read_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk or len(line) > 512:
            raise ValueError("no authentication reply")
        line += chunk
    return line


def _pad(data: bytes, align: int) -> bytes:
    return data + b"\0" * (-len(data) % align)


def _get_call(interface: str, prop: str) -> bytes:
    """A little-endian METHOD_CALL of org.freedesktop.DBus.Properties.Get(interface, prop)."""
    def string(s: str) -> bytes:
        b = s.encode()
        return struct.pack("<I", len(b)) + b + b"\0"

    def field(code: int, sig: bytes, value: bytes) -> bytes:
        return _pad(bytes([code, len(sig)]) + sig + b"\0" + value, 1)

    body = _pad(string(interface), 4) + string(prop)
    fields = b""
    for code, sig, value in ((1, b"o", string("/org/freedesktop/systemd1")),
                             (2, b"s", string("org.freedesktop.DBus.Properties")),
                             (3, b"s", string("Get")),
                             (6, b"s", string("org.freedesktop.systemd1")),
                             (8, b"g", bytes([2]) + b"ss\0")):
        fields = _pad(fields, 8) + field(code, sig, value)
    header = b"l\x01\x00\x01" + struct.pack("<III", len(body), 1, len(fields)) + fields
    return _pad(header, 8) + body


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    return data


def _read_message(sock: socket.socket) -> tuple[int, bytes]:
    fixed = _recv_exactly(sock, 16)
    if fixed[0:1] != b"l":
        raise ValueError("not a little-endian D-Bus message")
    kind = fixed[1]
    body_len, _serial, fields_len = struct.unpack("<III", fixed[4:16])
    header_len = 16 + fields_len + (-(16 + fields_len) % 8)
    if header_len + body_len > MAX_REPLY:
        raise ValueError("D-Bus reply too large")
    rest = _recv_exactly(sock, header_len - 16 + body_len)
    return kind, rest[header_len - 16:]


def _variant_string(body: bytes) -> str:
    """The string inside a variant of signature 's' (the body of Properties.Get's reply)."""
    if body[:3] != b"\x01s\x00":
        raise ValueError("not a string variant")
    (length,) = struct.unpack("<I", body[4:8])
    value = body[8:8 + length]
    if len(value) != length or length > 64:
        raise ValueError("malformed string")
    return value.decode("ascii")
