"""The `nspawn` inventory plugin's logic (the plugin file is a thin shim).

Every machine machined knows on every listed host becomes an inventory host reached with
`ansible_connection: nspawn`. Per host: ONE ssh round trip (the system `ssh`, BatchMode)
running LISTING_SCRIPT, a POSIX sh script that prints NUL-terminated fields, so nothing a
machine reports can shift a field. It asks machined only (`machinectl list`,
`machinectl list-images`, and with os_pretty_name machined's GetMachineOSRelease for each
running machine); it never reads a container's files itself. Hosts are asked in parallel, each bounded by a
timeout; one host that cannot be asked is a warning naming it, not a failed inventory.

The parsing and naming functions are pure (text in, records out) and unit-tested; the
Ansible side is `populate()` at the end. What a machine reports about itself (its OS
fields) is the container's own claim: it is kept as data (never templated) and only ever
decides the machine's own variables and `nspawn_os_*` group.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ConfigError, NspawnError
from .names import is_valid_machine_name

PLUGIN_NAME = "nspawn"
CONFIG_SUFFIXES = ("nspawn.yml", "nspawn.yaml")
DEFAULT_NAME_TEMPLATE = "{{ machine }}"
CACHE_FORMAT = 1
MAGIC = "nspawn-fast-inventory"
SCRIPT_VERSION = "1"
HOST_ITEM_KEYS = ("name", "alias", "port", "user", "private_key_file", "ssh_common_args", "sudo")
MAX_PARALLEL = 32  # hosts asked at the same time
MAX_FIELD = 256  # os-release values longer than this are cut (the container writes them)

# One ssh round trip per host. Fields are NUL-terminated: `f list RC OUTPUT` prints three.
# Command output cannot contain NUL (the shell drops it from $(...)), so nothing a machine
# reports can shift a field. systemd >= 240 (and every version with JSON tables) gets JSON;
# older machinectl ignores --output=json for `list` and prints its text columns, which the
# parser recognises. Only machined is asked: nothing here reads a container's files.
# `machinectl list` gives each running machine's os-release ID and VERSION_ID; with `pretty=1`
# (listing_script(pretty_name=True)) machined is asked for each one's whole os-release too, for
# PRETTY_NAME: one busctl per machine, which machined answers one at a time by entering the
# machine, so most of the round trip on a host with many machines.
LISTING_SCRIPT = r"""
LC_ALL=C SYSTEMD_PAGER=cat SYSTEMD_COLORS=0
export LC_ALL SYSTEMD_PAGER SYSTEMD_COLORS
set -f
f() { printf '%s\0' "$@"; }
run() { o=$("$@" 2>/dev/null); r=$?; [ "$r" -eq 0 ] || o=$("$@" 2>&1 >/dev/null); }
f nspawn-fast-inventory 1
v=$(systemctl --version 2>/dev/null | sed -n '1s/^systemd \([0-9][0-9]*\).*/\1/p')
f systemd "${v:-0}"
run machinectl --no-pager --no-legend --output=json list
f list "$r" "$o"
m=$o
mr=$r
run machinectl --no-pager --no-legend --output=json list-images
f images "$r" "$o"
if [ "$mr" -eq 0 ] && [ "${pretty:-0}" = 1 ]; then
  # shellcheck disable=SC2020  # one newline per separator character, on purpose
  case $m in
    '['*) names=$(printf '%s\n' "$m" | tr ',{}[]' '\n\n\n\n\n' |
            sed -n 's/^[[:space:]]*"machine"[[:space:]]*:[[:space:]]*"\([A-Za-z0-9.-]*\)"[[:space:]]*$/\1/p') ;;
    *) names=$(printf '%s\n' "$m" | sed -n 's/^\([A-Za-z0-9][A-Za-z0-9.-]*\)[[:space:]].*/\1/p') ;;
  esac
  j=
  [ "${v:-0}" -ge 240 ] && j=--json=short
  for n in $names; do
    run busctl $j --timeout=5 call org.freedesktop.machine1 /org/freedesktop/machine1 \
      org.freedesktop.machine1.Manager GetMachineOSRelease s "$n"
    f os "$n" "$r" "$o"
  done
