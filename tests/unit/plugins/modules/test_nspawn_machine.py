"""The nspawn_machine module's pure logic: names, the .nspawn file, the overlay's mount unit
and the plan from what is to what is wanted. (It runs on hosts; the lab tests run it there.)"""
import pytest

from ansible_nspawn_fast.plugins.modules import nspawn_machine as m

BASE = "/srv/base"


def settings(**options):
    return m.render_settings("web-1", options)


def body(text):
    """The file without its two comment lines."""
    return "\n".join(text.splitlines()[2:]) + "\n"


# --- names ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["web", "web-1", "a.b.c", "A9", "x" * 64])
def test_machine_names_machined_takes(name):
    assert m.valid_name(name)


@pytest.mark.parametrize("name", [".host", "", "-web", "web-", "a..b", "web;touch /tmp/x", "a b",
                                  "web/..", "x" * 65, "wéb", "web\n", None, 5])
def test_names_machined_refuses_and_the_host_itself(name):
    assert not m.valid_name(name)


# --- the .nspawn file ---------------------------------------------------------------
def test_every_setting_in_its_section_in_a_fixed_order():
    text = settings(boot=False, as_pid2=True, command=["/usr/bin/app", "--name", "a b"],
                    environment={"B": "2", "A": "one two"}, private_users="pick",
                    private_users_ownership="map", bind=["/srv/data:/data", "-/opt/x"],
                    bind_ro=["/srv/shared:/shared:norbind,idmap"],
                    network={"mode": "bridge", "bridge": "br0", "ports": ["tcp:8080:80", "53"]})
    assert text.startswith(m.MARKER)
    assert body(text) == (
        "\n[Exec]\nBoot=no\nProcessTwo=yes\nParameters=/usr/bin/app --name \"a b\"\n"
        "Environment=\"A=one two\"\nEnvironment=B=2\nPrivateUsers=pick\n"
        "\n[Files]\nPrivateUsersOwnership=map\nBind=/srv/data:/data\nBind=-/opt/x\n"
        "BindReadOnly=/srv/shared:/shared:norbind,idmap\n"
        "\n[Network]\nBridge=br0\nPort=tcp:8080:80\nPort=53\n")


def test_only_the_sections_with_settings_and_the_same_text_every_time():
    first = settings(network={"mode": "host"})
    assert body(first) == "\n[Network]\nPrivate=no\nVirtualEthernet=no\n"
    assert settings(network={"mode": "host"}) == first


@pytest.mark.parametrize("mode, extra, lines", [
    ("none", {}, ["Private=yes", "VirtualEthernet=no"]),
    ("veth", {"ports": ["udp:5353"]}, ["VirtualEthernet=yes", "Port=udp:5353"]),
    ("zone", {"zone": "web"}, ["Zone=web"]),
])
def test_network_modes(mode, extra, lines):
    assert body(settings(network={"mode": mode, **extra})).splitlines()[2:] == lines


@pytest.mark.parametrize("value, rendered", [
    (False, "no"), (True, "yes"), ("no", "no"), ("False", "no"), ("pick", "pick"),
    ("identity", "identity"), ("65536", "65536"), ("65536:65536", "65536:65536"),
])
def test_private_users_values(value, rendered):
    assert f"PrivateUsers={rendered}\n" in settings(private_users=value)


def test_quoting_of_words_with_spaces_and_one_kind_of_quote():
    text = settings(command=["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 9", 'say "hi"', ""])
    assert "Parameters=/bin/sh -c \"trap 'exit 0' TERM; sleep 9\" 'say \"hi\"' \"\"\n" in text


