"""The nspawn inventory plugin without a lab: parsing (JSON and text machinectl), refused
names, collisions, groups; the listing script run by sh against fake machinectl/busctl
(JSON on systemd 252, text columns on 239); and the plugin through real ansible-inventory
with a fake ssh (down hosts, hostile names and os-release, strict, cache)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ansible_nspawn_fast import inventory as inv
from ansible_nspawn_fast.errors import ConfigError, NspawnError

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# --- what machinectl/busctl print (systemd 252 on the lab's hosts; 239 text columns) -------
LIST_JSON = json.dumps([
    {"machine": "web", "class": "container", "service": "systemd-nspawn", "os": "debian",
     "version": "12", "addresses": None},
    {"machine": "db", "class": "container", "service": "systemd-nspawn", "os": "ubuntu",
     "version": "24.04", "addresses": "10.0.0.2"},
    {"machine": "win", "class": "vm", "service": "libvirt-qemu", "os": None, "version": None,
     "addresses": None},
], separators=(",", ":"))
IMAGES_JSON = json.dumps([
    {"name": "web", "type": "directory", "ro": False, "usage": None, "created": 1, "modified": 0},
    {"name": "db", "type": "subvolume", "ro": False, "usage": 3, "created": 1, "modified": 0},
    {"name": "old", "type": "raw", "ro": True, "usage": None, "created": 1, "modified": 0},
])
LIST_TEXT_239 = (
    "web       container systemd-nspawn debian 12      10.0.0.1\n"
    "                                                  fe80::1\n"  # a further address
    "db        container systemd-nspawn ubuntu 24.04   -\n"
    "odd       container systemd-nspawn my os  1       -\n"  # ID with a space: columns shift
)
IMAGES_TEXT_252 = (
    "web directory no       Fri 2026-11-27 17:57:56 UTC -\n"  # USAGE blank
    "old raw       yes 1.2G Fri 2026-11-27 17:57:56 UTC Sat 2026-11-28 10:00:00 UTC\n"
)
OS_JSON = ('{"type":"a{ss}","data":[{"PRETTY_NAME":"Debian GNU/Linux 12 (bookworm)",'
           '"NAME":"Debian GNU/Linux","VERSION_ID":"12","ID":"debian"}]}')
OS_TEXT = r'a{ss} 3 "PRETTY_NAME" "Debian \"GNU\"/Linux 12\\ok\t(x)" "ID" "debian" "VERSION_ID" "12"'


def spec(label: str = "h1", name: str = "127.0.0.1", **kw) -> inv.HostSpec:
    return inv.HostSpec(name=name, label=label, **kw)


# --- plugin name and config file --------------------------------------------------------
@pytest.mark.parametrize("name", ["nspawn", "ansible_nspawn_fast.nspawn.nspawn", "a.b.nspawn"])
def test_plugin_names_accepted(name):
    assert inv.is_plugin_name(name) and name in inv.AcceptedPluginNames(["nspawn"])


@pytest.mark.parametrize("name", ["nspawnx", "a.b.nspawn2", "", None, "docker", "a.nspawn.x"])
def test_plugin_names_refused(name):
    assert not inv.is_plugin_name(name) and name not in inv.AcceptedPluginNames(["nspawn"])


@pytest.mark.parametrize("path,ok", [("lab.nspawn.yml", True), ("/x/fleet.nspawn.yaml", True),
                                     ("nspawn.yml", True), ("lab.yml", False),
                                     ("labnspawn.yml", False), ("lab.nspawn.yml.bak", False)])
def test_config_file_names(path, ok):
    assert inv.is_config_path(path) is ok


# --- machinectl list --------------------------------------------------------------------
def test_machine_list_json():
    machines, warnings = inv.parse_machine_list(LIST_JSON)
    assert warnings == []
    assert [(m.name, m.machine_class, m.os_id, m.os_version, m.state) for m in machines] == [
        ("web", "container", "debian", "12", "running"),
        ("db", "container", "ubuntu", "24.04", "running"),
        ("win", "vm", None, None, "running")]


def test_machine_list_text_columns_of_older_systemd():
    machines, warnings = inv.parse_machine_list(LIST_TEXT_239)
    assert warnings == []
    got = {m.name: (m.machine_class, m.service, m.os_id, m.os_version) for m in machines}
    # the address continuation line is not a machine; a shifted row keeps name and class only
    assert got == {"web": ("container", "systemd-nspawn", "debian", "12"),
                   "db": ("container", "systemd-nspawn", "ubuntu", "24.04"),
                   "odd": ("container", "systemd-nspawn", None, None)}


def test_empty_listings():
    assert inv.parse_machine_list("") == ([], [])
    assert inv.parse_machine_list("[]") == ([], [])
    assert inv.parse_image_list("") == ({}, [])


ODD_NAMES = ["web;touch /tmp/x", "a b", "$(id)", "../etc", "-rf", "{{ lookup('pipe','id') }}",
             "x" * 65, "web\nevil", "wéb", 7, None]


@pytest.mark.parametrize("bad", ODD_NAMES)
def test_odd_machine_names_are_refused_with_a_warning(bad):
    rows = [{"machine": bad, "class": "container"}, {"machine": "ok", "class": "container"}]
    machines, warnings = inv.parse_machine_list(json.dumps(rows))
    assert [m.name for m in machines] == ["ok"]
    assert len(warnings) == 1 and "not valid" in warnings[0]
    images, warnings = inv.parse_image_list(json.dumps([{"name": bad, "type": "raw"},
                                                        {"name": "ok", "type": "raw"}]))
    assert list(images) == ["ok"] and len(warnings) == 1


def test_odd_names_in_text_columns_are_refused():
    machines, warnings = inv.parse_machine_list("web;id container x - - -\nok container x - - -\n")
    assert [m.name for m in machines] == ["ok"] and "web;id" in warnings[0]


def test_the_host_itself_is_never_a_machine_and_duplicates_are_dropped():
    rows = [{"machine": ".host", "class": "host"}, {"machine": "a"}, {"machine": "a"}]
    machines, warnings = inv.parse_machine_list(json.dumps(rows))
    assert [m.name for m in machines] == ["a"]
    assert warnings == ["machinectl list reports machine a twice; the first is kept"]


def test_bad_json_is_an_error():
    with pytest.raises(NspawnError):
        inv.parse_machine_list("[{")
    with pytest.raises(NspawnError):
        inv.parse_image_list('[1, "x"')


def test_reported_fields_are_data_one_word_only():
    rows = [{"machine": "a", "class": "container\nx", "os": "{{ 7*7 }}", "version": "1 2"}]
    (m,), _ = inv.parse_machine_list(json.dumps(rows))
    assert (m.machine_class, m.os_id, m.os_version) == (None, None, None)


# --- machinectl list-images -------------------------------------------------------------
def test_image_list_json_and_text():
    assert inv.parse_image_list(IMAGES_JSON) == ({"web": "directory", "db": "subvolume",
                                                  "old": "raw"}, [])
    assert inv.parse_image_list(IMAGES_TEXT_252) == ({"web": "directory", "old": "raw"}, [])


# --- os-release through busctl ----------------------------------------------------------
def test_os_release_json_and_text():
    assert inv.parse_os_release(OS_JSON)["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
    text = inv.parse_os_release(OS_TEXT)
    assert text == {"PRETTY_NAME": 'Debian "GNU"/Linux 12\\ok\t(x)', "ID": "debian",
                    "VERSION_ID": "12"}
    assert inv.parse_os_release("Failed to get machine OS release") == {}
    assert inv.parse_os_release("{not json") == {}


# --- the framed listing -----------------------------------------------------------------
def frame(*fields: str) -> bytes:
    return "".join(f + "\0" for f in fields).encode()


def listing_bytes(list_out=LIST_JSON, images=IMAGES_JSON, os_out=None, list_rc="0",
                  images_rc="0") -> bytes:
    os_fields: list[str] = []
    for name, text in (os_out or {"web": OS_JSON}).items():
        os_fields += ["os", name, "0", text]
    return frame("nspawn-fast-inventory", "1", "systemd", "252", "list", list_rc, list_out,
                 "images", images_rc, images, *os_fields, "end")


def test_listing_framing():
    raw = inv.parse_listing_output(listing_bytes())
    assert raw["systemd"] == 252 and raw["list"] == (0, LIST_JSON)
    assert raw["os"] == {"web": (0, OS_JSON)}


@pytest.mark.parametrize("data", [
    b"", b"hello\0", frame("nspawn-fast-inventory", "1", "systemd", "252"),  # no end
    listing_bytes()[:-3], frame("nspawn-fast-inventory", "1", "bogus", "end"),
    frame("nspawn-fast-inventory", "1", "end"),  # no list
    frame("nspawn-fast-inventory", "1", "list", "zero", "x", "end"),
])
def test_broken_listings_are_errors(data):
    with pytest.raises(NspawnError):
        inv.parse_listing_output(data)


def test_machines_running_stopped_and_their_os():
    machines, warnings = inv.machines_from_listing(inv.parse_listing_output(listing_bytes()))
    assert warnings == []
    got = {m.name: (m.state, m.machine_class, m.os_id, m.os_version, m.os_pretty_name,
                    m.image_type) for m in machines}
    assert got == {
        "web": ("running", "container", "debian", "12", "Debian GNU/Linux 12 (bookworm)",
                "directory"),
        "db": ("running", "container", "ubuntu", "24.04", None, "subvolume"),
        "win": ("running", "vm", None, None, None, None),
        "old": ("stopped", None, None, None, None, "raw")}
    assert [m.name for m in machines] == sorted(got)
    running, _ = inv.machines_from_listing(inv.parse_listing_output(listing_bytes()),
                                           include_stopped=False)
    assert "old" not in {m.name for m in running}


def test_hostile_os_release_stays_data():
    pretty = "{{ lookup('pipe', 'touch /tmp/pwned') }}\x1b[31m\nline2" + "x" * 500
    hostile = json.dumps({"type": "a{ss}", "data": [{"ID": "evil os", "VERSION_ID": "1;id",
                                                     "PRETTY_NAME": pretty}]})
    raw = inv.parse_listing_output(listing_bytes(os_out={"web": hostile}))
    web = next(m for m in inv.machines_from_listing(raw)[0] if m.name == "web")
    # not one word: machinectl's own columns stay; the pretty name is cleaned and bounded
    assert (web.os_id, web.os_version) == ("debian", "12")
    assert "\x1b" not in web.os_pretty_name and "\n" not in web.os_pretty_name
    assert len(web.os_pretty_name) <= inv.MAX_FIELD


def test_failed_list_is_an_error_and_failed_images_a_warning():
    with pytest.raises(NspawnError, match="exit 127.*not found"):
        inv.machines_from_listing(inv.parse_listing_output(
            listing_bytes(list_out="sh: machinectl: not found", list_rc="127")))
    machines, warnings = inv.machines_from_listing(inv.parse_listing_output(
        listing_bytes(images="Access denied", images_rc="1")))
    assert {m.state for m in machines} == {"running"}
    assert "list-images` failed" in warnings[0]


# --- hosts config -----------------------------------------------------------------------
def test_host_items():
    s = inv.host_spec_from_item({"name": "server1.example.com", "port": "2222", "user": "root",
                                 "private_key_file": "~/.ssh/k", "ssh_common_args": "-o A=b",
                                 "sudo": "yes"}, 0)
    assert s == inv.HostSpec(name="server1.example.com", label="server1.example.com",
                             port=2222, user="root", private_key_file="~/.ssh/k",
                             ssh_common_args="-o A=b", sudo=True)
    assert s.short == "server1"
    assert inv.host_spec_from_item("10.1.2.3", 1).short == "10-1-2-3"
    assert inv.host_spec_from_item({"name": "::1"}, 0).label == "1"
    assert inv.host_spec_from_item({"name": "h", "alias": "a.b"}, 0).label == "a.b"


@pytest.mark.parametrize("item,message", [
    ({}, "no `name`"), ({"name": "h", "prot": 22}, "unknown key"), ([1], "mapping"),
    ({"name": "h", "port": "ssh"}, "number"), ({"name": "h", "port": 70000}, "range"),
    ({"name": "-oProxyCommand=x"}, "not a host name"), ({"name": "h", "alias": "a b"}, "alias"),
    ({"name": "h", "sudo": "maybe"}, "true or false"), ({"name": {"x": 1}}, "string"),
])
def test_bad_host_items(item, message):
    with pytest.raises(ConfigError, match=message):
        inv.host_spec_from_item(item, 0)


def test_host_from_group_vars():
    s = inv.host_spec_from_vars("nf-host1", {"ansible_host": "127.0.0.1", "ansible_port": 2201,
                                             "ansible_user": "root",
                                             "ansible_ssh_private_key_file": "/k",
                                             "ansible_ssh_common_args": "-o X=y"})
    assert (s.name, s.label, s.port, s.user, s.private_key_file, s.ssh_common_args, s.sudo) == (
        "127.0.0.1", "nf-host1", 2201, "root", "/k", "-o X=y", False)
    assert inv.host_spec_from_vars("srv", {"ansible_nspawn_host_sudo": True}).name == "srv"


def test_labels_must_be_unique():
    a, b = spec("x", port=1), spec("x", port=2)
    with pytest.raises(ConfigError, match="give each an `alias`"):
        inv.check_unique_labels([a, b])
    assert inv.check_unique_labels([a, a]) == [a]


def test_ssh_argv_user_options_first_then_ours():
    s = spec(port=2201, user="root", private_key_file="/k", ssh_common_args="-o ProxyJump=b")
    argv = inv.ssh_argv(s, inv.SshOptions(control_path_dir="/cp", timeout=7))
    assert argv[:3] == ["ssh", "-o", "ProxyJump=b"]
    assert argv[3:9] == ["-p", "2201", "-l", "root", "-i", "/k"]
    assert "ControlPath=/cp/nsi-%C" in argv and "BatchMode=yes" in argv
    assert "ConnectTimeout=7" in argv
    assert argv[-3:] == ["--", "127.0.0.1", "sh -s"]
    mine = inv.ssh_argv(spec(ssh_common_args="-o ControlPath=/mine"), inv.SshOptions())
    assert not any(a.startswith("ControlPath=") and "nsi-" in a for a in mine)
    plain = inv.ssh_argv(spec(), inv.SshOptions(args=""))
    assert not any("Control" in a for a in plain)


# --- names and groups -------------------------------------------------------------------
def listing(label: str, *names: str, state: str = "running") -> inv.HostListing:
    return inv.HostListing(label=label, machines=[
        inv.Machine(name=n, state=state, machine_class="container", os_id="debian")
        for n in names])


def test_default_names_collision_is_a_warning_naming_both_hosts():
    h1, h2 = spec("server1.example.com"), spec("server2.example.com")
    entries, warnings = inv.assign_names([(h1, listing(h1.label, "web", "db")),
                                          (h2, listing(h2.label, "web"))])
    assert [e.name for e in entries] == ["web", "db", "web-server2"]
    assert entries[2].machine.name == "web" and entries[2].spec is h2
    assert len(warnings) == 1
    assert "server1.example.com" in warnings[0] and "server2.example.com" in warnings[0]
    assert "web-server2" in warnings[0] and "{{ machine }}-{{ host }}" in warnings[0]


def test_default_names_fall_back_to_the_full_host_then_fail():
    a, b, c = spec("x.one"), spec("x.two"), spec("x.three")
    # a machine literally named like the fallback takes it first
    entries, warnings = inv.assign_names([(a, listing("x.one", "web", "web-x")),
                                          (b, listing("x.two", "web"))])
    assert [e.name for e in entries] == ["web", "web-x", "web-x.two"]
    with pytest.raises(ConfigError, match="every name"):
        inv.assign_names([(a, listing("x.one", "web", "web-x", "web-x.two")),
                          (b, listing("x.two", "web"))])
    assert c.short == "x"


def test_custom_template_collision_fails_naming_both_hosts():
    h1, h2 = spec("nf-host1"), spec("nf-host2")

    def strip_prefix(v):
        return v["machine"].split("-", 1)[1]
    with pytest.raises(ConfigError) as exc:
        inv.assign_names([(h1, listing("nf-host1", "h1-c1")), (h2, listing("nf-host2", "h2-c1"))],
                         strip_prefix)
    text = str(exc.value)
    assert "'c1'" in text and "nf-host1" in text and "nf-host2" in text
    assert "{{ machine }}-{{ host }}" in text
    entries, warnings = inv.assign_names(
        [(h1, listing("nf-host1", "h1-c1")), (h2, listing("nf-host2", "h2-c1"))],
        lambda v: f"{strip_prefix(v)}-{v['host']}")
    assert [e.name for e in entries] == ["c1-nf-host1", "c1-nf-host2"] and warnings == []


@pytest.mark.parametrize("bad", ["", "a b", "x;y", None, "a:1"])
def test_template_must_give_an_inventory_name(bad):
    with pytest.raises(ConfigError, match="inventory name"):
        inv.assign_names([(spec(), listing("h1", "web"))], lambda v: bad)


def test_template_sees():
    seen = []
    inv.assign_names([(spec("srv.example.com", name="10.0.0.1"), listing("x", "web"))],
                     lambda v: seen.append(v) or "n")
    assert seen == [{"machine": "web", "host": "srv.example.com", "host_short": "srv",
                     "ssh_host": "10.0.0.1", "state": "running", "class": "container",
                     "os_id": "debian"}]


def test_variables_and_groups():
    s = spec("srv-1.example.com", port=2201, user="root", private_key_file="/k",
             ssh_common_args="-o X=y", sudo=True)
    running = inv.Entry("web", s, inv.Machine("web", "running", "container", "systemd-nspawn",
                                              "opensuse-leap", "15.6", "openSUSE Leap 15.6",
                                              "directory"))
    assert running.variables() == {
        "ansible_connection": "nspawn", "ansible_host": "127.0.0.1", "ansible_port": 2201,
        "ansible_user": "root", "ansible_ssh_private_key_file": "/k",
        "ansible_ssh_common_args": "-o X=y", "ansible_nspawn_host_sudo": True,
        "ansible_nspawn_container": "web", "nspawn_host": "srv-1.example.com",
        "nspawn_state": "running", "nspawn_class": "container", "nspawn_os_id": "opensuse-leap",
        "nspawn_os_version": "15.6", "nspawn_os_pretty_name": "openSUSE Leap 15.6",
        "nspawn_image_type": "directory"}
    assert running.groups() == ["nspawn_host_srv_1_example_com", "nspawn_running",
                                "nspawn_os_opensuse_leap", "nspawn_class_container"]
    stopped = inv.Entry("old", spec("h"), inv.Machine("old", "stopped", image_type="raw"))
    assert stopped.groups() == ["nspawn_host_h", "nspawn_stopped"]
    assert stopped.variables()["ansible_connection"] == "nspawn"
    assert "ansible_port" not in stopped.variables()


def test_listing_cache_round_trip():
    raw = inv.parse_listing_output(listing_bytes())
    one = inv.HostListing(label="h", machines=inv.machines_from_listing(raw)[0], systemd=252,
                          warnings=["w"])
    assert inv.HostListing.from_dict(json.loads(json.dumps(one.to_dict()))) == one


def test_hosts_are_asked_in_parallel_and_results_keep_config_order():
    def slow(s, opts, include_stopped, pretty_name):
        time.sleep(0.5 if s.label != "h0" else 0.8)
        return inv.HostListing(label=s.label)
    start = time.monotonic()
    got = inv.discover([spec(f"h{i}") for i in range(8)], inv.SshOptions(), True, slow)
    assert time.monotonic() - start < 2.0  # 8 hosts, 4.3 s one after another
    assert [li.label for li in got] == [f"h{i}" for i in range(8)]


# --- the listing script, run by sh against fake machinectl/busctl/systemctl -------------
FAKE_SSH = r"""#!/bin/sh
port=22
while [ $# -gt 0 ]; do
  case $1 in -p) port=$2; shift 2 ;; --) shift; break ;; *) shift ;; esac