fi
f end
"""


def listing_script(pretty_name: bool = False) -> str:
    """LISTING_SCRIPT as sent to a host (a fixed first line: nothing of the config in it)."""
    return f"pretty={1 if pretty_name else 0}\n" + LISTING_SCRIPT


# --- configuration --------------------------------------------------------------------
def is_plugin_name(name: object) -> bool:
    """`plugin: nspawn`, or any fully qualified name of it (`some.collection.nspawn`)."""
    return isinstance(name, str) and (name == PLUGIN_NAME or name.endswith("." + PLUGIN_NAME))


class AcceptedPluginNames(list):
    """What ansible-core checks `plugin:` against (`in`): nspawn or any `*.nspawn`."""

    def __contains__(self, name: object) -> bool:
        return is_plugin_name(name) or super().__contains__(name)


def connection_plugin_name(plugin_module: str) -> str:
    """ansible_connection of the machines: `nspawn` when the inventory plugin is loaded from a
    path (the checkout's or a package's plugin dirs, beside the connection plugin's), and the
    collection's FQCN when it is loaded from a collection (there the short name is not found
    unless the connection plugin's dir is configured too)."""
    parts = plugin_module.split(".")
    if len(parts) > 3 and parts[0] == "ansible_collections":
        return f"{parts[1]}.{parts[2]}.{PLUGIN_NAME}"
    return PLUGIN_NAME


def is_config_path(path: str) -> bool:
    base = os.path.basename(path)
    return any(base == s or base.endswith("." + s) for s in CONFIG_SUFFIXES)


_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _label_from(name: str) -> str:
    """A host's default label (groups, nspawn_host, {{ host }}): its name, made name-safe."""
    label = re.sub(r"[^A-Za-z0-9_.-]", "-", name).strip("-.")
    return label or "host"


def short_label(label: str) -> str:
    """{{ host_short }}: up to the first dot; an IP address whole, its dots as dashes."""
    try:
        ipaddress.ip_address(label)
    except ValueError:
        return label.split(".", 1)[0]
    return label.replace(".", "-").replace(":", "-")


@dataclass(frozen=True)
class HostSpec:
    """A host that runs machines: how to reach it and how it is named in the inventory."""

    name: str  # the SSH target (ansible_host)
    label: str  # nspawn_host, nspawn_host_<label>, {{ host }}
    port: int | None = None
    user: str | None = None
    private_key_file: str | None = None
    ssh_common_args: str | None = None
    sudo: bool = False

    @property
    def short(self) -> str:
        return short_label(self.label)

    @property
    def where(self) -> str:
        target = f"{self.user}@{self.name}" if self.user else self.name
        target += f":{self.port}" if self.port else ""
        return self.label if target == self.label else f"{self.label} ({target})"

    def connection_vars(self, connection: str = PLUGIN_NAME) -> dict[str, Any]:
        out: dict[str, Any] = {"ansible_connection": connection, "ansible_host": self.name}
        if self.port is not None:
            out["ansible_port"] = self.port
        if self.user is not None:
            out["ansible_user"] = self.user
        if self.private_key_file is not None:
            out["ansible_ssh_private_key_file"] = self.private_key_file
        if self.ssh_common_args is not None:
            out["ansible_ssh_common_args"] = self.ssh_common_args
        if self.sudo:
            out["ansible_nspawn_host_sudo"] = True
        return out


def _opt_str(item: Mapping[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
    return str(value)


def _opt_port(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        port = int(str(value))
    except ValueError:
        raise ConfigError(f"{where}: port must be a number, got {value!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{where}: port {port} is out of range")
    return port


def _opt_bool(value: Any, where: str, key: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("0", "false", "no", "off", "n", ""):
        return False
    raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")


def host_spec_from_item(item: Any, index: int) -> HostSpec:
    """One item of the `hosts:` option: a mapping (or just the SSH target as a string)."""
    where = f"hosts[{index}]"
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a mapping with at least `name`, got {item!r}")
    unknown = sorted(set(item) - set(HOST_ITEM_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))} "
                          f"(known: {', '.join(HOST_ITEM_KEYS)})")
    name = _opt_str(item, "name", where)
    if not name:
        raise ConfigError(f"{where} has no `name` (the host's SSH target)")
    if name.startswith("-") or any(c.isspace() for c in name):
        raise ConfigError(f"{where}: {name!r} is not a host name")
    alias = _opt_str(item, "alias", where)
    if alias is not None and not _LABEL_RE.fullmatch(alias):
        raise ConfigError(f"{where}: alias {alias!r} may hold only letters, digits, '_', '.' "
                          "and '-'")
    return HostSpec(name=name, label=alias or _label_from(name),
                    port=_opt_port(item.get("port"), where), user=_opt_str(item, "user", where),
                    private_key_file=_opt_str(item, "private_key_file", where),
                    ssh_common_args=_opt_str(item, "ssh_common_args", where),
                    sudo=_opt_bool(item.get("sudo"), where, "sudo"))


def _first(hostvars: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if hostvars.get(key) not in (None, ""):
            return hostvars[key]
    return None


def host_spec_from_vars(inventory_name: str, hostvars: Mapping[str, Any]) -> HostSpec:
    """A host of `hosts_from_group`: its connection variables, as written (not templated)."""
    where = f"host {inventory_name} of hosts_from_group"

    def text(*keys: str) -> str | None:
        value = _first(hostvars, *keys)
        return None if value is None else str(value)

    name = text("ansible_host", "ansible_ssh_host") or str(inventory_name)
    label = str(inventory_name) if _LABEL_RE.fullmatch(str(inventory_name)) else _label_from(
        str(inventory_name))
    return HostSpec(name=name, label=label,
                    port=_opt_port(_first(hostvars, "ansible_port", "ansible_ssh_port"), where),
                    user=text("ansible_user", "ansible_ssh_user"),
                    private_key_file=text("ansible_ssh_private_key_file",
                                          "ansible_private_key_file"),
                    ssh_common_args=text("ansible_ssh_common_args"),
                    sudo=_opt_bool(hostvars.get("ansible_nspawn_host_sudo"), where, "sudo"))


def check_unique_labels(specs: Iterable[HostSpec]) -> list[HostSpec]:
    seen: dict[str, HostSpec] = {}
    out = []
    for spec in specs:
        other = seen.get(spec.label)
        if other is not None:
            if other == spec:
                continue  # listed twice (hosts and hosts_from_group): ask it once
            raise ConfigError(f"two hosts are both named {spec.label!r} ({other.where} and "
                              f"{spec.where}): give each an `alias`")
        seen[spec.label] = spec
        out.append(spec)
    return out


# --- parsing what a host prints -------------------------------------------------------
@dataclass
class Machine:
    """One machine or image of a host, as machined reports it."""

    name: str
    state: str  # running | stopped
    machine_class: str | None = None  # container | vm (None: a stopped image)
    service: str | None = None
    os_id: str | None = None
    os_version: str | None = None
    os_pretty_name: str | None = None
    image_type: str | None = None  # directory | subvolume | raw | block (None: no image)


@dataclass
class HostListing:
    """What one host reported (or why it could not be asked). JSON-able for the cache."""

    label: str
    machines: list[Machine] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    systemd: int | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HostListing:
        machines = [Machine(**m) for m in data.get("machines") or []]
        return cls(label=data["label"], machines=machines, error=data.get("error"),
                   warnings=list(data.get("warnings") or []), systemd=data.get("systemd"),
                   seconds=float(data.get("seconds") or 0.0))


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+~-]*")


def _clean(value: Any) -> str | None:
    """A reported string as data: no control characters, bounded, '-'/'' mean unknown."""
    if not isinstance(value, str):
        return None
    value = _CONTROL_RE.sub(" ", value).strip()[:MAX_FIELD]
    return value if value not in ("", "-") else None


def _word(value: Any) -> str | None:
    """A field that must be one word (class, type, os id, version): anything else is unknown."""
    value = _clean(value)
    return value if value is not None and _WORD_RE.fullmatch(value) else None


def _shown(name: object) -> str:
    return repr(name)[:80]


def _is_json(text: str) -> bool:
    return text.lstrip().startswith("[")


def _json_objects(text: str, what: str, warnings: list[str]) -> list[dict[str, Any]]:
    """The rows of machinectl's JSON table; a row that is not an object is skipped with a warning."""
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise NspawnError(f"{what} printed JSON that does not parse: {exc}") from None
    if not isinstance(rows, list):
        raise NspawnError(f"{what} printed JSON that is not a list")
    objects = []
    for row in rows:
        if isinstance(row, dict):
            objects.append(row)
        else:
            warnings.append(f"{what} printed a row that is not an object, skipped: {_shown(row)}")
    return objects


def _accept_name(name: object, seen: set[str], warnings: list[str], what: str) -> bool:
    if name == ".host":  # machined's name for the host itself: never a target
        return False
    if not is_valid_machine_name(name):
        warnings.append(f"{what} reports a machine name that is not valid, skipped: {_shown(name)}")
        return False
    if name in seen:
        warnings.append(f"{what} reports machine {name} twice; the first is kept")
        return False
    seen.add(name)  # type: ignore[arg-type]
    return True


def parse_machine_list(text: str) -> tuple[list[Machine], list[str]]:
    """`machinectl list --no-legend --output=json`: a JSON array (systemd with JSON tables) or
    the text columns MACHINE CLASS SERVICE OS VERSION ADDRESSES (older machinectl ignores
    --output=json here). Returns the running machines and warnings about refused rows."""
    warnings: list[str] = []
    machines: list[Machine] = []
    seen: set[str] = set()
    what = "machinectl list"
    if _is_json(text):
        for row in _json_objects(text, what, warnings):
            name = row.get("machine", row.get("name"))
            if _accept_name(name, seen, warnings, what):
                machines.append(Machine(name=name, state="running",
                                        machine_class=_word(row.get("class")),
                                        service=_word(row.get("service")),
                                        os_id=_word(row.get("os")),
                                        os_version=_word(row.get("version"))))
        return machines, warnings
    for line in text.splitlines():
        if not line.strip() or line[0].isspace():
            continue  # blank, or a further address of the machine above
        fields = line.split()
        if len(fields) < 2:
            warnings.append(f"{what} printed a line it does not understand, skipped: {_shown(line)}")
            continue
        if not _accept_name(fields[0], seen, warnings, what):
            continue
        os_id = os_version = None
        if len(fields) == 6:
            # OS and VERSION come from the container's os-release: a value with a space in
            # it shifts the columns, so only the exact 6-column shape is trusted.
            os_id, os_version = _word(fields[3]), _word(fields[4])
        machines.append(Machine(name=fields[0], state="running",
                                machine_class=_word(fields[1]),
                                service=_word(fields[2]) if len(fields) > 2 else None,
                                os_id=os_id, os_version=os_version))
    return machines, warnings


def parse_image_list(text: str) -> tuple[dict[str, str | None], list[str]]:
    """`machinectl list-images --no-legend --output=json`: JSON, or the text columns NAME TYPE RO
    USAGE CREATED MODIFIED (only NAME and TYPE are read: USAGE may be blank, dates have
    spaces). Returns {image name: type} and warnings."""
    warnings: list[str] = []
    images: dict[str, str | None] = {}
    seen: set[str] = set()
    what = "machinectl list-images"
    if _is_json(text):
        for row in _json_objects(text, what, warnings):
            name = row.get("name")
            if _accept_name(name, seen, warnings, what):
                images[name] = _word(row.get("type"))
        return images, warnings
    for line in text.splitlines():
        if not line.strip() or line[0].isspace():
            continue
        fields = line.split()
        if _accept_name(fields[0], seen, warnings, what):
            images[fields[0]] = _word(fields[1]) if len(fields) > 1 else None
    return images, warnings


_BUSCTL_STRING_RE = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
_C_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
              "b": "\b", "f": "\f", "v": "\v"}


def _c_unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        s = m.group(1)
        if s[0] in _C_ESCAPES:
            return _C_ESCAPES[s[0]]
        if s[0] == "x":
            return chr(int(s[1:], 16))
        if s[0] in "01234567":
            return chr(int(s, 8))
        return s
    return re.sub(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)", one, text, flags=re.S)


def parse_os_release(text: str) -> dict[str, str]:
    """machined's GetMachineOSRelease as busctl prints it: `--json=short`
    ({"type":"a{ss}","data":[{...}]}) or the text form `a{ss} 2 "ID" "debian" ...`."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text).get("data")
        except (ValueError, AttributeError):
            return {}
        fields = data[0] if isinstance(data, list) and data else data
        if not isinstance(fields, dict):
            return {}
        return {k: v for k, v in fields.items() if isinstance(k, str) and isinstance(v, str)}
    if not text.startswith("a{ss}"):
        return {}
    strings = [_c_unescape(s) for s in _BUSCTL_STRING_RE.findall(text)]
    return dict(zip(strings[::2], strings[1::2], strict=False))


def split_fields(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace")
    if not text.endswith("\0"):
        raise NspawnError("the listing was cut short")
    return text[:-1].split("\0")


def parse_listing_output(data: bytes) -> dict[str, Any]:
    """The NUL-terminated fields LISTING_SCRIPT prints -> {systemd, list, images, os}."""
    fields = split_fields(data)
    if fields[:2] != [MAGIC, SCRIPT_VERSION]:
        raise NspawnError("the host did not run the listing script (its output does not start "
                          "with the script's marker)")
    out: dict[str, Any] = {"systemd": None, "list": None, "images": None, "os": {}}
    i = 2
    try:
        while True:
            key = fields[i]
            if key == "end":
                break
            if key == "systemd":
                out["systemd"] = int(fields[i + 1]) if fields[i + 1].isdigit() else None
                i += 2
            elif key in ("list", "images"):
                out[key] = (int(fields[i + 1]), fields[i + 2])
                i += 3
            elif key == "os":
                out["os"][fields[i + 1]] = (int(fields[i + 2]), fields[i + 3])
                i += 4
            else:
                raise NspawnError(f"the listing has an unknown field {_shown(key)}")
    except (IndexError, ValueError):
        raise NspawnError("the listing is malformed or was cut short") from None
    if out["list"] is None:
        raise NspawnError("the listing has no `machinectl list` output")
    return out


def machines_from_listing(raw: Mapping[str, Any], include_stopped: bool = True,
                          ) -> tuple[list[Machine], list[str]]:
    """Running machines (with their OS, from machined) and, if asked, the images that are not
    running (state stopped). Raises NspawnError when `machinectl list` failed."""
    rc, text = raw["list"]
    if rc != 0:
        raise NspawnError(f"`machinectl list` failed (exit {rc}): {text.strip()[-500:]}")
    machines, warnings = parse_machine_list(text)
    images: dict[str, str | None] = {}
    if raw.get("images") is not None:
        irc, itext = raw["images"]
        if irc == 0:
            images, more = parse_image_list(itext)
            warnings += more
        else:
            warnings.append(f"`machinectl list-images` failed (exit {irc}), stopped images are "
                            f"not listed: {itext.strip()[-300:]}")
    for machine in machines:
        machine.image_type = images.get(machine.name)
        orc, otext = raw.get("os", {}).get(machine.name, (1, ""))
        release = parse_os_release(otext) if orc == 0 else {}
        if release:
            machine.os_id = _word(release.get("ID")) or machine.os_id
            machine.os_version = _word(release.get("VERSION_ID")) or machine.os_version
            machine.os_pretty_name = _clean(release.get("PRETTY_NAME"))
    running = {m.name for m in machines}
    if include_stopped:
        machines += [Machine(name=name, state="stopped", image_type=kind)
                     for name, kind in images.items() if name not in running]
    machines.sort(key=lambda m: m.name)
    return machines, warnings


# --- asking the hosts -----------------------------------------------------------------
@dataclass(frozen=True)
class SshOptions:
    executable: str = "ssh"
    args: str = "-o ControlMaster=auto -o ControlPersist=60s"
    control_path_dir: str | None = "~/.ansible/cp"
    timeout: float = 30.0


def ssh_argv(spec: HostSpec, opts: SshOptions) -> list[str]:
    """The user's options first: ssh keeps the first value it gets for each option."""
    argv = [opts.executable]
    if spec.ssh_common_args:
        argv += shlex.split(spec.ssh_common_args)
    if spec.port is not None:
        argv += ["-p", str(spec.port)]
    if spec.user:
        argv += ["-l", spec.user]
    if spec.private_key_file:
        argv += ["-i", os.path.expanduser(spec.private_key_file)]
    extra = shlex.split(opts.args or "")
    argv += extra
    joined = " ".join(argv).lower()
    if opts.control_path_dir and "controlmaster" in joined and "controlpath" not in joined:
        cp_dir = os.path.expanduser(opts.control_path_dir)
        argv += ["-o", f"ControlPath={cp_dir}/nsi-%C"]
    argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, int(opts.timeout))}",
             "--", spec.name, "sh -s"]
    return argv


