"""The Ansible plugins this package ships, as files Ansible loads by path.

connection/nspawn.py (the connection, with its DOCUMENTATION), strategy/nspawn_linear.py and
strategy/nspawn_free.py, inventory/nspawn.py (every machine on a list of hosts) and the module
modules/nspawn_machine.py (creates, starts, stops and removes a machine on a host). Ansible finds
them through `connection_plugins =`, `strategy_plugins =`, `inventory_plugins =` and `library =`
in ansible.cfg (`nspawn-fast ansible-cfg` prints those lines for this install), or as the
collection nspawn_fast.nspawn, which is built from these same files.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
CONNECTION_DIR = HERE / "connection"
STRATEGY_DIR = HERE / "strategy"
INVENTORY_DIR = HERE / "inventory"
MODULES_DIR = HERE / "modules"

# ansible.cfg's name for the path of each kind's dir: `<kind>_plugins`, but modules are `library`.
CFG_KEYS = {"modules": "library"}

# The collection built from these files (collection/galaxy.yml in the repository): its plugins
# are nspawn_fast.nspawn.nspawn, nspawn_fast.nspawn.nspawn_linear and nspawn_fast.nspawn.nspawn_free.
COLLECTION = "nspawn_fast.nspawn"


def plugin_files() -> dict[str, list[Path]]:
    """{plugin type: its files}, as Ansible loads them (no __init__.py), e.g. {"connection": [...]}."""
    out = {}
    for kind in sorted(p for p in HERE.iterdir() if p.is_dir() and p.name != "__pycache__"):
        files = sorted(f for f in kind.glob("*.py") if f.name != "__init__.py")
        if files:
            out[kind.name] = files
    return out


def ansible_cfg() -> str:
    """ansible.cfg lines that make Ansible load this install's plugins by their short names."""
    paths = "\n".join(f"{CFG_KEYS.get(kind, kind + '_plugins')} = {HERE / kind}" for kind in plugin_files())
    return f"""\
# ansible-nspawn-fast {_version()} in {HERE.parent}: its plugins by their short names
# (ansible_connection: nspawn; strategy nspawn_linear, or nspawn_free; module nspawn_machine).
# Where ansible.cfg names other plugin dirs already, add these with ':'.
[defaults]
{paths}
strategy = nspawn_linear

# Or, instead of the plugin paths: the collection {COLLECTION}, built from the same files.
# Its plugins import this package: keep it installed where ansible-playbook runs.
#   ansible-galaxy collection install {COLLECTION.replace('.', '-')}-VERSION.tar.gz
#   ansible_connection: {COLLECTION}.nspawn        (inventory)
#   strategy = {COLLECTION}.nspawn_linear          (ansible.cfg)
#   {COLLECTION}.nspawn_machine:                   (a task on a host)
"""


def _version() -> str:
    from importlib import metadata
    try:
        return metadata.version("ansible-nspawn-fast")
    except metadata.PackageNotFoundError:
        return "(not installed)"