@pytest.mark.parametrize("options, message", [
    ({"command": ["a\\b"]}, "backslashes"),
    ({"command": ["it's \"x\""]}, "both kinds of quotes"),
    ({"command": ["a\nb"]}, "control characters"),
    ({"environment": {"A-B": "1"}}, "environment name"),
    ({"environment": {"A": "x\ny"}}, "control characters"),
    ({"private_users": "maybe"}, "private_users"),
    ({"boot": True, "as_pid2": True}, "as_pid2 needs boot: false"),
    ({"bind": ["relative:/x"]}, "absolute"),
    ({"bind": ["/a,b:/x"]}, "absolute"),
    ({"bind": ["/a b"]}, "absolute"),
    ({"bind": ["/srv/../etc:/x"]}, "normalised"),
    ({"bind": ["/a:/b:/c:/d"]}, "more than"),
    ({"bind": ["/a:/b:rw"]}, "option 'rw'"),
    ({"bind_ro": ["/a:/%n"]}, "absolute"),
    ({"bind": ["/srv\n"]}, "absolute"),
    ({"environment": {"A\n": "1"}}, "environment name"),
    ({"private_users": "pick\nBoot=yes"}, "private_users"),
    ({"network": {"mode": "bridge", "bridge": "br0\n"}}, "needs bridge"),
    ({"network": {"mode": "veth", "ports": ["80\n"]}}, "port"),
    ({"network": {"mode": "host", "ports": ["80"]}}, "need a veth"),
    ({"network": {"mode": "veth", "ports": ["tcp:99999"]}}, "port"),
    ({"network": {"mode": "veth", "ports": ["80-90"]}}, "port"),
    ({"network": {"mode": "bridge"}}, "needs bridge"),
    ({"network": {"mode": "bridge", "bridge": "br 0"}}, "needs bridge"),
    ({"network": {"mode": "zone", "zone": "a-very-long-zone"}}, "at most 12"),
    ({"network": {"mode": "veth", "bridge": "br0"}}, "bridge goes with mode bridge"),
])
def test_values_that_would_break_or_change_the_file_are_refused(options, message):
    with pytest.raises(m.MachineError, match=message):
        settings(**options)


def test_settings_are_managed_only_when_an_option_is_given():
    assert not m.settings_given({"name": "x", "state": "stopped", "timeout": 90, "enabled": True})
    assert m.settings_given({"boot": False})
    assert m.settings_given({"environment": {}})


# --- the overlay ---------------------------------------------------------------------
def test_overlay_paths_and_unit_are_named_after_the_mount_point():
    paths = m.overlay_paths("web-1", [BASE, "/srv/extra"], "/var/lib/machines/.overlay")
    assert paths == {
        "where": "/var/lib/machines/web-1", "lower": [BASE, "/srv/extra"],
        "state": "/var/lib/machines/.overlay/web-1", "upper": "/var/lib/machines/.overlay/web-1/upper",
        "work": "/var/lib/machines/.overlay/web-1/work", "unit": "var-lib-machines-web\\x2d1.mount"}
    text = m.mount_unit_text("web-1", paths)
    assert text.startswith(m.MARKER)
    for line in ("What=overlay", "Where=/var/lib/machines/web-1", "Type=overlay",
                 "Options=lowerdir=/srv/base:/srv/extra,upperdir=/var/lib/machines/.overlay/web-1/upper,"
                 "workdir=/var/lib/machines/.overlay/web-1/work",
                 "Before=systemd-nspawn@web-1.service", "WantedBy=machines.target"):
        assert line in text.splitlines()
    assert m.paths_from_unit("web-1", text) == paths


def test_a_unit_whose_upper_dir_is_not_the_machines_own_is_not_followed():
    other = m.mount_unit_text("web-1", m.overlay_paths("web-2", [BASE], "/srv/ov"))
    with pytest.raises(m.MachineError, match="outside"):
        m.paths_from_unit("web-1", other)


@pytest.mark.parametrize("lower, data_dir", [([], "/d"), (["/a,upperdir=/etc"], "/d"), (["/a:/b"], "/d"),
                                             ([BASE], "relative"), ([BASE], "/d/../etc"),
                                             # a newline would start a unit directive of its own
                                             ([BASE + "\n"], "/d"), ([BASE], "/d\nExecStart=/bin/sh")])
def test_overlay_paths_that_would_break_the_options_line_are_refused(lower, data_dir):
    with pytest.raises(m.MachineError):
        m.overlay_paths("web-1", lower, data_dir)


@pytest.mark.parametrize("path, unit", [
    ("/var/lib/machines/web-1", "var-lib-machines-web\\x2d1.mount"),
    ("/var/lib/machines/a.b", "var-lib-machines-a.b.mount"),
    ("/.x-y/b_c:d", "\\x2ex\\x2dy-b_c:d.mount"),  # as systemd-escape --path --suffix=mount
])
def test_unit_names_as_systemd_escapes_them(path, unit):
    assert m.unit_name_for_path(path, "mount") == unit


@pytest.mark.parametrize("path, fmt", [("/i/a.tar", "tar"), ("/i/a.tar.xz", "tar"), ("/i/a.TGZ", "tar"),
                                       ("/i/a.raw", "raw"), ("/i/a.qcow2", "raw"), ("/i/a.img.zst", "raw")])
def test_image_format_from_the_file_name(path, fmt):
    assert m.image_format(path, "auto") == fmt
    assert m.image_format(path, "raw") == "raw"


def test_an_image_whose_format_cannot_be_told_asks_for_image_format():
    with pytest.raises(m.MachineError, match="tar or a raw"):
        m.image_format("/i/a.bin", "auto")