def _ssh_error(stderr: str, code: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    tail = "; ".join(lines[-3:])[-600:]
    return tail or f"ssh exited {code} without a message"


def discover_host(spec: HostSpec, opts: SshOptions, include_stopped: bool = True,
                  runner: Callable[..., subprocess.Popen] = subprocess.Popen, *,
                  pretty_name: bool = False) -> HostListing:
    """ONE ssh round trip: run LISTING_SCRIPT on the host, parse what it prints."""
    start = time.monotonic()
    listing = HostListing(label=spec.label)
    if opts.control_path_dir:
        try:
            os.makedirs(os.path.expanduser(opts.control_path_dir), mode=0o700, exist_ok=True)
        except OSError:
            pass  # ssh then says what is wrong with the ControlPath
    # stderr to a file, not a pipe: a ControlPersist master that ssh leaves in the background
    # may keep its stderr open, and waiting for EOF on a pipe would wait for the master.
    with tempfile.TemporaryFile() as err:
        try:
            # Its own process group: a timeout ends ssh and whatever it started (ProxyCommand).
            proc = runner(ssh_argv(spec, opts), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=err, start_new_session=True)
        except OSError as exc:
            listing.error = f"cannot run {opts.executable}: {exc}"
            return listing
        try:
            out, _ = proc.communicate(listing_script(pretty_name).encode(), timeout=opts.timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            listing.error = f"no answer within {opts.timeout:g} s (option `timeout`)"
            listing.seconds = time.monotonic() - start
            return listing
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    listing.seconds = time.monotonic() - start
    if not out:  # ssh itself failed (exit 255: refused, no route, host key, auth, ...)
        listing.error = _ssh_error(stderr, proc.returncode)
        return listing
    try:
        raw = parse_listing_output(out)
        listing.systemd = raw["systemd"]
        listing.machines, listing.warnings = machines_from_listing(raw, include_stopped)
    except NspawnError as exc:
        said = f"; {_ssh_error(stderr, 0)}" if stderr.strip() else ""
        listing.error = f"{exc} (exit {proc.returncode}{said})"
    return listing


def discover(specs: list[HostSpec], opts: SshOptions, include_stopped: bool = True,
             discover_one: Callable[..., HostListing] = discover_host, *,
             pretty_name: bool = False) -> list[HostListing]:
    """Every host at once (threads: each waits on its own ssh); results in config order."""
    if not specs:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(specs))) as pool:
        futures = [pool.submit(discover_one, spec, opts, include_stopped, pretty_name=pretty_name)
                   for spec in specs]
        return [f.result() for f in futures]


