"""The connection plugin's DOCUMENTATION is its options schema: check it against ansible-core,
and the SSH settings each path honours against the list in docs/architecture.md."""
import functools
import re
from pathlib import Path

import pytest
import yaml
from ansible.plugins.connection import ssh
from ansible.release import __version__ as ansible_version

from ansible_nspawn_fast import enter, host
from ansible_nspawn_fast.plugins import CONNECTION_DIR

# The file Ansible loads (also through the checkout's connection_plugins/ and the collection).
SHIM = CONNECTION_DIR / "nspawn.py"


@functools.cache
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


# -- the SSH settings of each path, as docs/architecture.md lists them ---------------------------

ARCHITECTURE = Path(__file__).resolve().parents[4] / "docs" / "architecture.md"
ANSIBLE_CORE = tuple(int(n) for n in ansible_version.split(".")[:2])
# What the ssh plugin applies around the command rather than in its argv (retries, password and
# key plumbing: sshpass, askpass, ssh-agent): on the plugin path it is enough that it gets them.
AROUND_THE_ARGV = {"reconnection_retries", "password", "password_mechanism", "sshpass_prompt",
                   "private_key", "private_key_passphrase", "pkcs11_provider"}
# A value for each option that differs from its default and is valid for it.
FAKE = {"ssh_args": "-o Fake=1", "ssh_common_args": "-o Fake=2", "ssh_extra_args": "-o Fake=3",
        "password_mechanism": "sshpass", "ssh_transfer_method": "piped", "mitogen_ssh_compression": False}
FAKE_BY_TYPE = {"int": 7, "integer": 7, "bool": False, "boolean": False}


def ssh_table() -> dict[str, tuple[str, str]]:
    """{variable: (plugin path cell, nspawn_linear cell)} of the table in docs/architecture.md."""
    text = ARCHITECTURE.read_text()
    section = text[text.index("## SSH settings on each path"):]
    section = section[:section.index("\n## ")]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            for var in re.findall(r"`([a-z0-9_]+)`", cells[0]):
                rows[var] = (cells[1], cells[2])
    return rows


def claims(cell: str) -> bool:
    """A cell's yes (honoured there, by the ansible-core it names and later) or no / not used."""
    return cell.startswith("yes") and (ANSIBLE_CORE >= (2, 19) or not cell.startswith("yes, ansible-core 2.19"))


def ssh_options() -> dict[str, dict]:
    """The SSH hop's options in the plugin's DOCUMENTATION (pipelining is the connection's own)."""
    return {k: v for k, v in shim_documentation()["options"].items()
            if not k.startswith("nspawn_") and k != "pipelining"}


def option_of(var: str) -> str | None:
    return next((k for k, o in ssh_options().items() if var in var_names(o)), None)


def fake_value(var: str, tmp_path: Path):
    option = option_of(var) or var
    if option == "control_path_dir":
        return str(tmp_path / "other-cp")
    return FAKE.get(option, FAKE_BY_TYPE.get(ssh_options().get(option, {}).get("type"), "fake-value"))


BASE = {"inventory_hostname": "web", "ansible_python_interpreter": "/usr/bin/python3"}
RECORD = f"NSPAWN-FAST-LEADER {enter.RUN_NONCE} 4242 99 systemd-nspawn@web.service /usr/bin\n".encode()


def plugin_path(make, variables: dict, monkeypatch, tmp_path: Path, build_argv: bool = True):
    """(the ssh argv of a command and of a file transfer, the ssh plugin instance): the real
    flow of the plugin's Connection, stopped where ssh would be started."""
    conn = make(variables)
    conn._connect()
    hop, argvs = conn._hop, []
    if build_argv:
        hop._run = lambda cmd, *a, **kw: argvs.append([bytes(x) for x in cmd]) or (0, b"", RECORD)
        monkeypatch.setattr(host, "_stream_argv", lambda argv, *a, **kw: argvs.append([bytes(x) for x in argv])
                            or (0, b""))
        conn.exec_command("true")
        src = tmp_path / "file"
        src.write_bytes(b"x")
        conn.put_file(str(src), "/root/file")
    nonce = conn._rnonce.encode()  # this task's, random: the same for the comparison
    return [[arg.replace(nonce, b"RNONCE") for arg in argv] for argv in argvs], hop


