"""What a user installs, used as a user would, outside the checkout.

The wheel (`pip wheel . --no-deps`) carries the runtime and its Ansible plugins, and no lab or
bench code. Installed into a fresh virtualenv (with the ansible-core and mitogen releases of
this one), the ansible.cfg lines its `nspawn-fast ansible-cfg` prints run a one-task play in a
lab container under `linear` and `nspawn_linear`. The collection built from the same files,
installed with ansible-galaxy into that virtualenv's reach, runs the same play by FQCN. The
inventory is written as for the earlier `nspawn` plugin (`ansible_connection`, `ansible_host`,
`ansible_nspawn_container`), its host named otherwise than its machine. Every command runs
outside the checkout, without PYTHONPATH: only what was installed is found.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from nspawn_fast_dev import CHECKOUT, collection

PLAY = """\
- hosts: seed
  gather_facts: false
  tasks:
    - ansible.builtin.command: hostname   # it ran in the container when it saw the container's name
      register: out
      changed_when: false
      failed_when: out.stdout != ansible_nspawn_container
"""
# The seed plugin's inventory: an inventory name that is not the machine's, which
# ansible_nspawn_container names; the host, its SSH settings and pipelining as variables.
SEED_HOST = "seed-web"
SEED_INVENTORY = """\
seed:
  hosts:
    {seed_host}:
      ansible_nspawn_container: {guest}
  vars:
    ansible_connection: {connection}
    ansible_host: 127.0.0.1
    ansible_port: {port}
    ansible_user: root
    ansible_pipelining: true
    ansible_python_interpreter: /usr/bin/python3
    ansible_ssh_private_key_file: {key}
    ansible_ssh_common_args: -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes
"""


def run(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, f"{argv} exit {cp.returncode}:\n{cp.stdout[-3000:]}\n{cp.stderr[-3000:]}"
    return cp


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(tmp dir, the wheel, the fresh venv's bin dir, its environment)."""
    tmp = tmp_path_factory.mktemp("packaging")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("ANSIBLE_")}
    # From a copy of the checkout: no build/ left in it, and none of an earlier build in the wheel.
    src = tmp / "src"
    shutil.copytree(CHECKOUT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".tox", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".benchmarks"))
    run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(tmp / "wheel")], env=env, cwd=src)
    wheel, = (tmp / "wheel").glob("ansible_nspawn_fast-*.whl")
    run([sys.executable, "-m", "venv", str(tmp / "venv")], env=env, cwd=tmp)
    bin_dir = tmp / "venv" / "bin"
    # The releases this checkout's tests run on (pip's cache has them).
    run([str(bin_dir / "pip"), "install", "-q", str(wheel), f"ansible-core=={metadata.version('ansible-core')}",
         f"mitogen=={metadata.version('mitogen')}"], env=env, cwd=tmp)
    env = {**env, "PATH": f"{bin_dir}:{env['PATH']}", "ANSIBLE_DEPRECATION_WARNINGS": "False",
           "ANSIBLE_NOCOLOR": "True", "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp")}
    return tmp, wheel, bin_dir, env


def test_the_wheel_holds_the_runtime_and_its_plugins_and_no_development_code(installed):
    _, wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("ansible_nspawn_fast/plugins/connection/nspawn.py",
              "ansible_nspawn_fast/plugins/strategy/nspawn_linear.py",
              "ansible_nspawn_fast/plugins/strategy/nspawn_free.py",
              "ansible_nspawn_fast/helper.sh", "ansible_nspawn_fast/cli.py"):
        assert f in names, f
    dev = [n for n in names if n.startswith("nspawn_fast_dev/") or "/lab/" in n or "/bench/" in n]
    assert not dev, dev
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"ansible_nspawn_fast"}
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: GPL-3.0-or-later" in zipfile.ZipFile(wheel).read(meta).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def seed_inventory(lab, tmp: Path, connection: str) -> tuple[Path, str]:
    """(the seed-style inventory of guest 1 of host 1, that guest's machine name)."""
    host = lab["hosts"][0]
    guest = host["guests"][0]
    inventory = tmp / f"seed-{connection}.yml"
    inventory.write_text(SEED_INVENTORY.format(seed_host=SEED_HOST, guest=guest, connection=connection,
                                               port=host["port"], key=lab["key"], known_hosts=lab["known_hosts"]))
    (tmp / "play.yml").write_text(PLAY)
    return inventory, guest