done
d=@BASE@/$port
if [ ! -d "$d" ]; then echo "ssh: connect to host $1 port $port: Connection refused" >&2; exit 255; fi
[ -f "$d/sleep" ] && sleep "$(cat "$d/sleep")"
PATH="@BASE@/bin:$PATH" FAKE_DIR=$d exec sh -s
"""
FAKES = {
    "systemctl": 'printf "systemd %s (%s)\\nfeatures\\n" "$(cat "$FAKE_DIR/version")" x\n',
    # systemd 239 ignores --output=json for list/list-images and prints its text columns
    "machinectl": ('for a; do case $a in list|list-images) f=$FAKE_DIR/$a; '
                   '[ -f "$f.rc" ] && { cat "$f" >&2; exit "$(cat "$f.rc")"; }; '
                   'exec cat "$f" ;; esac; done; exit 1\n'),
    # busctl: --json=short only where systemd has it (240+), as the script decides
    "busctl": ('j=; for a; do n=$a; [ "$a" = --json=short ] && j=.json; done\n'
               'f=$FAKE_DIR/os-$n$j; [ -f "$f" ] && exec cat "$f"\n'
               'echo "Failed to call GetMachineOSRelease: No machine $n" >&2; exit 1\n'),
}


@pytest.fixture()
def fake_hosts(tmp_path):
    """Hosts on 'ports' 1 (systemd 252, JSON) and 2 (systemd 239, text); 9 is down."""
    base = tmp_path / "fake"
    (base / "bin").mkdir(parents=True)
    ssh = base / "bin" / "ssh"
    ssh.write_text(FAKE_SSH.replace("@BASE@", str(base)))
    for name, body in FAKES.items():
        (base / "bin" / name).write_text("#!/bin/sh\n" + body)
    for f in (base / "bin").iterdir():
        f.chmod(0o755)
    h252 = base / "1"
    h252.mkdir()
    (h252 / "version").write_text("252")
    (h252 / "list").write_text(LIST_JSON + "\n")
    (h252 / "list-images").write_text(IMAGES_JSON + "\n")
    (h252 / "os-web.json").write_text(OS_JSON + "\n")
    h239 = base / "2"
    h239.mkdir()
    (h239 / "version").write_text("239")
    (h239 / "list").write_text(LIST_TEXT_239)
    (h239 / "list-images").write_text("web directory no 1.0G Fri 2026-11-27 17:57:56 UTC -\n"
                                      "old239 raw yes - - -\n")
    (h239 / "os-web").write_text(OS_TEXT + "\n")
    return base


def opts(base: Path, **kw) -> inv.SshOptions:
    return inv.SshOptions(executable=str(base / "bin" / "ssh"), args="", control_path_dir=None,
                          timeout=kw.pop("timeout", 10), **kw)


def test_script_on_systemd_252_json(fake_hosts):
    li = inv.discover_host(spec("a", port=1), opts(fake_hosts), pretty_name=True)
    assert li.error is None and li.systemd == 252 and li.warnings == []
    got = {m.name: (m.state, m.os_id, m.os_pretty_name, m.image_type) for m in li.machines}
    assert got == {"web": ("running", "debian", "Debian GNU/Linux 12 (bookworm)", "directory"),
                   "db": ("running", "ubuntu", None, "subvolume"),
                   "win": ("running", None, None, None), "old": ("stopped", None, None, "raw")}


def test_script_on_systemd_239_text(fake_hosts):
    li = inv.discover_host(spec("b", port=2), opts(fake_hosts), pretty_name=True)
    assert li.error is None and li.systemd == 239
    got = {m.name: (m.state, m.os_id, m.os_version, m.os_pretty_name, m.image_type)
           for m in li.machines}
    assert got == {"web": ("running", "debian", "12", 'Debian "GNU"/Linux 12\\ok (x)',
                           "directory"),
                   "db": ("running", "ubuntu", "24.04", None, None),
                   "odd": ("running", None, None, None, None),
                   "old239": ("stopped", None, None, None, "raw")}


@pytest.mark.parametrize(("port", "systemd"), [(1, 252), (2, 239)])
def test_without_os_pretty_name_machined_is_not_asked_per_machine(fake_hosts, port, systemd):
    """The default: ID and VERSION_ID from `machinectl list` (JSON or text), no busctl at all."""
    (fake_hosts / "bin" / "busctl").write_text(f"#!/bin/sh\ntouch {fake_hosts}/busctl-ran\nexit 1\n")
    li = inv.discover_host(spec("a", port=port), opts(fake_hosts))
    assert li.error is None and li.systemd == systemd
    web = next(m for m in li.machines if m.name == "web")
    assert (web.os_id, web.os_version, web.os_pretty_name) == ("debian", "12", None)
    assert not (fake_hosts / "busctl-ran").exists()


def test_script_with_hostile_names_in_machinectl_output(fake_hosts):
    rows = json.loads(LIST_JSON) + [{"machine": 'x","machine":"inj', "class": "container"},
                                    {"machine": "$(touch /tmp/nspawn-inv-pwned)"}]
    (fake_hosts / "1" / "list").write_text(json.dumps(rows))
    li = inv.discover_host(spec("a", port=1), opts(fake_hosts))
    assert li.error is None
    assert sorted(m.name for m in li.machines) == ["db", "old", "web", "win"]
    assert len(li.warnings) == 2 and all("not valid" in w for w in li.warnings)
    assert not Path("/tmp/nspawn-inv-pwned").exists()


def test_script_errors(fake_hosts):
    down = inv.discover_host(spec("down", port=9), opts(fake_hosts))
    assert down.error == "ssh: connect to host 127.0.0.1 port 9: Connection refused"
    (fake_hosts / "1" / "list.rc").write_text("127")
    (fake_hosts / "1" / "list").write_text("sh: 1: machinectl: not found")
    broken = inv.discover_host(spec("a", port=1), opts(fake_hosts))
    assert "machinectl list` failed (exit 127): sh: 1: machinectl: not found" in broken.error
    (fake_hosts / "2" / "sleep").write_text("5")
    start = time.monotonic()
    slow = inv.discover_host(spec("b", port=2), opts(fake_hosts, timeout=1))
    assert slow.error == "no answer within 1 s (option `timeout`)"
    assert time.monotonic() - start < 4
    missing = inv.discover_host(spec("a", port=1), inv.SshOptions(executable="/nonexistent/ssh",
                                                                  control_path_dir=None))
    assert "cannot run /nonexistent/ssh" in missing.error


def test_script_is_posix_sh():
    subprocess.run(["sh", "-n"], input=inv.LISTING_SCRIPT, text=True, check=True)
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(BIN))
    if shellcheck:
        subprocess.run([shellcheck, "--shell=sh", "-"], input=inv.LISTING_SCRIPT, text=True,
                       check=True)


# --- the plugin through real ansible-inventory (fake ssh, no lab) -----------------------
def ansible(tool: str, *args: str, tmp_path: Path, env: dict | None = None):
    cfg = tmp_path / "ansible.cfg"
    if not cfg.exists():
        cfg.write_text("[defaults]\n")
    full = {**os.environ, "ANSIBLE_CONFIG": str(cfg), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_INVENTORY_PLUGINS": str(REPO / "inventory_plugins"),
            "ANSIBLE_CONNECTION_PLUGINS": str(REPO / "connection_plugins"),
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1", "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), **(env or {})}
    return subprocess.run([str(BIN / tool), *args], env=full, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def unwrap(value):
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def write_config(tmp_path: Path, base: Path, name="fleet.nspawn.yml", **extra) -> Path:
    config = {"plugin": "nspawn", "ssh_executable": str(base / "bin" / "ssh"), "ssh_args": "",
              "hosts": [{"name": "srv1.example.com", "port": 1},
                        {"name": "srv2.example.com", "port": 2},
                        {"name": "down.example.com", "port": 9}], **extra}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def test_plugin_end_to_end_with_fake_hosts(fake_hosts, tmp_path):
    config = write_config(tmp_path, fake_hosts, plugin="my.collection.nspawn",
                          keyed_groups=[{"key": "nspawn_image_type", "prefix": "image"}])
    # a fully qualified plugin name goes to this plugin when it is enabled by name
    proc = ansible("ansible-inventory", "-i", str(config), "--list", tmp_path=tmp_path,
                   env={"ANSIBLE_INVENTORY_ENABLED": "nspawn,auto,yaml,ini"})
    assert proc.returncode == 0, proc.stderr
    data = unwrap(json.loads(proc.stdout))
    hostvars = data["_meta"]["hostvars"]
    # web is on both hosts: the second one is named by its host, with a warning
    assert set(hostvars) == {"web", "db", "win", "old", "web-srv2", "db-srv2", "odd", "old239"}
    assert hostvars["web-srv2"]["ansible_nspawn_container"] == "web"
    assert hostvars["web-srv2"]["ansible_port"] == 2
    assert hostvars["old"]["nspawn_state"] == "stopped"
    assert hostvars["old"]["ansible_connection"] == "nspawn"
    assert set(data["nspawn_host_srv1_example_com"]["hosts"]) == {"web", "db", "win", "old"}
    assert set(data["nspawn_stopped"]["hosts"]) == {"old", "old239"}
    assert set(data["nspawn_class_vm"]["hosts"]) == {"win"}
    assert set(data["image_raw"]["hosts"]) == {"old", "old239"}
    err = " ".join(proc.stderr.split())
    assert "cannot list the machines of host down.example.com (down.example.com:9): ssh: connect" in err
    assert ("machine web is on host srv1.example.com and on host srv2.example.com: the one on "
            "srv2.example.com is listed as web-srv2") in err


@pytest.mark.parametrize(("module", "connection"), [
    ("ansible.plugins.inventory.nspawn", "nspawn"),
    ("ansible_collections.nspawn_fast.nspawn.plugins.inventory.nspawn", "nspawn_fast.nspawn.nspawn"),
    ("ansible_collections.my.coll.plugins.inventory.nspawn", "my.coll.nspawn"),
])
def test_connection_name_follows_where_the_plugin_was_loaded_from(module, connection):
    assert inv.connection_plugin_name(module) == connection


def test_plugin_loaded_from_a_collection_names_the_collections_connection(fake_hosts, tmp_path):
    """Installed as a collection (no plugin dirs configured), its machines get the FQCN
    ansible_connection: the short name `nspawn` would not be found there."""
    plugin_dir = tmp_path / "coll" / "ansible_collections" / "my" / "coll" / "plugins" / "inventory"
    plugin_dir.mkdir(parents=True)
    shutil.copyfile(REPO / "ansible_nspawn_fast" / "plugins" / "inventory" / "nspawn.py", plugin_dir / "nspawn.py")
    config = write_config(tmp_path, fake_hosts, plugin="my.coll.nspawn", hosts=[{"name": "srv1", "port": 1}])
    proc = ansible("ansible-inventory", "-i", str(config), "--list", tmp_path=tmp_path,
                   env={"ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "coll"), "ANSIBLE_INVENTORY_PLUGINS": "",
                        "ANSIBLE_INVENTORY_ENABLED": "my.coll.nspawn"})
    assert proc.returncode == 0, proc.stderr
    hostvars = unwrap(json.loads(proc.stdout))["_meta"]["hostvars"]
    assert hostvars["web"]["ansible_connection"] == "my.coll.nspawn"
    assert hostvars["web"]["ansible_nspawn_container"] == "web"


def test_plugin_keeps_hostile_os_release_as_data(fake_hosts, tmp_path):
    marker = tmp_path / "pwned"
    hostile = {"type": "a{ss}", "data": [{"ID": "debian", "VERSION_ID": "12",
                                          "PRETTY_NAME": f"{{{{ lookup('pipe', 'touch {marker}') }}}}"}]}
    (fake_hosts / "1" / "os-web.json").write_text(json.dumps(hostile))
    config = write_config(tmp_path, fake_hosts, hosts=[{"name": "srv1", "port": 1}], os_pretty_name=True)
    proc = ansible("ansible", "-i", str(config), "web", "-m", "ansible.builtin.debug", "-a",
                   "msg={{ nspawn_os_pretty_name }}", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lookup('pipe'" in proc.stdout
    assert not marker.exists()


def test_plugin_strict_fails_on_a_down_host(fake_hosts, tmp_path):
    config = write_config(tmp_path, fake_hosts, strict=True)
    proc = ansible("ansible-inventory", "-i", str(config), "--list", tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "down.example.com" in proc.stderr and "strict: true" in proc.stderr


def test_plugin_wrong_plugin_name_and_missing_group(fake_hosts, tmp_path):
    config = write_config(tmp_path, fake_hosts, plugin="nspawnish")
    proc = ansible("ansible-inventory", "-i", str(config), "--list", tmp_path=tmp_path,
                   env={"ANSIBLE_INVENTORY_ENABLED": "nspawn"})
    assert proc.returncode != 0 and "Incorrect plugin name" in proc.stderr
    config = write_config(tmp_path, fake_hosts, hosts=[], hosts_from_group="nosuch")
    proc = ansible("ansible-inventory", "-i", str(config), "--list", tmp_path=tmp_path)
    assert proc.returncode != 0 and "no group 'nosuch'" in proc.stderr
    config = write_config(tmp_path, fake_hosts, timeout=0)
    proc = ansible("ansible-inventory", "-i", str(config), "--list", tmp_path=tmp_path)
    assert proc.returncode != 0 and "timeout must be more than 0" in proc.stderr


def test_plugin_cache_answers_without_ssh(fake_hosts, tmp_path):
    cache = {"cache": True, "cache_plugin": "ansible.builtin.jsonfile",
             "cache_connection": str(tmp_path / "cache"), "cache_timeout": 600,
             "hosts": [{"name": "srv1", "port": 1}]}
    config = write_config(tmp_path, fake_hosts, **cache)
    first = ansible("ansible-inventory", "-i", str(config), "--list", tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    assert list((tmp_path / "cache").iterdir()), "nothing was cached"
    (fake_hosts / "1" / "list").write_text("[]")  # the host changed; the cache answers
    cached = ansible("ansible-inventory", "-i", str(config), "--list", tmp_path=tmp_path)
    assert unwrap(json.loads(cached.stdout))["_meta"] == unwrap(json.loads(first.stdout))["_meta"]
    fresh = ansible("ansible-inventory", "-i", str(config), "--list", "--flush-cache",
                    tmp_path=tmp_path)
    hostvars = unwrap(json.loads(fresh.stdout))["_meta"]["hostvars"]
    assert {n: v["nspawn_state"] for n, v in hostvars.items()} == {
        "web": "stopped", "db": "stopped", "old": "stopped"}


# --- the plugin file --------------------------------------------------------------------
PLUGIN = REPO / "inventory_plugins" / "nspawn.py"


def plugin_documentation() -> dict:
    import ast
    tree = ast.parse(PLUGIN.read_text())
    docs = next(n.value.value for n in tree.body if isinstance(n, ast.Assign)
                and getattr(n.targets[0], "id", "") == "DOCUMENTATION")
    return yaml.safe_load(docs)


def test_every_option_the_logic_reads_is_documented():
    import re
    doc = plugin_documentation()
    assert doc["name"] == PLUGIN.stem and doc["short_description"]
    assert set(doc["extends_documentation_fragment"]) == {"constructed", "inventory_cache"}
    read = set(re.findall(r'get_option\("(\w+)"\)', Path(inv.__file__).read_text()))
    fragments = {"strict", "compose", "groups", "keyed_groups", "cache"}
    assert read - fragments <= set(doc["options"]), read - set(doc["options"])
    assert set(doc["options"]["hosts"]["suboptions"]) == set(inv.HOST_ITEM_KEYS)


def test_plugin_file_without_the_package_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    from ansible.errors import AnsibleError
    for name in [m for m in sys.modules if m.startswith("ansible_nspawn_fast")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "ansible_nspawn_fast", None)
    spec_ = importlib.util.spec_from_file_location("nf_test_inventory_nspawn", PLUGIN)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    plugin = module.InventoryModule()
    config = tmp_path / "x.nspawn.yml"
    config.write_text("plugin: nspawn\n")
    assert plugin.verify_file(str(config))
    with pytest.raises(AnsibleError, match="pip install ansible-nspawn-fast"):
        plugin.parse(None, None, str(config))