# --- from listings to inventory hosts -------------------------------------------------
_INVENTORY_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")


def safe_group_part(value: str) -> str:
    """Group names hold letters, digits and '_' only (Ansible's own rule)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", value)


@dataclass
class Entry:
    """One machine as an inventory host."""

    name: str
    spec: HostSpec
    machine: Machine
    connection: str = PLUGIN_NAME  # ansible_connection: the connection plugin's name

    def variables(self) -> dict[str, Any]:
        m = self.machine
        return {**self.spec.connection_vars(self.connection),
                "ansible_nspawn_container": m.name,
                "nspawn_host": self.spec.label,
                "nspawn_state": m.state,
                "nspawn_class": m.machine_class,
                "nspawn_os_id": m.os_id,
                "nspawn_os_version": m.os_version,
                "nspawn_os_pretty_name": m.os_pretty_name,
                "nspawn_image_type": m.image_type}

    def groups(self) -> list[str]:
        m = self.machine
        groups = [f"nspawn_host_{safe_group_part(self.spec.label)}", f"nspawn_{m.state}"]
        if m.os_id:
            groups.append(f"nspawn_os_{safe_group_part(m.os_id)}")
        if m.machine_class:
            groups.append(f"nspawn_class_{safe_group_part(m.machine_class)}")
        return groups


def template_vars(spec: HostSpec, machine: Machine) -> dict[str, Any]:
    """What name_template sees."""
    return {"machine": machine.name, "host": spec.label, "host_short": spec.short,
            "ssh_host": spec.name, "state": machine.state, "class": machine.machine_class,
            "os_id": machine.os_id}


def _check_inventory_name(name: Any, spec: HostSpec, machine: Machine) -> str:
    name = "" if name is None else str(name).strip()
    if not _INVENTORY_NAME_RE.fullmatch(name):
        raise ConfigError(f"name_template gives {name!r} for machine {machine.name} on host "
                          f"{spec.label}: an inventory name must be letters, digits, '_', '.', "
                          "'@' and '-'")
    return name


def assign_names(listings: Iterable[tuple[HostSpec, HostListing]],
                 render: Callable[[dict[str, Any]], Any] | None = None,
                 ) -> tuple[list[Entry], list[str]]:
    """Inventory names for every machine, hosts in config order, never overwriting one.

    render=None is the default template (the machine name): a name taken on an earlier
    host is a warning naming both hosts, and the later machine becomes
    `<machine>-<host_short>` (then `<machine>-<host>`). A custom template that gives one
    name twice is a ConfigError naming both: the template has to tell them apart.
    """
    taken: dict[str, Entry] = {}
    entries: list[Entry] = []
    warnings: list[str] = []
    for spec, listing in listings:
        for machine in listing.machines:
            if render is None:
                name = machine.name
            else:
                name = _check_inventory_name(render(template_vars(spec, machine)), spec, machine)
            first = taken.get(name)
            if first is not None:
                if render is not None:
                    raise ConfigError(
                        f"name_template gives {name!r} for machine {first.machine.name} on host "
                        f"{first.spec.label} and for machine {machine.name} on host "
                        f"{spec.label}; make the names unique, usually with "
                        "name_template: '{{ machine }}-{{ host }}'")
                candidates = [f"{machine.name}-{spec.short}", f"{machine.name}-{spec.label}"]
                free = [c for c in candidates if c not in taken]
                if not free:
                    raise ConfigError(f"machine {machine.name} on host {spec.label}: every name "
                                      f"for it is taken ({', '.join([name, *candidates])}); "
                                      "set name_template: '{{ machine }}-{{ host }}'")
                warnings.append(
                    f"machine {machine.name} is on host {first.spec.label} and on host "
                    f"{spec.label}: the one on {spec.label} is listed as {free[0]}; set "
                    "name_template: '{{ machine }}-{{ host }}' to name every machine by its host")
                name = free[0]
            entry = Entry(name=name, spec=spec, machine=machine)
            taken[name] = entry
            entries.append(entry)
    return entries, warnings


# --- the Ansible side -----------------------------------------------------------------
def _specs(plugin: Any) -> list[HostSpec]:
    items = plugin.get_option("hosts") or []
    if not isinstance(items, list):
        raise ConfigError(f"`hosts` must be a list, got {type(items).__name__}")
    specs = [host_spec_from_item(item, i) for i, item in enumerate(items)]
    group_name = plugin.get_option("hosts_from_group")
    if group_name:
        from ansible.inventory.helpers import get_group_vars
        from ansible.utils.vars import combine_vars
        group = plugin.inventory.groups.get(group_name)
        if group is None:
            raise ConfigError(f"hosts_from_group: there is no group {group_name!r} in the "
                              "inventory yet; give its inventory source first (-i that "
                              "source -i this file)")
        for host in sorted(group.get_hosts(), key=lambda h: h.name):
            hostvars = combine_vars(get_group_vars(host.get_groups()), host.get_vars())
            specs.append(host_spec_from_vars(host.name, hostvars))
    if not specs:
        raise ConfigError("no hosts to ask: set `hosts` (a list) or `hosts_from_group`")
    return check_unique_labels(specs)


def _cache_identity(specs: list[HostSpec], include_stopped: bool, pretty_name: bool) -> list[Any]:
    return [CACHE_FORMAT, include_stopped, pretty_name, [asdict(s) for s in specs]]


def _listings(plugin: Any, path: str, cache: bool, specs: list[HostSpec],
              include_stopped: bool) -> list[HostListing]:
    """Inventory cache as ansible-core's inventory plugins do it: read when Ansible allows
    (cache=True and the `cache` option), refresh otherwise. A listing with a host that
    could not be asked is not cached, so the next run asks again."""
    use = bool(plugin.get_option("cache"))
    key = plugin.get_cache_key(path) if use else None
    pretty_name = bool(plugin.get_option("os_pretty_name"))
    identity = _cache_identity(specs, include_stopped, pretty_name)
    if use and cache:
        try:
            cached = plugin._cache[key]
        except KeyError:
            cached = None
        if isinstance(cached, dict) and cached.get("identity") == identity:
            return [HostListing.from_dict(d) for d in cached["listings"]]
    if not float(plugin.get_option("timeout")) > 0:
        raise ConfigError(f"timeout must be more than 0 seconds, got {plugin.get_option('timeout')!r}")
    opts = SshOptions(executable=plugin.get_option("ssh_executable") or "ssh",
                      args=plugin.get_option("ssh_args") or "",
                      control_path_dir=plugin.get_option("control_path_dir") or None,
                      timeout=float(plugin.get_option("timeout")))
    start = time.monotonic()
    listings = discover(specs, opts, include_stopped, pretty_name=pretty_name)
    plugin.display.vvv(f"nspawn inventory: {len(specs)} hosts asked in parallel in "
                       f"{time.monotonic() - start:.2f} s")
    if use and all(listing.error is None for listing in listings):
        plugin._cache[key] = {"identity": identity,
                              "listings": [listing.to_dict() for listing in listings]}
    return listings


def _renderer(plugin: Any) -> Callable[[dict[str, Any]], Any] | None:
    template = plugin.get_option("name_template")
    if not template or template.strip() in (DEFAULT_NAME_TEMPLATE, "{{machine}}"):
        return None
    templar = plugin.templar

    def render(variables: dict[str, Any]) -> Any:
        templar.available_variables = variables
        try:
            return templar.template(template)
        except Exception as exc:  # Ansible's templating errors have no common base before 2.19
            raise ConfigError(f"name_template {template!r} failed for machine "
                              f"{variables['machine']} on host {variables['host']}: {exc}") from exc
    return render


def _warn_replaced(plugin: Any, entry: Entry) -> None:
    """A host of that name came from another source: say so when it pointed elsewhere."""
    existing = plugin.inventory.get_host(entry.name)
    if existing is None:
        return
    old = existing.get_vars()
    new = entry.variables()
    changed = [k for k in ("ansible_host", "ansible_port", "ansible_nspawn_container")
               if old.get(k) not in (None, new.get(k))]
    if changed:
        plugin.display.warning(
            f"nspawn inventory: host {entry.name} was already in the inventory with "
            + ", ".join(f"{k}={old.get(k)!r}" for k in changed)
            + f"; it is now machine {entry.machine.name} on host {entry.spec.label}")


def populate(plugin: Any, path: str, cache: bool = True) -> None:
    """InventoryModule.parse after BaseInventoryPlugin.parse: read the config, ask the hosts,
    add hosts, groups, compose/groups/keyed_groups."""
    from ansible.errors import AnsibleParserError
    from ansible.utils.unsafe_proxy import wrap_var

    plugin._redirected_names = AcceptedPluginNames(
        getattr(plugin, "_redirected_names", None) or [plugin.NAME])
    plugin._read_config_data(path)
    strict = bool(plugin.get_option("strict"))
    include_stopped = bool(plugin.get_option("include_stopped"))
    try:
        specs = _specs(plugin)
        listings = _listings(plugin, path, cache, specs, include_stopped)
        failed = [(s, li) for s, li in zip(specs, listings, strict=True) if li.error]
        for spec, listing in failed:
            message = f"nspawn inventory: cannot list the machines of host {spec.where}: {listing.error}"
            if strict:
                raise ConfigError(message + " (strict: true)")
            plugin.display.warning(message)
        for spec, listing in zip(specs, listings, strict=True):
            for text in listing.warnings:
                plugin.display.warning(f"nspawn inventory: host {spec.where}: {text}")
            if not listing.error:
                plugin.display.vvv(f"nspawn inventory: host {spec.where}: "
                                   f"{len(listing.machines)} machines in {listing.seconds:.2f} s")
        entries, warnings = assign_names(
            [(s, li) for s, li in zip(specs, listings, strict=True) if not li.error],
            _renderer(plugin))
    except NspawnError as exc:
        raise AnsibleParserError(str(exc)) from None
    for text in warnings:
        plugin.display.warning(f"nspawn inventory: {text}")

    inventory = plugin.inventory
    connection = connection_plugin_name(type(plugin).__module__)
    for entry in entries:
        entry.connection = connection
        _warn_replaced(plugin, entry)
        # Machine names and what machined reports are data: marked unsafe (never templated).
        variables = {k: (wrap_var(v) if k.startswith("nspawn_") or k == "ansible_nspawn_container"
                         else v) for k, v in entry.variables().items()}
        inventory.add_host(entry.name)
        for group in entry.groups():
            inventory.add_group(group)
            inventory.add_child(group, entry.name)
        for key, value in variables.items():
            inventory.set_variable(entry.name, key, value)
        plugin._set_composite_vars(plugin.get_option("compose"), variables, entry.name, strict=strict)
        plugin._add_host_to_composed_groups(plugin.get_option("groups"), variables, entry.name,
                                            strict=strict)
        plugin._add_host_to_keyed_groups(plugin.get_option("keyed_groups"), variables, entry.name,
                                         strict=strict)
