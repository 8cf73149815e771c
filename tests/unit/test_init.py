"""The package ansible_nspawn_fast as a whole: a runtime that imports no development code, its
licence, and its unit tests, which run with neither the development package nor a lab."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import ansible_nspawn_fast

# The checkout these tests run in (tests/unit/ is two levels below it).
CHECKOUT = Path(__file__).resolve().parents[2]


def test_the_runtime_imports_no_development_code():
    package = Path(ansible_nspawn_fast.__file__).parent
    modules = sorted(".".join(p.relative_to(package.parent).with_suffix("").parts) for p in package.rglob("*.py")
                     if p.name != "__init__.py" and "plugins" not in p.relative_to(package).parts)
    probe = ("import importlib, sys\n"
             f"for m in {modules!r}: importlib.import_module(m)\n"
             "dev = sorted(m for m in sys.modules if m.startswith('nspawn_fast_dev'))\n"
             "sys.exit(f'the runtime imported {dev}' if dev else 0)\n")
    cp = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/")
    assert cp.returncode == 0, cp.stderr


def test_the_license_is_gpl3_or_later():
    project = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "GPL-3.0-or-later"
    assert "GNU GENERAL PUBLIC LICENSE\n                       Version 3" in (CHECKOUT / "LICENSE").read_text()


def test_the_runtime_unit_tests_run_without_development_code(request, tmp_path):
    """tests/unit without dev/ passes where nspawn_fast_dev and matplotlib cannot be imported
    and no lab exists: what a checkout-less user of the wheel can run."""
    me = request.node.nodeid  # not run again in there
    run = ("import sys\n"
           "for name in ('nspawn_fast_dev', 'matplotlib'): sys.modules[name] = None  # import fails\n"
           "import pytest\n"
           f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'tests/unit', '--ignore=tests/unit/dev', "
           f"'--deselect', {me!r}]))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NSPAWN_FAST_", "PYTEST_"))}
    env["NSPAWN_FAST_LAB_DIR"] = str(tmp_path / "no-lab")
    cp = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, cwd=CHECKOUT, env=env,
                        timeout=600)
    assert cp.returncode == 0, cp.stdout[-4000:] + cp.stderr[-2000:]



# -- docs/architecture.md: what it says of the package ------------------------------------------
ARCHITECTURE = CHECKOUT / "docs" / "architecture.md"
PACKAGE = Path(ansible_nspawn_fast.__file__).parent
NOT_PRIVATE = {"_exit"}  # os._exit


def _others_private_names() -> dict[str, set[str]]:
    """{private attribute or module the runtime reaches on someone else's object: files using it}.

    Private names the package defines itself (a method, an attribute it assigns, an override of
    a private method) are its own; the rest belong to ansible-core or mitogen.
    """
    used: dict[str, set[str]] = {}
    own: set[str] = set()
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                own.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if isinstance(node.ctx, ast.Store):
                    own.add(node.attr)
                used.setdefault(node.attr, set()).add(rel)
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if alias.name.startswith("_"):
                        used.setdefault(alias.name, set()).add(rel)
                if any(part.startswith("_") and not part.startswith("__") for part in node.module.split(".")):
                    used.setdefault(node.module, set()).add(rel)
    return {name: files for name, files in used.items() if name not in own and name not in NOT_PRIVATE}


def test_architecture_names_every_private_api_the_runtime_uses():
    text = ARCHITECTURE.read_text()
    section = text[text.index("## Private APIs used, and the pins"):]
    found = _others_private_names()
    assert {"_connect_ssh", "_build_command", "_proxy_connect"} <= set(found)  # the scan finds them
    for name, files in sorted(found.items()):
        assert name in section, f"{name} (used in {sorted(files)}) is not named in architecture.md's private APIs"


def test_architecture_names_only_files_of_the_repository():
    text = ARCHITECTURE.read_text()
    for link in re.findall(r"\]\(([^)#]+)", text):
        if "://" not in link:
            assert (ARCHITECTURE.parent / link).exists(), link
    for path in re.findall(r"`([A-Za-z_./-]+\.(?:py|sh|md|toml|yml|ini))`", text):
        here = [CHECKOUT / path, PACKAGE / path, ARCHITECTURE.parent / path]
        assert any(p.exists() for p in here), f"architecture.md names {path}, which is not in the repository"
