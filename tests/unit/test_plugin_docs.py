"""The connection plugin's DOCUMENTATION is its options schema: check it against ansible-core."""
import yaml
from ansible.plugins.connection import ssh

from ansible_nspawn_fast.plugins import CONNECTION_DIR

# The file Ansible loads (also through the checkout's connection_plugins/ and the collection).
SHIM = CONNECTION_DIR / "nspawn.py"


def shim_documentation() -> dict:
    namespace: dict = {}
    source = SHIM.read_text()
    start = source.index('DOCUMENTATION = r"""')
    exec(source[start:source.index('"""', start + 20) + 3], namespace)
    return yaml.safe_load(namespace["DOCUMENTATION"])


def var_names(option: dict) -> list[str]:
    return [v["name"] for v in option.get("vars", [])]


def test_every_ssh_variable_reaches_the_ssh_hop():
    """Ansible passes a plugin only the variables its DOCUMENTATION names; the SSH hop
    reads them from ours, so every variable of the installed ssh plugin must be declared."""
    ours = shim_documentation()["options"]
    theirs = yaml.safe_load(ssh.DOCUMENTATION)["options"]
    for name, option in theirs.items():
        assert name in ours, f"ssh option {name} is missing from the nspawn DOCUMENTATION"
        missing = set(var_names(option)) - set(var_names(ours[name]))
        assert not missing, f"{name}: variables {missing} are not declared"
        if "keyword" in option:
            assert ours[name].get("keyword") == option["keyword"], name


def test_seed_plugin_inventory_variables_are_declared():
    ours = shim_documentation()["options"]
    declared = {v for option in ours.values() for v in var_names(option)}
    for var in ("ansible_nspawn_container", "ansible_host", "ansible_user", "ansible_port",
                "ansible_ssh_common_args", "ansible_pipelining", "ansible_nspawn_directory",
                "ansible_nspawn_args", "ansible_ssh_private_key_file", "ansible_ssh_extra_args"):
        assert var in declared, var


def test_container_defaults_to_inventory_hostname_and_the_explicit_name_wins():
    container = shim_documentation()["options"]["nspawn_container"]
    # Ansible lets the last listed variable win.
    assert var_names(container) == ["inventory_hostname", "ansible_nspawn_container"]


def test_readme_documents_every_nspawn_option(pytestconfig):
    readme = (pytestconfig.rootpath / "README.md").read_text()
    for name, option in shim_documentation()["options"].items():
        if name.startswith("nspawn_"):
            assert f"| `{name}` |" in readme, f"{name} is missing from README's option table"
            for var in var_names(option):
                assert var in readme, f"{var} is missing from README"
