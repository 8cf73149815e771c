"""ansible_nspawn_fast/plugins/__init__.py: the plugin files the package ships (the checkout's
connection_plugins/ and strategy_plugins/ link to them), the ansible.cfg lines that load them,
and how each loads where the package cannot be imported. The collection: dev/test_collection.py."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleError

from ansible_nspawn_fast import cli, plugins

# The checkout these tests run in (tests/unit/plugins/ is three levels below it).
CHECKOUT = Path(__file__).resolve().parents[3]
PLUGIN_FILES = {"connection": ["nspawn.py"], "strategy": ["nspawn_free.py", "nspawn_linear.py"]}


def test_the_package_ships_each_plugin_and_the_checkout_links_to_it():
    found = {kind: [f.name for f in files] for kind, files in plugins.plugin_files().items()}
    for kind, names in PLUGIN_FILES.items():
        assert found[kind] == names
        for name in names:
            shim = CHECKOUT / f"{kind}_plugins" / name
            assert shim.is_symlink(), f"{shim} should be a symlink to the package's file"
            assert shim.resolve() == plugins.HERE / kind / name


def test_every_plugin_documents_itself_under_its_file_name():
    for files in plugins.plugin_files().values():
        for f in files:
            docs = next(n.value.value for n in ast.parse(f.read_text()).body
                        if isinstance(n, ast.Assign) and n.targets[0].id == "DOCUMENTATION")
            doc = yaml.safe_load(docs)
            name = doc["module"] if f.parent.name == "modules" else doc["name"]
            assert name == f.stem and doc["short_description"], f


def test_ansible_cfg_names_this_installs_plugin_dirs_and_the_collection(capsys):
    assert cli.main(["ansible-cfg"]) == 0
    text = capsys.readouterr().out
    assert f"connection_plugins = {plugins.CONNECTION_DIR}\n" in text
    assert f"strategy_plugins = {plugins.STRATEGY_DIR}\n" in text
    assert f"library = {plugins.MODULES_DIR}\n" in text and "modules_plugins" not in text
    assert "\nstrategy = nspawn_linear\n" in text
    assert "ansible_connection: nspawn_fast.nspawn.nspawn" in text
    assert "strategy = nspawn_fast.nspawn.nspawn_linear" in text


def _load_without_the_package(monkeypatch, path: Path):
    """Load a plugin file as Ansible does, where ansible_nspawn_fast cannot be imported."""
    for name in [m for m in sys.modules if m == "ansible_nspawn_fast" or m.startswith("ansible_nspawn_fast.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "ansible_nspawn_fast", None)
    spec = importlib.util.spec_from_file_location(f"nf_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind, name", [(k, n) for k, names in PLUGIN_FILES.items() for n in names])
def test_without_the_package_each_plugin_loads_and_says_what_to_install(monkeypatch, kind, name):
    module = _load_without_the_package(monkeypatch, plugins.HERE / kind / name)
    cls = module.Connection if kind == "connection" else module.StrategyModule
    # As Ansible's plugin loader makes it: object.__new__ (an abstract class would fail here and
    # be reported as "not found"), then __init__.
    instance = object.__new__(cls)
    with pytest.raises(AnsibleError, match="pip install ansible-nspawn-fast"):
        cls.__init__(instance, None, None) if kind == "connection" else cls.__init__(instance, None)
