"""Directory mode with no SSH hop: a not-running tree on the controller, run with systemd-nspawn -D."""
from __future__ import annotations

import subprocess

import pytest

from nspawn_fast_dev.lab.config import default_cache_dir
from test_connection import run_ansible


@pytest.fixture
def local_tree(lab, tmp_path):
    """A writable tree: an overlay of the lab's cached base image, unmounted afterwards."""
    rootfs = default_cache_dir() / lab["image"] / "rootfs"
    assert (rootfs / "usr/lib/os-release").exists(), f"no base image at {rootfs}"
    upper, work, merged = (tmp_path / d for d in ("upper", "work", "tree"))
    for d in (upper, work, merged):
        d.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={rootfs},upperdir={upper},workdir={work}", str(merged)], check=True)
    yield merged
    subprocess.run(["umount", str(merged)], check=True)


def test_local_directory_mode(lab, local_tree, tmp_path):
    inventory = tmp_path / "local.yml"
    inventory.write_text(
        "trees:\n  hosts:\n    local-tree:\n"
        "      ansible_connection: nspawn\n      ansible_nspawn_local: true\n"
        f"      ansible_nspawn_directory: '{local_tree}'\n"
        "      ansible_nspawn_args: ['--setenv=NSPAWN_FAST_ARG=passed through']\n")
    playbook = tmp_path / "play.yml"
    playbook.write_text("""
- hosts: local-tree
  gather_facts: false
  tasks:
    - ansible.builtin.copy: {content: "in the tree\\n", dest: /srv/made-here.txt, mode: "0644"}
    - ansible.builtin.shell: 'echo "$NSPAWN_FAST_ARG"; cat /srv/made-here.txt; cat /proc/1/comm'
      register: out
    - ansible.builtin.assert:
        that:
          - out.stdout_lines[0] == 'passed through'
          - out.stdout_lines[1] == 'in the tree'
""")
    proc = run_ansible(lab, "-i", str(inventory), str(playbook))
    assert proc.returncode == 0, proc.output[-4000:]
    # The file landed in the tree itself (through the overlay's upper layer), owned by root.
    made = local_tree / "srv" / "made-here.txt"
    assert made.read_text() == "in the tree\n"
    assert made.stat().st_uid == 0
