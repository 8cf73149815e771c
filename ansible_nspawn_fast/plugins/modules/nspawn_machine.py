#!/usr/bin/python
# The nspawn_machine module of ansible-nspawn-fast: creates, configures, starts, stops and
# removes one systemd-nspawn machine on the host it runs on. Self-contained (it runs on the
# host, where the ansible_nspawn_fast package is not installed).
# Copyright: ansible-nspawn-fast developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Ansible wants the imports below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
module: nspawn_machine
short_description: Create, configure, start, stop and remove a systemd-nspawn machine on a host
description:
  - Manages one machine of machined (C(machinectl)) on the host this task runs on, over plain
    SSH, as root (C(become)); its containers need nothing.
  - "Its root comes from one of: a tar or raw image file on the host (O(image):
    C(machinectl import-tar) or C(import-raw)), a directory copied in (O(directory):
    C(machinectl import-fs)), another image machined knows (O(clone): C(machinectl clone)), or
    an overlay over read-only base directories (O(overlay)), so that many machines share one
    base and each keeps only its own changes. The source is used only to create the machine:
    a machine that exists is never recreated or compared with it."
  - "Its settings go to C(/etc/systemd/nspawn/NAME.nspawn): bind mounts, private users, the
    network, how it starts (C(Boot=), C(ProcessTwo=), C(Parameters=)) and its environment.
    The module writes the whole file when any of the settings options is given; when none is
    (a task that only starts or stops a machine), an existing file is left as it is. A
    running machine gets changed settings at its next start."
  - Stopping asks the machine to shut down (C(machinectl poweroff) for systemd and nspawn's
    stub init, SIGTERM to any other init) and waits until its leader process has exited and
    machined no longer lists it, for at most O(timeout) seconds; it never kills.
  - O(state=absent) stops the machine and removes its root (C(machinectl remove), or for an
    overlay of this module its mount unit, upper and work directories with
    C(rm -rf --one-file-system), which never follows a symbolic link), its .nspawn file, its
    enablement and the failed state of its unit; nothing else.
version_added: "0.1.0"
author: ansible-nspawn-fast developers (!UNKNOWN)
requirements:
  - On the host, systemd-container (C(machinectl), C(systemd-nspawn), systemd-importd for
    O(image) and O(directory)) and root.
attributes:
  check_mode:
    description: Reports what would change (RV(actions)) and changes nothing.
    support: full
  diff_mode:
    description: Shows the .nspawn file before and after.
    support: full
options:
  name:
    description:
      - The machine name; checked as machined checks it (a hostname of letters, digits, C(-)
        and C(.), at most 64 characters). C(.host), machined's name for the host itself, is
        refused.
    type: str
    required: true
  state:
    description:
      - V(present) the machine exists (created from its source if needed), running or not as it is.
      - V(started) it exists and runs; V(stopped) it exists and does not run.
      - V(absent) it is stopped and its root, .nspawn file and enablement are removed.
    type: str
    choices: [present, started, stopped, absent]
    default: present
  image:
    description:
      - A tar or raw disk image file on the host to import as the machine's root
        (C(machinectl import-tar) or C(import-raw), done by systemd-importd); compressed
        files (C(.gz), C(.xz), C(.bz2), C(.zst)) and qcow2 are unpacked by importd.
      - Mutually exclusive with O(directory), O(clone) and O(overlay).
    type: path
  image_format:
    description:
      - What O(image) is. V(auto) tells it by the file name (C(.tar*), C(.tgz), C(.txz) are
        tar; C(.raw*), C(.img*), C(.qcow2) are raw).
    type: str
    choices: [auto, tar, raw]
    default: auto
  directory:
    description:
      - A directory on the host that holds an OS tree, copied into the machine's own root
        (C(machinectl import-fs)).
    type: path
  clone:
    description:
      - The name of an image machined knows (C(machinectl list-images)) to copy as this
        machine's root (C(machinectl clone)).
    type: str
  overlay:
    description:
      - The machine's root is an overlay mount on C(/var/lib/machines/NAME) of the O(overlay.lower)
        directories (read-only, shared) and an upper directory of its own, set up as a systemd
        mount unit that the machine's service requires (and C(machines.target) wants, so it
        is mounted at boot).
      - The lower directories must not change while machines use them.
    type: dict
    suboptions:
      lower:
        description:
          - The read-only base directories, the top one first (as overlayfs' C(lowerdir)).
            Absolute paths of letters, digits and C(/._+@-) only.
        type: list
        elements: path
        required: true
      data_dir:
        description:
          - Where the machine's upper and work directories go (C(DATA_DIR/NAME/upper),
            C(DATA_DIR/NAME/work)); on a file system that can hold an overlay's upper
            directory, and the same rules for its path as O(overlay.lower).
        type: path
        default: /var/lib/machines/.overlay
  boot:
    description:
      - C(Boot=) of the .nspawn file; V(true) runs the tree's init (systemd), V(false) runs
        O(command) (or a shell) as the machine's first process.
      - Unset, systemd-nspawn@.service's C(--boot) applies.
    type: bool
  as_pid2:
    description:
      - C(ProcessTwo=); runs O(command) as PID 2 under nspawn's own stub init (an
        application container). Needs O(boot=false).
    type: bool
  command:
    description:
      - C(Parameters=); the command line of the machine's first process (with O(boot=true), the
        init's arguments). Words may hold spaces and one kind of quote; backslashes and control
        characters are refused.
    type: list
    elements: str
  environment:
    description:
      - C(Environment=); variables for the machine's first process. Values follow the rules of
        O(command).
      - They are visible to root on the host in the .nspawn file, so no secrets.
    type: dict
  private_users:
    description:
      - C(PrivateUsers=); V(false)/V(no), V(true)/V(yes), V(pick), V(identity), or a UID base
        with an optional range (V(65536:65536)).
      - Unset, systemd-nspawn@.service's C(-U) (V(pick)) applies.
    type: raw
  private_users_ownership:
    description:
      - C(PrivateUsersOwnership=) in [Files]; how a private-users machine's files get their owners.
    type: str
    choices: ['off', chown, map, auto]
  bind:
    description:
      - C(Bind=) lines; each C(SOURCE[:DEST[:OPTIONS]]) as systemd-nspawn's C(--bind), absolute
        paths of letters, digits and C(/._+@-) (a leading C(-) on SOURCE skips it when missing).
    type: list
    elements: str
  bind_ro:
    description:
      - C(BindReadOnly=) lines, as O(bind).
    type: list
    elements: str
  network:
    description:
      - The [Network] section.
    type: dict
    suboptions:
      mode:
        description:
          - V(host) shares the host's network (C(VirtualEthernet=no)); V(none) gives a
            private network with loopback only; V(veth) a veth pair with the host;
            V(bridge) a veth on O(network.bridge); V(zone) a veth in O(network.zone).
        type: str
        choices: [host, none, veth, bridge, zone]
        required: true
      bridge:
        description: The host's bridge interface, with O(network.mode=bridge).
        type: str
      zone:
        description: The zone's name (at most 12 characters), with O(network.mode=zone).
        type: str
      ports:
        description:
          - C(Port=) forwards, C([tcp:|udp:]HOSTPORT[:CONTAINERPORT]), with a veth
            (O(network.mode) veth, bridge or zone).
        type: list
        elements: str
  enabled:
    description:
      - Whether the machine starts when the host boots (C(machinectl enable), C(machines.target)).
        Unset, left as it is (O(state=absent) always disables).
    type: bool
  timeout:
    description:
      - Seconds each step that waits may take - stopping (until the leader has exited),
        starting, importing, removing. When it expires the task fails saying what is still
        running; nothing is killed.
    type: int
    default: 90