# --- the plan ------------------------------------------------------------------------
NOTHING = {"exists": False, "overlay_unit": None, "mounted": False, "running": False,
           "enabled": False, "settings": None}
UNIT = "unit text"
SETTINGS = "settings text"


def want(**kw):
    return {"create": None, "overlay_unit": None, "settings": None, "enabled": None, **kw}


def kinds(steps):
    return [s[0] for s in steps]


def test_a_new_machine_is_created_configured_enabled_and_started_in_that_order():
    steps = m.plan("started", NOTHING, want(create=("create-overlay", UNIT), overlay_unit=UNIT,
                                            settings=SETTINGS, enabled=True))
    assert steps == [("create-overlay", UNIT), ("write-settings",), ("enable",), ("start",)]


def test_a_machine_as_wanted_needs_nothing():
    facts = {**NOTHING, "exists": True, "overlay_unit": UNIT, "mounted": True, "running": True,
             "enabled": True, "settings": SETTINGS}
    w = want(create=("create-overlay", UNIT), overlay_unit=UNIT, settings=SETTINGS, enabled=True)
    assert m.plan("started", facts, w) == []
    assert m.plan("present", facts, w) == []  # present leaves it running
    assert kinds(m.plan("stopped", facts, w)) == ["stop"]


def test_a_task_without_settings_options_leaves_the_file_and_the_enablement_alone():
    facts = {**NOTHING, "exists": True, "running": True, "enabled": True, "settings": "hand-written"}
    assert m.plan("stopped", facts, want()) == [("stop",)]


def test_the_source_only_creates_a_machine():
    facts = {**NOTHING, "exists": True}
    assert m.plan("present", facts, want(create=("import", "tar", "/i/a.tar"))) == []


def test_an_unmounted_overlay_root_is_mounted_before_it_starts():
    facts = {**NOTHING, "exists": True, "overlay_unit": UNIT}
    assert kinds(m.plan("started", facts, want(overlay_unit=UNIT))) == ["mount", "start"]


def test_a_machine_without_an_image_and_without_a_source_is_an_error_naming_the_options():
    with pytest.raises(m.MachineError, match="no machine image") as e:
        m.plan("started", NOTHING, want())
    assert "image, directory, clone or overlay" in e.value.args[1]


def test_an_overlay_made_with_other_layers_is_not_changed_under_its_upper_dir():
    facts = {**NOTHING, "exists": True, "overlay_unit": "other layers"}
    with pytest.raises(m.MachineError, match="other lower or data dirs"):
        m.plan("started", facts, want(overlay_unit=UNIT))


def test_absent_stops_disables_and_removes_what_it_has():
    overlay = {**NOTHING, "exists": True, "overlay_unit": UNIT, "mounted": True, "running": True,
               "enabled": True, "settings": SETTINGS}
    assert kinds(m.plan("absent", overlay, want())) == ["stop", "disable", "remove-overlay", "remove-settings"]
    image = {**NOTHING, "exists": True}
    assert kinds(m.plan("absent", image, want())) == ["remove-image"]
    terminated = {**NOTHING, "exists": True, "failed": True}
    assert kinds(m.plan("absent", terminated, want())) == ["remove-image", "reset-failed"]
    assert m.plan("absent", NOTHING, want()) == []


def test_actions_say_what_runs():
    paths = m.overlay_paths("web-1", [BASE], "/d")
    assert m.describe(("import", "tar", "/i/a.tar"), "web-1") == "machinectl import-tar /i/a.tar web-1"
    assert m.describe(("clone", "base"), "web-1") == "machinectl clone base web-1"
    assert m.describe(("create-overlay", UNIT), "web-1", paths) == "create-overlay var-lib-machines-web\\x2d1.mount"
    assert m.describe(("write-settings",), "web-1") == "write-settings /etc/systemd/nspawn/web-1.nspawn"


def test_init_kind_tells_nspawns_stub_init_from_systemd_and_others(tmp_path, monkeypatch):
    real_open = open

    def fake_open(path, *a, **kw):
        if str(path).startswith("/proc/") and str(path).endswith("/comm"):
            return real_open(tmp_path / str(path).split("/")[2], *a, **kw)
        return real_open(path, *a, **kw)

    for pid, comm in ((11, "systemd"), (12, "(sd-stubinit)"), (13, "systemd-shutdow"), (14, "sh")):
        (tmp_path / str(pid)).write_text(comm + "\n")
    monkeypatch.setattr("builtins.open", fake_open)
    assert [m.init_kind(p) for p in (11, 12, 13, 14, 15)] == ["systemd", "stub", "final", "other", "other"]