def linear_path(make, variables: dict) -> dict:
    """The connection arguments of nspawn_linear's SSH hop to the host (mitogen's ssh method)."""
    conn = make(variables, linear=True)
    hop, = conn._host_stack(conn._nspawn_target())
    assert hop["method"] == "ssh"
    return hop["kwargs"]


def test_the_table_lists_every_ssh_option_the_plugin_declares():
    table = ssh_table()
    for name, option in ssh_options().items():
        assert set(var_names(option)) & set(table), f"{name} ({var_names(option)}) is not in the table"
    for var in table:
        assert var.startswith("mitogen_") or option_of(var), f"{var} is not declared in DOCUMENTATION"
        assert not (var.startswith("mitogen_") and option_of(var)), f"{var} is mitogen's own task variable"


def test_the_plugin_documentation_says_what_the_table_says():
    for var, (plugin, _) in ssh_table().items():
        if var.startswith("mitogen_"):
            continue
        said = ssh_options()[option_of(var)].get("description", "")
        said = " ".join(said) if isinstance(said, list) else said
        assert plugin.startswith("not used") == said.startswith("Not used"), var
        if plugin.startswith("yes, ansible-core 2.19 and later"):
            assert "2.19 and later" in said, var


@pytest.mark.parametrize("var", sorted(ssh_table()))
def test_each_path_honours_the_variables_the_table_says(var, nspawn_connection, monkeypatch, tmp_path):
    plugin_claim, linear_claim = (claims(cell) for cell in ssh_table()[var])
    base = {**BASE, "ansible_control_path_dir": str(tmp_path / "cp")}  # ssh's ControlPath dir is made
    changed = {**base, var: fake_value(var, tmp_path)}
    option = option_of(var)

    outside = option in AROUND_THE_ARGV
    argvs, hop = plugin_path(nspawn_connection, changed, monkeypatch, tmp_path, build_argv=not outside)
    try:
        got = hop.get_option(option) == changed[var] if option else False
    except KeyError:  # an option this ansible-core's ssh plugin does not have
        got = False
    if outside:
        assert got is plugin_claim, f"plugin path: the ssh plugin {'does not get' if plugin_claim else 'gets'} {var}"
    else:
        before, _ = plugin_path(nspawn_connection, base, monkeypatch, tmp_path)
        assert (argvs != before) is plugin_claim, (var, before, argvs)

    before_kwargs, after_kwargs = linear_path(nspawn_connection, base), linear_path(nspawn_connection, changed)
    assert (after_kwargs != before_kwargs) is linear_claim, (var, before_kwargs, after_kwargs)


def test_host_keys_are_checked_by_default_on_both_paths(nspawn_connection, monkeypatch, tmp_path):
    argvs, _ = plugin_path(nspawn_connection, BASE, monkeypatch, tmp_path)
    assert all(b"StrictHostKeyChecking=no" not in argv for argv in argvs)
    assert linear_path(nspawn_connection, BASE)["check_host_keys"] == "enforce"
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")  # as ansible-core's own setting
    assert linear_path(nspawn_connection, BASE)["check_host_keys"] == "ignore"


def test_ansible_cfg_and_environment_ssh_arguments_count_on_both_paths(nspawn_connection, monkeypatch, tmp_path):
    monkeypatch.setenv("ANSIBLE_SSH_COMMON_ARGS", "-o FromEnvironment=1")
    argvs, _ = plugin_path(nspawn_connection, BASE, monkeypatch, tmp_path)
    assert argvs and all(b"FromEnvironment=1" in argv for argv in argvs)
    assert "FromEnvironment=1" in linear_path(nspawn_connection, BASE)["ssh_args"]


def test_the_linear_host_connection_never_joins_a_control_master(nspawn_connection, monkeypatch, tmp_path):
    """Its own connection whatever the user's arguments say: ssh takes an option's first value."""
    for variables in (BASE, {**BASE, "ansible_ssh_args": "-o ControlMaster=auto -o ControlPersist=60s",
                             "ansible_ssh_common_args": "-o ControlPath=/x/%C"}):
        args = linear_path(nspawn_connection, variables)["ssh_args"]
        paths = [a for a in args if "controlpath" in a.lower()]
        assert args[:2] == ["-o", "ControlPath=none"] and paths[0] == "ControlPath=none", args
    monkeypatch.setenv("ANSIBLE_SSH_ARGS", "-C -o ControlMaster=auto -o ControlPersist=60s")
    assert linear_path(nspawn_connection, BASE)["ssh_args"] == ["-o", "ControlPath=none"]
