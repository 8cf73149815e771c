"""The Ansible collection nspawn_fast.nspawn, built from the package's own plugin files.

    python -m nspawn_fast_dev.collection build [--out DIR]    DIR/nspawn_fast-nspawn-VERSION.tar.gz
    python -m nspawn_fast_dev.collection sanity [ARGS...]     ansible-test sanity on the built collection

The collection is collection/ (galaxy.yml, meta/runtime.yml, README, CHANGELOG), the repository's
LICENSE and every plugin and module file of ansible_nspawn_fast/plugins/<type>/ (connection,
strategy, inventory, modules; the package this interpreter imports: the checkout's, installed
editable or on PYTHONPATH), copied unchanged to plugins/<type>/ of
ansible_collections/nspawn_fast/nspawn/ in a temporary dir, and built there
with ansible-galaxy. `sanity` installs that tarball with ansible-galaxy and runs
`ansible-test sanity --python X.Y` of this interpreter in it (ARGS go to ansible-test; without
ARGS: `--local --requirements`, no container; ansible-test installs each test's requirements
into venvs of its own under ~/.ansible/test/venv).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

from ansible_nspawn_fast.plugins import COLLECTION, plugin_files

from . import CHECKOUT

NAMESPACE, NAME = COLLECTION.split(".")
SOURCE = CHECKOUT / "collection"


class BuildError(Exception):
    pass


def version() -> str:
    """The collection's version: galaxy.yml's, which must be the package's."""
    ours = yaml.safe_load((SOURCE / "galaxy.yml").read_text())["version"]
    package = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["version"]
    if ours != package:
        raise BuildError(f"collection/galaxy.yml has version {ours}, pyproject.toml {package}: "
                         "make them equal")
    return ours


def stage(root: Path) -> Path:
    """The collection's tree under root/ansible_collections/NAMESPACE/NAME; returns that dir."""
    version()
    dest = root / "ansible_collections" / NAMESPACE / NAME
    shutil.copytree(SOURCE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.tar.gz"))
    shutil.copyfile(CHECKOUT / "LICENSE", dest / "LICENSE")
    for kind, files in plugin_files().items():  # modules too: plugins/modules/ in a collection
        (dest / "plugins" / kind).mkdir(parents=True)
        for f in files:
            shutil.copyfile(f, dest / "plugins" / kind / f.name)
    return dest


def _tool(name: str) -> str:
    """ansible-galaxy or ansible-test of this interpreter's ansible-core."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise BuildError(f"{name} is not installed here (pip install ansible-core)")
    return found


def build(out: Path) -> Path:
    """Build the tarball into `out`; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nf-collection-") as tmp:
        tree = stage(Path(tmp))
        subprocess.run([_tool("ansible-galaxy"), "collection", "build", str(tree), "--output-path",
                        str(out), "--force"], check=True, stdout=subprocess.DEVNULL)
    tarball = out / f"{NAMESPACE}-{NAME}-{version()}.tar.gz"
    if not tarball.is_file():
        raise BuildError(f"ansible-galaxy wrote no {tarball}")
    return tarball


# ansible-test bootstraps pip into each sanity test's own virtualenv with a get-pip script it
# downloads from ansible's CI file server once and caches. This project's machines reach only
# the package registries, so a stand-in goes into that cache before ansible-test runs (nothing
# else is contacted): pip from Python's own ensurepip, then the pinned versions ansible-test
# asks for, from PyPI.
GET_PIP_STANDIN = """\
# Written by nspawn_fast_dev.collection in place of ansible-test's downloaded get-pip script.
# Does what get-pip.py does: pip into this (empty) virtualenv, then the packages asked for.
import subprocess
import sys

# get-pip's own --no-setuptools/--no-wheel (skip its implicit extras) are no pip options: dropped.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--upgrade", "--force-reinstall", *args])
"""


def seed_pip_bootstrap(python: str) -> None:
    """Make sure ansible-test's cache holds the get-pip script its sanity venvs start from."""
    import types

    from ansible_test._internal.python_requirements import get_venv_packages

    pip = get_venv_packages(types.SimpleNamespace(version=python))["pip"]
    cached = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{pip.replace('.', '_')}.py"
    if cached.exists():
        return  # the real script (a machine that downloaded it), or this stand-in
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(GET_PIP_STANDIN)


def sanity(args: list[str]) -> int:
    """ansible-test sanity on the built and installed collection; its exit status."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    seed_pip_bootstrap(python)
    with tempfile.TemporaryDirectory(prefix="nf-sanity-") as tmp:
        tarball = build(Path(tmp) / "dist")
        subprocess.run([_tool("ansible-galaxy"), "collection", "install", str(tarball), "-p",
                        str(Path(tmp) / "collections"), "--force"], check=True, stdout=subprocess.DEVNULL)
        tree = Path(tmp) / "collections" / "ansible_collections" / NAMESPACE / NAME
        argv = [_tool("ansible-test"), "sanity", "--python", python,
                *(args or ["--local", "--requirements"])]
        print(f"nspawn_fast_dev.collection: {' '.join(argv)} in {tree}", flush=True)
        return subprocess.call(argv, cwd=tree)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nspawn_fast_dev.collection", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the collection tarball")
    b.add_argument("--out", type=Path, default=CHECKOUT / "dist",
                   help="where the tarball goes (default: dist/ of the checkout)")
    sub.add_parser("sanity", help="ansible-test sanity on the built collection; the arguments after it "
                                  "go to ansible-test (default: --local --requirements)")
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `sanity` is ansible-test's, options included.
    args = p.parse_args(argv[:1] if argv[:1] == ["sanity"] else argv)
    try:
        if args.cmd == "build":
            print(build(args.out.absolute()))
            return 0
        return sanity(argv[1:])
    except (BuildError, subprocess.CalledProcessError) as e:
        print(f"nspawn_fast_dev.collection: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
