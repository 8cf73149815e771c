"""The collection nspawn_fast.nspawn, staged from the package's own plugin files."""
from __future__ import annotations

import tomllib

import yaml

from ansible_nspawn_fast import plugins
from nspawn_fast_dev import CHECKOUT, collection

PLUGIN_FILES = {"connection": ["nspawn.py"], "strategy": ["nspawn_free.py", "nspawn_linear.py"],
                "modules": ["nspawn_machine.py"]}


def test_collection_is_the_package_files_with_metadata(tmp_path):
    version = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["version"]
    assert collection.version() == version
    tree = collection.stage(tmp_path)
    assert tree == tmp_path / "ansible_collections" / "nspawn_fast" / "nspawn"
    assert plugins.COLLECTION == "nspawn_fast.nspawn"
    for kind, names in PLUGIN_FILES.items():
        assert sorted(p.name for p in (tree / "plugins" / kind).iterdir()) == names
        for name in names:
            assert (tree / "plugins" / kind / name).read_bytes() == (plugins.HERE / kind / name).read_bytes()
    assert (tree / "LICENSE").read_bytes() == (CHECKOUT / "LICENSE").read_bytes()
    assert yaml.safe_load((tree / "meta" / "runtime.yml").read_text()) == {"requires_ansible": ">=2.17"}
    galaxy = yaml.safe_load((tree / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"], galaxy["license"]) == ("nspawn_fast", "nspawn", ["GPL-3.0-or-later"])