def play(lab, tmp: Path, env: dict[str, str], connection: str, strategy: str | None) -> None:
    """The one-task play in guest 1 of host 1, under `strategy` (None: ansible.cfg's)."""
    inventory, guest = seed_inventory(lab, tmp, connection)
    if strategy is not None:
        env = {**env, "ANSIBLE_STRATEGY": strategy}
    cp = run(["ansible-playbook", "-vvv", "-i", str(inventory), "play.yml"], env=env, cwd=tmp)
    # Under the strategy, the container's persistent interpreter (mitogen) ran the task.
    how = "NSPAWN CONNECTION" if strategy == "linear" else "NSPAWN (mitogen) CONNECTION"
    assert f"ESTABLISH {how} TO container {guest}" in cp.stdout, cp.stdout[-3000:]
    assert re.search(rf"^{SEED_HOST} +: ok=1 +changed=0 +unreachable=0 +failed=0 ", cp.stdout, re.M), cp.stdout


def test_pip_install_with_the_printed_ansible_cfg(lab, installed):
    tmp, _, bin_dir, env = installed
    site = run([str(bin_dir / "python"), "-c", "import ansible_nspawn_fast; print(ansible_nspawn_fast.__file__)"],
               env=env, cwd=tmp).stdout.strip()
    assert site.startswith(str(tmp / "venv")), site
    # The development commands are not in the wheel: one line says so.
    cp = subprocess.run([str(bin_dir / "nspawn-fast"), "lab", "up"], env=env, cwd=tmp, capture_output=True, text=True)
    assert (cp.returncode, cp.stderr) == (2, "nspawn-fast: error: lab and bench are development tools: run them "
                                             "from a checkout (./run ...)\n")
    cfg = tmp / "pip.cfg"
    cfg.write_text(run([str(bin_dir / "nspawn-fast"), "ansible-cfg"], env=env, cwd=tmp).stdout)
    assert f"connection_plugins = {Path(site).parent / 'plugins' / 'connection'}\n" in cfg.read_text()
    env = {**env, "ANSIBLE_CONFIG": str(cfg)}
    doc = run(["ansible-doc", "-t", "connection", "nspawn"], env=env, cwd=tmp).stdout
    assert str(Path(site).parent / "plugins" / "connection" / "nspawn.py") in doc and "nspawn_container" in doc
    # The printed lines as they are (their strategy: nspawn_linear), then stock linear.
    for strategy in (None, "linear"):
        play(lab, tmp, env, "nspawn", strategy)


def test_the_collection_by_fqcn(lab, installed):
    tmp, _, bin_dir, env = installed
    tarball = collection.build(tmp / "dist")
    run([str(bin_dir / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(tmp / "collections")],
        env=env, cwd=tmp)
    cfg = tmp / "collection.cfg"  # no plugin paths: only the collection provides them
    cfg.write_text(f"[defaults]\ncollections_path = {tmp / 'collections'}\n"
                   "strategy = nspawn_fast.nspawn.nspawn_linear\n")
    env = {**env, "ANSIBLE_CONFIG": str(cfg)}
    doc = run(["ansible-doc", "-t", "connection", "nspawn_fast.nspawn.nspawn"], env=env, cwd=tmp).stdout
    assert "ansible_collections/nspawn_fast/nspawn/plugins/connection/nspawn.py" in doc and "nspawn_container" in doc
    for strategy in (None, "linear"):
        play(lab, tmp, env, "nspawn_fast.nspawn.nspawn", strategy)
    # The collection without its Python package (hidden by one that cannot be imported): each
    # plugin says what to install.
    hide = tmp / "hide" / "ansible_nspawn_fast"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('hidden by test_packaging')\n")
    inventory, _ = seed_inventory(lab, tmp, "nspawn_fast.nspawn.nspawn")
    for strategy in ("linear", "nspawn_fast.nspawn.nspawn_linear"):
        cp = subprocess.run(["ansible-playbook", "-i", str(inventory), "play.yml"], capture_output=True, text=True,
                            env={**env, "ANSIBLE_STRATEGY": strategy, "PYTHONPATH": str(tmp / "hide")}, cwd=tmp,
                            timeout=120, stdin=subprocess.DEVNULL)
        what = "nspawn connection" if strategy == "linear" else "nspawn_linear strategy"
        out = cp.stdout + cp.stderr
        assert cp.returncode != 0, out
        assert (f"the {what} needs the Python package ansible-nspawn-fast where ansible-playbook runs: "
                "pip install ansible-nspawn-fast") in out, out


def test_the_checkout_shims_document_the_plugin():
    """A checkout's connection_plugins/ (a symlink into the package) shows the same DOCUMENTATION."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONNECTION_PLUGINS"] = str(CHECKOUT / "connection_plugins")
    doc = run([str(Path(sys.executable).with_name("ansible-doc")), "-t", "connection", "nspawn"], env=env,
              cwd=CHECKOUT).stdout
    assert str(CHECKOUT / "connection_plugins" / "nspawn.py") in doc and "nspawn_container" in doc