notes:
  - Runs on the host (the SSH target), not in a container; needs root there.
  - The machine's root is entered and changed only by systemd's tools (machinectl, importd,
    systemd-nspawn) and, for overlays, by mount and C(rm -rf --one-file-system); its content
    (the container's) is never read on the host.
seealso:
  - name: systemd.nspawn(5)
    description: The settings file.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.nspawn.html
  - name: machinectl(1)
    description: Images, import, clone, start, poweroff, remove.
    link: https://www.freedesktop.org/software/systemd/man/latest/machinectl.html
"""

EXAMPLES = r"""
- name: Three containers over one read-only base, sharing the host's network
  nspawn_fast.nspawn.nspawn_machine:
    name: "web-{{ item }}"
    state: started
    overlay:
      lower: [/srv/nspawn/base-bookworm]
    private_users: false
    network:
      mode: host
    bind_ro: [/srv/shared:/srv/shared]
    enabled: true
  loop: [1, 2, 3]

- name: A container from a tar image, on a bridge, with a port forward
  nspawn_fast.nspawn.nspawn_machine:
    name: db
    state: started
    image: /srv/images/bookworm.tar.xz
    network:
      mode: bridge
      bridge: br0
      ports: ["tcp:5432"]
    bind: [/srv/db:/var/lib/postgresql]

- name: An application container - a script as PID 2 under nspawn's stub init
  nspawn_fast.nspawn.nspawn_machine:
    name: worker
    state: started
    clone: bookworm-base
    boot: false
    as_pid2: true
    command: [/usr/local/bin/worker, --queue, jobs]
    environment:
      WORKER_THREADS: "4"

- name: Stop it, waiting up to 30 s for its leader to exit
  nspawn_fast.nspawn.nspawn_machine:
    name: worker
    state: stopped
    timeout: 30

- name: Remove it (stops it first)
  nspawn_fast.nspawn.nspawn_machine:
    name: worker
    state: absent
"""

RETURN = r"""
name:
  description: The machine's name.
  returned: always
  type: str
  sample: web-1
actions:
  description: What was done (or, in check mode, would be done), in order.
  returned: always
  type: list
  elements: str
  sample: ["mount overlay var-lib-machines-web\\x2d1.mount", "write /etc/systemd/nspawn/web-1.nspawn", "start"]
running:
  description: Whether the machine runs at the end (in check mode, would run).
  returned: always
  type: bool
  sample: true
exists:
  description: Whether the machine's image exists at the end (in check mode, would exist).
  returned: always
  type: bool
  sample: true
settings_file:
  description: The path of the machine's .nspawn file.
  returned: always
  type: str
  sample: /etc/systemd/nspawn/web-1.nspawn
settings:
  description: The .nspawn file's content as the module wrote it (or would write it).
  returned: when any settings option is given
  type: str
  sample: "[Network]\nVirtualEthernet=no\n"
stop:
  description: How the machine was stopped and how long that took.
  returned: when it was stopped (not in check mode)
  type: str
  sample: stopped (machinectl poweroff, 1.4 s)
failed_step:
  description: The step that failed (as in RV(actions)).
  returned: on failure of a step
  type: str
  sample: start
"""

import os
import re
import socket
import stat
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

SETTINGS_DIR = "/etc/systemd/nspawn"
MACHINES_DIR = "/var/lib/machines"
UNIT_DIR = "/etc/systemd/system"
MARKER = "# Managed by nspawn_machine (nspawn_fast.nspawn):"
HOST_NAME_MAX = 64
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_NAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
# Paths that reach a mount unit's Options= or a Bind= line: nothing those files would split on
# (',', ':', spaces, newlines), unquote, escape or expand ('%' specifiers). All of these
# patterns are used with fullmatch ('$' alone would let a trailing newline through).
_PATH_RE = re.compile(r"^/[A-Za-z0-9/._+@-]*$")
_WORD_BAD = re.compile(r"[\\\x00-\x1f\x7f]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_PORT = re.compile(r"^(?:(tcp|udp):)?([0-9]{1,5})(?::([0-9]{1,5}))?$")
_PRIVATE_USERS = re.compile(r"^(?:yes|no|pick|identity|[0-9]+(?::[0-9]+)?)$")
BIND_OPTIONS = ("rbind", "norbind", "idmap", "noidmap", "rootidmap")
SETTINGS_OPTIONS = ("boot", "as_pid2", "command", "environment", "private_users",
                    "private_users_ownership", "bind", "bind_ro", "network")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tar.zst")
RAW_SUFFIXES = (".raw", ".img", ".qcow2", ".raw.gz", ".raw.xz", ".raw.bz2", ".raw.zst",
                ".img.gz", ".img.xz", ".img.bz2", ".img.zst")
POLL = 0.2


class MachineError(Exception):
    """A failure to report: what happened and, after it, what to do."""


# --- pure logic: names, settings, units, the plan ---------------------------------------
def valid_name(name):
    """machined's rule for machine names (a hostname); '.host' is machined's name for the host."""
    return (isinstance(name, str) and len(name) <= HOST_NAME_MAX
            and _NAME_RE.fullmatch(name) is not None)


def check_path(path, what):
    norm = os.path.normpath(path or "")
    if not _PATH_RE.fullmatch(path or "") or norm != path.rstrip("/") or "/../" in path + "/":
        raise MachineError(f"{what} {path!r} must be an absolute, normalised path of letters, digits and "
                           "/._+@- only")
    return norm


def quote_word(word, what):
    """One word of a Parameters=/Environment= line, which systemd splits at whitespace and
    unquotes ("..." or '...'; the other quote is literal inside), leaving backslashes as they
    are (older systemd did not): a backslash, a control character or both quotes are refused."""
    if not isinstance(word, str) or _WORD_BAD.search(word) or ('"' in word and "'" in word):
        raise MachineError(f"{what} {word!r}: backslashes, control characters and both kinds of "
                           "quotes in one word are not supported")
    if '"' in word:
        return f"'{word}'"
    if word == "" or "'" in word or re.search(r"\s", word):
        return f'"{word}"'
    return word


def _bool(value):
    return "yes" if value else "no"


def _private_users(value):
    if isinstance(value, bool):
        return _bool(value)
    text = str(value).strip().lower()
    text = {"true": "yes", "false": "no"}.get(text, text)
    if not _PRIVATE_USERS.fullmatch(text):
        raise MachineError(f"private_users {value!r}: use no, yes, pick, identity or UID[:RANGE]")
    return text


def _bind_line(spec, what):
    if not isinstance(spec, str) or not spec:
        raise MachineError(f"{what} entry {spec!r} must be SOURCE[:DEST[:OPTIONS]]")
    parts = spec.split(":")
    if len(parts) > 3:
        raise MachineError(f"{what} entry {spec!r} has more than SOURCE:DEST:OPTIONS")
    source = parts[0][1:] if parts[0].startswith("-") else parts[0]
    check_path(source, f"{what} source")
    if len(parts) > 1:
        check_path(parts[1], f"{what} destination")
    if len(parts) > 2:
        for opt in parts[2].split(","):
            if opt not in BIND_OPTIONS:
                known = ", ".join(BIND_OPTIONS)
                raise MachineError(f"{what} entry {spec!r}: option {opt!r} is not one of {known}")
    return spec


def _network_lines(net):
    mode = net.get("mode")
    ports = net.get("ports") or []
    bridge, zone = net.get("bridge"), net.get("zone")
    if bridge and mode != "bridge" or zone and mode != "zone":
        raise MachineError("network: bridge goes with mode bridge, zone with mode zone")
    lines = []
    if mode == "host":
        lines += ["Private=no", "VirtualEthernet=no"]
    elif mode == "none":
        lines += ["Private=yes", "VirtualEthernet=no"]
    elif mode == "veth":
        lines += ["VirtualEthernet=yes"]
    elif mode == "bridge":
        if not bridge or not _IFNAME.fullmatch(bridge) or len(bridge) > 15:
            raise MachineError("network mode bridge needs bridge: an interface name (at most 15 characters)")
        lines += [f"Bridge={bridge}"]
    elif mode == "zone":
        if not zone or not _IFNAME.fullmatch(zone) or len(zone) > 12:
            raise MachineError("network mode zone needs zone: a name of at most 12 characters")
        lines += [f"Zone={zone}"]
    else:
        raise MachineError(f"network mode {mode!r} is not one of host, none, veth, bridge, zone")
    if ports and mode in ("host", "none"):
        raise MachineError(f"network ports need a veth (mode veth, bridge or zone), not mode {mode}")
    for port in ports:
        m = _PORT.fullmatch(str(port))
        if not m or not all(1 <= int(p) <= 65535 for p in m.groups()[1:] if p):
            raise MachineError(f"network port {port!r}: use [tcp:|udp:]HOSTPORT[:CONTAINERPORT]")
        lines.append(f"Port={port}")
    return lines


def settings_given(params):
    return any(params.get(k) is not None for k in SETTINGS_OPTIONS)


def render_settings(name, params):
    """The whole .nspawn file for these options (MachineError on an invalid value)."""
    exec_lines, files_lines = [], []
    if params.get("boot") and params.get("as_pid2"):
        raise MachineError("as_pid2 needs boot: false (systemd-nspawn cannot do both)")
    if params.get("boot") is not None:
        exec_lines.append("Boot=" + _bool(params["boot"]))
    if params.get("as_pid2") is not None:
        exec_lines.append("ProcessTwo=" + _bool(params["as_pid2"]))
    if params.get("command"):
        exec_lines.append("Parameters=" + " ".join(quote_word(w, "command word") for w in params["command"]))
    for key in sorted(params.get("environment") or {}):
        value = params["environment"][key]
        if not _ENV_NAME.fullmatch(str(key)):
            raise MachineError(f"environment name {key!r}: letters, digits and _ only")
        value = "" if value is None else str(value)
        exec_lines.append("Environment=" + quote_word(f"{key}={value}", "environment value"))
    if params.get("private_users") is not None:
        exec_lines.append("PrivateUsers=" + _private_users(params["private_users"]))
    if params.get("private_users_ownership") is not None:
        files_lines.append("PrivateUsersOwnership=" + params["private_users_ownership"])
    for spec in params.get("bind") or []:
        files_lines.append("Bind=" + _bind_line(spec, "bind"))
    for spec in params.get("bind_ro") or []:
        files_lines.append("BindReadOnly=" + _bind_line(spec, "bind_ro"))
    network_lines = _network_lines(params["network"]) if params.get("network") else []
    out = [f"{MARKER} changes here are overwritten.", f"# Machine {name}; see systemd.nspawn(5)."]
    for section, lines in (("Exec", exec_lines), ("Files", files_lines), ("Network", network_lines)):
        if lines:
            out += ["", f"[{section}]"] + lines
    return "\n".join(out) + "\n"


def unit_name_for_path(path, suffix):
    """systemd-escape --path --suffix=SUFFIX PATH."""
    path = path.strip("/")
    if not path:
        return "-." + suffix
    out = []
    for i, ch in enumerate(path):
        if ch == "/":
            out.append("-")
        elif ch.isascii() and (ch.isalnum() or ch in ":_" or (ch == "." and i > 0)):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8"))
    return "".join(out) + "." + suffix


def overlay_unit_name(name, machines_dir=MACHINES_DIR):
    """The mount unit of an overlay root of this module: named after its mount point."""
    return unit_name_for_path(os.path.join(machines_dir, name), "mount")


def overlay_paths(name, lower, data_dir, machines_dir=MACHINES_DIR):
    """{'where', 'lower', 'upper', 'work', 'state', 'unit'} of this machine's overlay root."""
    lower = [check_path(p, "overlay lower") for p in lower or []]
    if not lower:
        raise MachineError("overlay needs at least one lower directory")
    state = os.path.join(check_path(data_dir, "overlay data_dir"), name)
    where = os.path.join(machines_dir, name)
    return {"where": where, "lower": lower, "state": state, "upper": os.path.join(state, "upper"),
            "work": os.path.join(state, "work"), "unit": overlay_unit_name(name, machines_dir)}


def paths_from_unit(name, text, machines_dir=MACHINES_DIR):
    """The overlay paths a mount unit of this module records (a task without `overlay`)."""
    m = re.search(r"^Options=lowerdir=([^,\n]*),upperdir=([^,\n]*),workdir=([^,\n]*)$", text, re.M)
    if not m:
        unit = overlay_unit_name(name, machines_dir)
        raise MachineError(f"mount unit {unit} has no Options= line this module wrote", "remove the machine by hand")
    paths = overlay_paths(name, m.group(1).split(":"), os.path.dirname(os.path.dirname(m.group(2))),
                          machines_dir)
    if (paths["upper"], paths["work"]) != (m.group(2), m.group(3)):
        raise MachineError(f"mount unit {paths['unit']} keeps its upper dir outside .../{name}/",
                           "remove the machine by hand")
    return paths


def mount_unit_text(name, paths):
    lower = ":".join(paths["lower"])
    options = f"lowerdir={lower},upperdir={paths['upper']},workdir={paths['work']}"
    return "\n".join([
        f"{MARKER} the root of machine {name}, an overlay.",
        f"# nspawn_machine state=absent removes it with {paths['state']} (not the lower dirs).",
        "[Unit]",
        f"Description=Root of machine {name} (overlay)",
        f"Before=systemd-nspawn@{name}.service",
        "",
        "[Mount]",
        "What=overlay",
        f"Where={paths['where']}",
        "Type=overlay",
        f"Options={options}",
        "",
        "[Install]",
        "WantedBy=machines.target",
        "",
    ])


def image_format(path, given):
    if given != "auto":
        return given
    lower = path.lower()
    if lower.endswith(TAR_SUFFIXES):
        return "tar"
    if lower.endswith(RAW_SUFFIXES):
        return "raw"
    raise MachineError(f"cannot tell from its name whether image {path} is a tar or a raw image",
                       "set image_format: tar or raw")


def plan(state, facts, want):
    """The steps from what is (facts) to what is wanted, in order.

    facts: exists (an image machined lists), overlay_unit (text of this module's mount unit of
    its root, or None), mounted, running, enabled, failed (its unit's state; bool), settings
    (current .nspawn text or None).
    want: create (a step tuple or None), overlay_unit (text or None), settings (text or
    None: not managed), enabled (bool or None). A MachineError when it cannot be done.
    Each step is a tuple whose first item names it.
    """
    steps = []
    ours = facts.get("overlay_unit") is not None
    if ours and want.get("overlay_unit") is not None and want["overlay_unit"] != facts["overlay_unit"]:
        raise MachineError("its overlay root was made with other lower or data dirs; changing them under an "
                           "existing upper dir is not supported",
                           "remove it (state: absent) and create it again, or give the same overlay")
    if state == "absent":
        if facts.get("running"):
            steps.append(("stop",))
        if facts.get("enabled"):
            steps.append(("disable",))
        if ours:
            steps.append(("remove-overlay",))
        elif facts.get("exists"):
            steps.append(("remove-image",))
        if facts.get("settings") is not None:
            steps.append(("remove-settings",))
        if facts.get("failed"):  # its unit's record of a failed run (e.g. after machinectl terminate)
            steps.append(("reset-failed",))
        return steps

    if ours:
        if not facts.get("mounted"):
            steps.append(("mount",))
    elif not facts.get("exists"):
        if want.get("create") is None:
            raise MachineError("there is no machine image of this name",
                               "give image, directory, clone or overlay to create it")
        steps.append(want["create"])
    if want.get("settings") is not None and want["settings"] != facts.get("settings"):
        steps.append(("write-settings",))
    if want.get("enabled") is not None and bool(want["enabled"]) != bool(facts.get("enabled")):
        steps.append(("enable",) if want["enabled"] else ("disable",))
    if state == "started" and not facts.get("running"):
        steps.append(("start",))
    elif state == "stopped" and facts.get("running"):
        steps.append(("stop",))
    return steps


def describe(step, name, paths=None):
    kind = step[0]
    if kind == "import":
        return f"machinectl import-{step[1]} {step[2]} {name}"
    if kind == "clone":
        return f"machinectl clone {step[1]} {name}"
    if kind == "import-fs":
        return f"machinectl import-fs {step[1]} {name}"
    if kind in ("create-overlay", "mount", "remove-overlay") and paths:
        return f"{kind} {paths['unit']}"
    if kind in ("write-settings", "remove-settings"):
        return f"{kind} {settings_path(name)}"
    return kind


def settings_path(name):
    return os.path.join(SETTINGS_DIR, name + ".nspawn")


# --- the host: commands, facts and steps ----------------------------------------------
TRANSITIONS = ("activating", "deactivating", "reloading")


class Host:
    """Runs the steps on this host, each bounded by `timeout`."""

    def __init__(self, module, name, timeout):
        self.module = module
        self.name = name
        self.timeout = timeout
        self.env = {"LC_ALL": "C", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}

    def run(self, argv, timeout=None, check=True):
        """(rc, stdout, stderr) of argv, bounded by coreutils' timeout: SIGTERM when the time is
        up (machinectl then cancels its transfer), SIGKILL 10 s later, and a MachineError."""
        limit = timeout or self.timeout
        rc, out, err = self.module.run_command(["timeout", "-k", "10", str(limit), *argv],
                                               environ_update=self.env)
        if rc in (124, 137):  # timeout's "timed out", or killed after it
            command = " ".join(argv[:4])
            raise MachineError(f"{command} did not finish within {limit} s",
                               "raise timeout, or look on the host: journalctl -n 50")
        if rc == 127 and not out:
            raise MachineError(f"{argv[0]} is not installed on the host: {err.strip()[-300:]}",
                               "install systemd-container (and coreutils)")
        if check and rc != 0:
            detail = (err or out).strip()[-1000:]
            raise MachineError(f"{' '.join(argv)} failed (exit {rc}): {detail}")
        return rc, out, err

    def machinectl(self, *args, **kw):
        return self.run(["machinectl", "--no-pager", "--no-legend", *args], **kw)

    def systemctl(self, *args, **kw):
        return self.run(["systemctl", "--no-pager", *args], **kw)

    # facts
    def registration(self):
        """The leader PID when machined lists the machine (0 while it has none yet), else None."""
        rc, out, dummy = self.machinectl("show", "--property=Leader", "--value", "--", self.name,
                                         timeout=15, check=False)
        if rc != 0:
            return None
        leader = out.strip()
        return int(leader) if leader.isdigit() and int(leader) > 1 else 0

    def unit_state(self):
        rc, out, dummy = self.systemctl("show", "--property=ActiveState", "--value",
                                        f"systemd-nspawn@{self.name}.service", timeout=15, check=False)
        return out.strip() if rc == 0 else ""

    def image(self):
        """{'path', 'type'} of machined's image of this name, or None."""
        rc, out, dummy = self.machinectl("show-image", "--property=Path", "--property=Type", "--", self.name,
                                         timeout=15, check=False)
        if rc != 0:
            return None
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return {"path": props.get("Path", ""), "type": props.get("Type", "")}

    def enabled(self):
        dummy, out, dummy = self.systemctl("is-enabled", f"systemd-nspawn@{self.name}.service", timeout=15, check=False)
        return out.strip() in ("enabled", "enabled-runtime", "linked", "alias")

    @staticmethod
    def mount_points():
        with open("/proc/self/mountinfo") as f:
            return {_unescape_mountinfo(line.split()[4]) for line in f if len(line.split()) > 4}

    def facts(self, paths):
        overlay_unit = read_if_ours(os.path.join(UNIT_DIR, paths["unit"])) if paths else None
        leader = self.registration()
        image = self.image()
        where = paths["where"] if paths else os.path.join(MACHINES_DIR, self.name)
        settings = None
        if os.path.lexists(settings_path(self.name)):
            with open(settings_path(self.name)) as f:
                settings = f.read()
        return {"exists": image is not None, "image": image, "running": leader is not None,
                "leader": leader, "overlay_unit": overlay_unit,
                "mounted": where in self.mount_points(), "enabled": self.enabled(),
                "failed": self.unit_state() == "failed", "settings": settings}

    # steps
    def create(self, step, paths):
        if step[0] == "import":
            self.machinectl(f"import-{step[1]}", "--", step[2], self.name)
        elif step[0] == "import-fs":
            self.machinectl("import-fs", "--", step[1], self.name)
        elif step[0] == "clone":
            self.machinectl("clone", "--", step[1], self.name)
        elif step[0] == "create-overlay":
            self.create_overlay(paths, step[1])

    def create_overlay(self, paths, unit_text):
        for lower in paths["lower"]:
            if not os.path.isdir(lower) or os.path.islink(lower):
                raise MachineError(f"overlay lower {lower} is not a directory on this host")
        where = paths["where"]
        if os.path.lexists(where) and (os.path.islink(where) or os.listdir(where)):
            raise MachineError(f"{where} exists and is not empty", "remove it or choose another name")
        created, shared = [], []  # this machine's dirs (removed on failure); shared ones (if empty)
        try:
            for d in (os.path.dirname(where), os.path.dirname(paths["state"])):
                if not os.path.isdir(d):
                    os.makedirs(d, 0o700)
                    shared.append(d)
            for d in (paths["state"], paths["upper"], paths["work"], where):
                if not os.path.isdir(d):
                    os.mkdir(d, 0o755 if d == where else 0o700)
                    created.append(d)
            # The merged root takes the upper dir's owner and mode: the base's (0755), so that
            # the container's services can reach /. Its parents stay root's only.
            top = os.stat(paths["lower"][0])
            os.chown(paths["upper"], top.st_uid, top.st_gid)
            os.chmod(paths["upper"], stat.S_IMODE(top.st_mode))
            self.write_unit(paths, unit_text)
            self.systemctl("enable", "--now", paths["unit"])
        except (MachineError, OSError) as e:
            # the kernel's reason, as systemd logged it for the mount (the host's own journal)
            dummy, log, dummy = self.run(["journalctl", "--no-pager", "-q", "-o", "cat", "-n", "3", "-u",
                                          paths["unit"]], timeout=15, check=False)
            self.undo_overlay(paths, created, shared)
            data_dir = os.path.dirname(paths["state"])
            why = " ".join(log.split())[-300:]
            raise MachineError(f"could not set up the overlay root of {self.name}: {e}" + (f" ({why})" if why else ""),
                               f"check the lower dirs and that {data_dir} can hold an overlay's upper dir") from e

    def undo_overlay(self, paths, created, shared):
        """Back to nothing after a failed create_overlay: what it made, never more."""
        self.systemctl("disable", "--now", paths["unit"], check=False)
        unit_file = os.path.join(UNIT_DIR, paths["unit"])
        if read_if_ours(unit_file) is not None:
            os.unlink(unit_file)
            self.systemctl("daemon-reload", check=False)
        self.systemctl("reset-failed", paths["unit"], check=False)  # no failed unit left behind
        for d in reversed(created):
            if d not in self.mount_points():
                self.run(["rm", "-rf", "--one-file-system", "--", d], check=False)
        for d in reversed(shared):
            try:
                os.rmdir(d)
            except OSError:
                pass  # no longer empty: another machine's now

    def write_unit(self, paths, text):
        write_atomically(os.path.join(UNIT_DIR, paths["unit"]), text)
        self.systemctl("daemon-reload")

    def mount(self, paths):
        self.systemctl("enable", "--now", paths["unit"])

    def remove_overlay(self, paths):
        """Unmount, remove the machine's own dirs, then the unit: a removal cut short is found
        (by its unit) and finished by the next run."""
        where = paths["where"]
        self.systemctl("disable", "--now", paths["unit"])
        if where in self.mount_points():
            raise MachineError(f"{where} is still mounted after stopping {paths['unit']}",
                               f"see what holds it: fuser -vm {where}")
        if os.path.lexists(paths["state"]):
            # the container's own files: rm never follows a symlink, and stays on this file system
            self.run(["rm", "-rf", "--one-file-system", "--", paths["state"]])
        if os.path.isdir(where) and not os.path.islink(where):
            try:
                os.rmdir(where)  # the bare mount point
            except OSError as e:
                raise MachineError(f"the mount point {where} is not empty after unmounting ({e.strerror})",
                                   "look at what was written there, and remove it by hand") from e
        unit_file = os.path.join(UNIT_DIR, paths["unit"])
        if os.path.lexists(unit_file):
            os.unlink(unit_file)
        self.systemctl("daemon-reload")

    def remove_image(self, image):
        path = (image or {}).get("path") or ""
        if path and path in self.mount_points():
            raise MachineError(f"its image {path} is a mount point this module did not set up: "
                               "not removing what is mounted there", "unmount it first, or remove it by hand")
        self.machinectl("remove", "--", self.name)

    def start(self):
        self.machinectl("start", "--", self.name)
        deadline = time.monotonic() + self.timeout
        while self.registration() is None:
            if time.monotonic() > deadline:
                raise MachineError(f"it was started but machined does not list it after {self.timeout} s",
                                   f"journalctl -u systemd-nspawn@{self.name} -n 50")
            time.sleep(POLL)

    def stop(self):
        """Ask the machine to shut down; wait for its leader to exit and machined to drop it."""
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        leader = self.registration()
        while not leader:  # not listed, or listed without a leader yet (its unit starting)
            if leader is None and self.unit_state() not in TRANSITIONS:
                return "was not running"
            if time.monotonic() > deadline:
                raise MachineError(f"it is neither running nor stopped after {self.timeout} s "
                                   f"(unit {self.unit_state()})", f"journalctl -u systemd-nspawn@{self.name} -n 50")
            time.sleep(POLL)
            leader = self.registration()
        start = proc_start_time(leader)
        kind = init_kind(leader)
        if kind in ("systemd", "stub"):
            how = "machinectl poweroff"
            rc, out, err = self.machinectl("poweroff", "--", self.name, timeout=15, check=False)
        elif kind == "final":
            how, rc, out, err = "its own shutdown", 0, "", ""
        else:  # no handler for systemd's signals: SIGTERM, which a script init can trap
            how = "SIGTERM to its leader"
            rc, out, err = self.machinectl("kill", "--kill-who=leader", "--signal=SIGTERM", "--", self.name,
                                           timeout=15, check=False)
        if rc != 0 and proc_start_time(leader) == start:
            raise MachineError(f"could not ask it to stop ({how}): {(err or out).strip()[-300:]}")
        while True:
            gone = proc_start_time(leader) != start or proc_is_zombie(leader)
            if gone and self.registration() is None and self.unit_state() not in ("deactivating", "active"):
                return f"stopped ({how}, {time.monotonic() - t0:.1f} s)"
            if time.monotonic() > deadline:
                what = (f"its leader (PID {leader}) is still running" if not gone
                        else "machined still lists it or its unit is still stopping")
                raise MachineError(f"it did not stop within {self.timeout} s after {how}: {what}; nothing was killed",
                                   f"raise timeout, or force it: machinectl terminate {self.name}")
            time.sleep(POLL)


def _unescape_mountinfo(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_if_ours(path):
    """The text of a file this module wrote (its marker line first), else None. A symlink or a
    file of someone else is never ours."""
    if not path or os.path.islink(path) or not os.path.isfile(path):
        return None
    with open(path) as f:
        text = f.read(65536)
    return text if text.startswith(MARKER) else None


def write_atomically(path, text):
    """Write path through a temp file beside it, renamed into place (never half a file)."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(prefix=".nspawn_machine.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def proc_start_time(pid):
    """Field 22 of /proc/PID/stat (with the PID, one process for good), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read(4096)
    except (OSError, TypeError):
        return None
    fields = line[line.rfind(b")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def proc_is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read(4096)
    except OSError:
        return True
    return line[line.rfind(b")") + 2:][:1] in (b"Z", b"X")


def init_kind(pid):
    """What the leader runs, by its process name (as the host helper tells it)."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            comm = f.read(64).strip()
    except OSError:
        return "other"
    if comm == b"systemd":
        return "systemd"
    if comm == b"(sd-stubinit)":
        return "stub"
    if comm.startswith(b"systemd-shutdow"):
        return "final"
    return "other"


# --- the module -----------------------------------------------------------------------
def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "started", "stopped", "absent"]),
        image=dict(type="path"),
        image_format=dict(type="str", default="auto", choices=["auto", "tar", "raw"]),
        directory=dict(type="path"),
        clone=dict(type="str"),
        overlay=dict(type="dict", options=dict(
            lower=dict(type="list", elements="path", required=True),
            data_dir=dict(type="path", default="/var/lib/machines/.overlay"),
        )),
        boot=dict(type="bool"),
        as_pid2=dict(type="bool"),
        command=dict(type="list", elements="str"),
        environment=dict(type="dict"),
        private_users=dict(type="raw"),
        private_users_ownership=dict(type="str", choices=["off", "chown", "map", "auto"]),
        bind=dict(type="list", elements="str"),
        bind_ro=dict(type="list", elements="str"),
        network=dict(type="dict", options=dict(
            mode=dict(type="str", required=True, choices=["host", "none", "veth", "bridge", "zone"]),
            bridge=dict(type="str"),
            zone=dict(type="str"),
            ports=dict(type="list", elements="str"),
        )),
        enabled=dict(type="bool"),
        timeout=dict(type="int", default=90),
    )


def create_step(params, overlay_unit):
    if params.get("image"):
        return ("import", image_format(params["image"], params["image_format"]), params["image"])
    if params.get("directory"):
        return ("import-fs", params["directory"])
    if params.get("clone"):
        if not valid_name(params["clone"]):
            raise MachineError(f"clone {params['clone']!r} is not a valid image name")
        return ("clone", params["clone"])
    if overlay_unit is not None:
        return ("create-overlay", overlay_unit)
    return None


def run_module(module):
    p = module.params
    name = p["name"]
    where = socket.gethostname()
    if name == ".host" or not valid_name(name):
        module.fail_json(msg=f"nspawn_machine on {where}: {name!r} is not a valid machine name (a hostname of "
                             "letters, digits, '-' and '.', at most 64 characters; '.host' is the host itself)",
                         name=name, actions=[])
    if p["timeout"] <= 0:
        module.fail_json(msg="nspawn_machine: timeout must be a positive number of seconds", name=name, actions=[])
    result = dict(changed=False, name=name, actions=[], settings_file=settings_path(name))
    try:
        if os.geteuid() != 0:
            raise MachineError("it must run as root on the host", "add become: true")
        host = Host(module, name, p["timeout"])
        machines_dir = os.path.realpath(MACHINES_DIR)  # a mount unit's Where= is canonical
        want = {"create": None, "overlay_unit": None, "settings": None, "enabled": p["enabled"]}
        if p["overlay"]:
            paths = overlay_paths(name, p["overlay"]["lower"], p["overlay"]["data_dir"], machines_dir)
            want["overlay_unit"] = mount_unit_text(name, paths)
        else:
            # a task without `overlay` (stop, absent) on a machine this module made as an overlay
            text = read_if_ours(os.path.join(UNIT_DIR, overlay_unit_name(name, machines_dir)))
            paths = paths_from_unit(name, text, machines_dir) if text is not None else None
        facts = host.facts(paths)
        if p["state"] != "absent":
            want["create"] = create_step(p, want["overlay_unit"])
            if want["create"] and facts["exists"] and facts["overlay_unit"] is None:
                module.warn(f"machine {name} exists already: its image, directory, clone or overlay option "
                            "is not used (the source only creates a machine)")
            if settings_given(p):
                want["settings"] = render_settings(name, p)
                result["settings"] = want["settings"]
        steps = plan(p["state"], facts, want)
    except (MachineError, OSError) as e:
        fail(module, where, name, e, result)

    result["actions"] = [describe(s, name, paths) for s in steps]
    result["changed"] = bool(steps)
    kinds = [s[0] for s in steps]
    after_settings = facts["settings"]
    if "write-settings" in kinds:
        after_settings = want["settings"]
    if "remove-settings" in kinds:
        after_settings = None
    if module._diff and after_settings != facts["settings"]:
        result["diff"] = dict(before=facts["settings"] or "", after=after_settings or "",
                              before_header=settings_path(name), after_header=settings_path(name))
    running = facts["running"]
    exists = facts["exists"] or facts["overlay_unit"] is not None
    if not module.check_mode:
        try:
            for step in steps:
                kind = step[0]
                if kind in ("import", "import-fs", "clone", "create-overlay"):
                    host.create(step, paths)
                elif kind == "mount":
                    host.mount(paths)
                elif kind == "write-settings":
                    write_atomically(settings_path(name), want["settings"])
                elif kind == "remove-settings" and os.path.lexists(settings_path(name)):
                    os.unlink(settings_path(name))  # (machinectl remove may have removed it)
                elif kind == "enable":
                    host.machinectl("enable", "--", name)
                elif kind == "disable":
                    host.machinectl("disable", "--", name)
                elif kind == "start":
                    host.start()
                elif kind == "stop":
                    result["stop"] = host.stop()
                elif kind == "remove-overlay":
                    host.remove_overlay(paths)
                elif kind == "remove-image":
                    host.remove_image(facts["image"])
                elif kind == "reset-failed":
                    host.systemctl("reset-failed", f"systemd-nspawn@{name}.service", check=False)
        except (MachineError, OSError) as e:
            result["failed_step"] = describe(step, name, paths)
            fail(module, where, name, e, result)
    if "start" in kinds:
        running = True
    if "stop" in kinds:
        running = False
    if p["state"] == "absent":
        exists = False
    elif steps and steps[0][0] in ("import", "import-fs", "clone", "create-overlay"):
        exists = True
    result.update(running=running, exists=exists)
    module.exit_json(**result)


def fail(module, where, name, error, result):
    if isinstance(error, MachineError) and error.args:
        what, hint = error.args[0], (error.args[1] if len(error.args) > 1 else "")
    else:
        what, hint = str(error), ""
    msg = f"nspawn_machine on {where}, machine {name}: {what}"
    if hint:
        msg += f"; next: {hint}"
    module.fail_json(msg=msg, **result)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("image", "directory", "clone", "overlay")],
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
