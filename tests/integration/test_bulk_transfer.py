"""Large files under nspawn_linear take their own SSH session (transport/bulk.py), on the lab.

- a 20 MB copy and fetch arrive intact, and -vvv shows that both went the bulk way;
- a small file still goes through mitogen;
- an upload cut short (the stream ends before the announced size, or its ssh is killed)
  leaves the old file in place and no temp file beside it;
- a download is cut off past the size the container announced.
"""
from __future__ import annotations

import filecmp
import os
import shlex
import uuid

import ansible.errors
import pytest
from conftest import copy_and_kill_its_upload, guest_sh, host_sh, ssh_argv
from test_connection import BIN, recap, run_ansible

from ansible_nspawn_fast import enter
from ansible_nspawn_fast.target import NspawnTarget
from ansible_nspawn_fast.transport import bulk

PLAY = """
- hosts: {guest}
  gather_facts: false
  tasks:
    - ansible.builtin.copy: {{src: "{big}", dest: /root/bulk-{tag}.bin, mode: "0600"}}
    - ansible.builtin.copy: {{src: "{small}", dest: /root/bulk-{tag}.small, mode: "0600"}}
    - ansible.builtin.fetch: {{src: /root/bulk-{tag}.bin, dest: "{out}/big.bin", flat: true}}
    - ansible.builtin.file: {{path: "/root/bulk-{tag}.{{{{ item }}}}", state: absent}}
      loop: [bin, small]
"""


def test_large_copy_and_fetch_go_around_the_message_loop(lab, tmp_path):
    host = lab["hosts"][0]
    guest, tag = host["guests"][0], uuid.uuid4().hex[:8]
    big, small, out = tmp_path / "big.bin", tmp_path / "small.bin", tmp_path / "out"
    big.write_bytes(os.urandom(20 << 20))
    small.write_bytes(os.urandom(200 << 10))  # past mitogen's inline limit, below ours
    out.mkdir()
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(guest=guest, big=big, small=small, out=out, tag=tag))
    proc = run_ansible(lab, str(play), "-vvv", env={"ANSIBLE_STRATEGY": "nspawn_linear"})
    assert proc.returncode == 0, proc.output[-6000:]
    assert recap(proc.output)[guest]["failed"] == 0
    assert filecmp.cmp(big, out / big.name, shallow=False)
    said = [line for line in proc.output.splitlines() if "over a bulk SSH session" in line]
    assert any(f"PUT {big} (20971520 bytes) TO " in line for line in said), proc.output[-6000:]
    assert any(f"FETCH /root/bulk-{tag}.bin (20971520 bytes)" in line for line in said), said
    assert "(204800 bytes)" not in proc.output  # the small file stayed with mitogen
    assert not [p for p in out.iterdir() if p.name != big.name]


def _channel(lab: dict, host: dict, guest: str) -> bulk.Channel:
    """A bulk channel built as a task's is: the helper's lookup, then real ssh to the host."""
    target = NspawnTarget(host="127.0.0.1", container=guest)
    found = host_sh(lab, host, shlex.join(enter.lookup_argv(target)))
    leader = enter.parse_leader(found.stdout.encode())
    return bulk.Channel(target, leader, lambda command: [*ssh_argv(lab, host["port"]), command])


def test_an_upload_cut_short_leaves_the_old_file(lab, tmp_path):
    host = lab["hosts"][0]
    guest = host["guests"][0]
    dest = f"/root/bulk-cut-{uuid.uuid4().hex[:8]}"
    guest_sh(lab, host, guest, f"printf old > {dest}")
    part = tmp_path / "part"
    part.write_bytes(b"n" * (1 << 20))
    channel = _channel(lab, host, guest)
    try:
        # 1 MB sent of 5 announced: the stream ends early, as when the controller dies.
        with open(part, "rb") as source, pytest.raises(
                ansible.errors.AnsibleError, match=f"failed to put {dest} in container {guest}"):
            channel.put_stream(source, 5 << 20, dest)
        assert guest_sh(lab, host, guest, f"cat {dest}").stdout == "old"
        left = guest_sh(lab, host, guest, f"ls -a /root | grep -F {dest[6:]}.nspawn-fast || true").stdout
        assert left == "", left
        # The same channel completes a whole one.
        with open(part, "rb") as source:
            channel.put_stream(source, 1 << 20, dest)
        assert guest_sh(lab, host, guest, f"wc -c < {dest}").stdout.strip() == str(1 << 20)
    finally:
        guest_sh(lab, host, guest, f"rm -f {dest}", check=False)


def test_a_fetch_is_bounded_by_the_announced_size(lab, tmp_path):
    """A file that grows while it is read (a hostile container's endless file) is cut off."""
    host = lab["hosts"][0]
    guest = host["guests"][0]
    src = f"/root/bulk-grow-{uuid.uuid4().hex[:8]}"
    guest_sh(lab, host, guest, f"head -c 3000000 /dev/zero > {src}")
    try:
        with pytest.raises(ansible.errors.AnsibleError, match="more than the 1000000 bytes"):
            _channel(lab, host, guest).fetch(src, str(tmp_path / "out"), 1000000)
        assert list(tmp_path.iterdir()) == []
    finally:
        guest_sh(lab, host, guest, f"rm -f {src}", check=False)


def test_ssh_killed_during_a_large_copy_leaves_the_old_file(lab, tmp_path):
    """The bulk session cut by SIGKILL mid-upload (ansible's own copy, nspawn_linear)."""
    host = lab["hosts"][0]
    guest = host["guests"][0]
    dest = f"/root/bulk-kill-{uuid.uuid4().hex[:8]}.bin"
    guest_sh(lab, host, guest, f"echo old > {dest}")
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(60 << 20))
    # The bulk session's ssh: its command line carries the put script's temp name.
    returncode, output = copy_and_kill_its_upload(BIN / "ansible", lab, guest, src, dest, "nspawn_linear",
                                                  settle=0.1, wait=120)
    try:
        assert returncode != 0, output[-2000:]
        assert "failed to put" in output and f"container {guest}" in output, output[-2000:]
        assert guest_sh(lab, host, guest, f"cat {dest}").stdout == "old\n", "a partial file replaced the old one"
        left = guest_sh(lab, host, guest, "find /root /tmp -name '*.nspawn-fast.*' | head").stdout.strip()
        assert left == "", f"temp files left: {left}"
    finally:
        guest_sh(lab, host, guest, f"rm -f {dest}", check=False)
