"""`up`, `status` and `down`: the lab's lifecycle, built from the smaller modules."""
from __future__ import annotations

import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import guests, hosts, image, inventory, procs, state
from .config import LabConfig
from .mounts import mounts_under, umount_all
from .runner import (
    LabError,
    os_error,
    progress,
    require_root,
    require_space,
    require_tools,
    run,
    warn,
)

TOOLS = ["systemd-nspawn", "ssh", "ssh-keygen", "nsenter", "mount", "umount"]


# --- up ------------------------------------------------------------------------------
def up(cfg: LabConfig) -> None:
    require_root()
    require_tools(TOOLS)
    t0 = time.monotonic()
    try:
        reused = _reuse(cfg)
        if not reused:
            _fresh_up(cfg)
    except OSError as e:
        raise os_error(e, "bringing the lab up") from e
    progress(f"lab up in {time.monotonic() - t0:.1f} s "
             f"({cfg.hosts} hosts x {cfg.guests} guests{', reused' if reused else ''}); "
             f"ANSIBLE_CONFIG={cfg.ansible_cfg}")


def _running_hosts(cfg: LabConfig, st: dict[str, Any]) -> bool:
    recorded = st.get("hosts", {})
    want = {h.name: h for h in cfg.host_list()}
    if set(recorded) != set(want):
        return False
    return all(procs.is_ours(r["pid"], want[n].root(cfg.lab_dir), r.get("starttime"))
               for n, r in recorded.items())


def _reuse(cfg: LabConfig) -> bool:
    """Reuse a running lab of the same shape; tear down anything else found there."""
    st = state.load(cfg)
    # Anything in the lab dir without a usable state (even stale upper dirs) is cleaned
    # away first: a fresh lab must not inherit old files.
    leftovers = (st is not None or cfg.lab_dir.exists() or bool(mounts_under(cfg.lab_dir))
                 or bool(procs.nspawns_under(cfg.lab_dir)))
    if not leftovers:
        return False
    if st and st.get("phase") == "up" and st.get("image") == image.recipe_hash():
        old = state.config_from_state(st, cfg)
        if old.shape() != cfg.shape() or st.get("shape", {}).get("layout") != cfg.shape()["layout"]:
            progress(f"the running lab has another shape ({_shape_str(old)}; wanted "
                     f"{_shape_str(cfg)}): recreating it")
        elif not _running_hosts(cfg, st):
            progress("the lab's hosts are no longer running: recreating it")
        elif not cfg.key_file.exists():
            progress("the lab's ssh key is missing: recreating it")
        else:
            progress("the lab is up with the same shape: reusing it")
            _start_guests(cfg)
            inventory.write_all(cfg, image.host_public_keys(cfg.cache_dir), image.recipe_hash())
            return True
    elif st and st.get("image") not in (None, image.recipe_hash()):
        progress("the image recipe changed: recreating the lab")
    else:
        progress("cleaning up an incomplete lab first")
    down(cfg, quiet=True)
    return False


def _shape_str(cfg: LabConfig) -> str:
    s = f"{cfg.hosts}x{cfg.guests}"
    return s + (" +guest-sshd" if cfg.guest_sshd else "")


def _check_ports(cfg: LabConfig) -> None:
    ports = [h.port for h in cfg.host_list()]
    if cfg.guest_sshd:
        ports += cfg.guest_ports()
    for p in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
            except OSError as e:
                raise LabError(f"port 127.0.0.1:{p} is already in use ({e.strerror})",
                               "stop what uses it, or choose other ports with "
                               "--host-port-base / --guest-port-base") from e


def _keys(cfg: LabConfig) -> str:
    key = cfg.key_file
    key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nspawn-fast-lab",
             "-f", str(key)], what="generating the lab's ssh key")
    return Path(str(key) + ".pub").read_text()


def _fresh_up(cfg: LabConfig) -> None:
    rootfs = image.ensure_image(cfg.cache_dir)
    digest = image.recipe_hash()
    n_guests = sum(len(h.guests) for h in cfg.host_list())
    # Upper dirs stay small (a few MB per booted container: journal, tmp files).
    require_space(cfg.lab_dir, 100 + 15 * (n_guests + cfg.hosts), "the lab")
    _check_ports(cfg)
    cfg.lab_dir.mkdir(parents=True, exist_ok=True)
    pubkey = _keys(cfg)
    # known_hosts first: the readiness checks already ssh with strict host keys.
    inventory.write_all(cfg, image.host_public_keys(cfg.cache_dir), digest)
    st = state.new(cfg, digest)
    state.save(cfg, st)
    _raise_inotify_limit(n_guests + cfg.hosts)

    progress(f"preparing {cfg.hosts} hosts and {n_guests} guests (overlays of the image)")
    for h in cfg.host_list():
        hosts.prepare(cfg, h, rootfs, pubkey)

    progress("booting the hosts")
    for h in cfg.host_list():
        pid = hosts.boot(cfg, h)
        st["hosts"][h.name] = {"pid": pid, "starttime": procs.starttime(pid),
                               "root": str(h.root(cfg.lab_dir)), "port": h.port}
        state.save(cfg, st)  # recorded at once: `down` must find it even if up dies now

    def wait_host(h: Any) -> None:
        leader = hosts.wait_ready(cfg, h, st["hosts"][h.name]["pid"])
        st["hosts"][h.name]["leader"] = leader
        progress(f"{h.name} is up (ssh 127.0.0.1:{h.port})")

    _parallel(wait_host, cfg.host_list())
    state.save(cfg, st)
    _start_guests(cfg)
    st["phase"] = "up"
    state.save(cfg, st)


def _start_guests(cfg: LabConfig) -> None:
    n = sum(1 for h in cfg.host_list() for g in h.guests if g.started)
    progress(f"starting {n} guests (machinectl start in each host) and waiting for them")

    def one(h: Any) -> None:
        guests.start_and_wait(hosts.ssh_argv(cfg, h.port), h, progress)

    _parallel(one, cfg.host_list())


def _parallel(fn: Any, items: list[Any]) -> None:
    """Run fn over items in threads; re-raise the first error after all finished."""
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as ex:
        futures = [ex.submit(fn, i) for i in items]
    errors = [f.exception() for f in futures if f.exception()]
    if errors:
        raise errors[0]  # type: ignore[misc]


def _raise_inotify_limit(containers: int) -> None:
    """Each booted systemd takes several inotify instances, all as uid 0; the default
    limit of 128 runs out at a few dozen containers ("Too many open files")."""
    path = Path("/proc/sys/fs/inotify/max_user_instances")
    want = 256 + 16 * containers
    try:
        cur = int(path.read_text())
        if cur < want:
            path.write_text(str(want))
            progress(f"raised fs.inotify.max_user_instances from {cur} to {want}")
    except OSError as e:
        warn(f"cannot raise fs.inotify.max_user_instances ({e}); many guests may fail")


# --- down ----------------------------------------------------------------------------
def down(cfg: LabConfig, quiet: bool = False) -> None:
    """Stop the hosts, unmount everything under the lab dir, remove it (not the image)."""
    require_root()
    st = state.load(cfg) or {}
    pids = set()
    for h in st.get("hosts", {}).values():
        if "pid" in h and procs.is_ours(h["pid"], Path(h.get("root", "")), h.get("starttime")):
            pids.add(h["pid"])
    # Also anything booted from our dir that the state file missed (up died mid-way).
    pids |= set(procs.nspawns_under(cfg.lab_dir))
    if pids:
        if not quiet:
            progress(f"stopping {len(pids)} hosts (their guests shut down with them)")
        left = hosts.stop(sorted(pids))
        if left:
            raise LabError(f"hosts did not stop: PIDs {left}",
                           "check them with ps; then run `nspawn-fast lab down` again")
    umount_all(cfg.lab_dir)
    if cfg.lab_dir.exists():
        _check_is_lab_dir(cfg.lab_dir)
        if mounts_under(cfg.lab_dir):  # never rm across a mount
            raise LabError(f"mounts remain under {cfg.lab_dir}", "unmount them, then down again")
        subprocess.run(["rm", "-rf", "--one-file-system", str(cfg.lab_dir)], check=False)
        if cfg.lab_dir.exists():
            raise LabError(f"could not remove {cfg.lab_dir}",
                           f"remove it by hand: rm -rf {cfg.lab_dir}")
    if not quiet:
        progress(f"lab is down; {cfg.lab_dir} removed (image cache kept in {cfg.cache_dir})")


def _check_is_lab_dir(d: Path) -> None:
    """Refuse to rm -rf a directory the lab did not make (a mistyped --dir)."""
    names = {p.name for p in d.iterdir()}
    if names and not names & {"state.json", "lab.json", "hosts", "ssh"}:
        raise LabError(f"{d} does not look like a lab dir (no state.json, lab.json, hosts/, ssh/)",
                       "check --dir / NSPAWN_FAST_LAB_DIR; nothing was removed")


# --- status --------------------------------------------------------------------------
def status(cfg: LabConfig) -> int:
    """Print hosts, guests, ports and states; return 0 if everything is as `up` left it."""
    require_root()
    st = state.load(cfg)
    if not st:
        leftovers = mounts_under(cfg.lab_dir) or procs.nspawns_under(cfg.lab_dir)
        print(f"no lab at {cfg.lab_dir}" + (" (but leftovers: run `nspawn-fast lab down`)"
                                            if leftovers else ""))
        return 1
    cfg = state.config_from_state(st, cfg)
    ok = st.get("phase") == "up"
    print(f"lab {cfg.lab_dir}: {_shape_str(cfg)}, image {st.get('image')}, phase {st.get('phase')}")
    print(f"ANSIBLE_CONFIG={cfg.ansible_cfg}")
    for h in cfg.host_list():
        rec = st.get("hosts", {}).get(h.name, {})
        pid = rec.get("pid")
        running = bool(pid) and procs.is_ours(pid, h.root(cfg.lab_dir), rec.get("starttime"))
        machines: dict[str, str] = {}
        images: set[str] = set()
        if running:
            cp = run([*hosts.ssh_argv(cfg, h.port), "machinectl list --no-legend --no-pager; "
                      "echo ---; machinectl list-images --no-legend --no-pager"],
                     check=False, timeout=30)
            if cp.returncode == 0:
                top, _, bottom = cp.stdout.partition("---\n")
                machines = {ln.split()[0]: "running" for ln in top.splitlines() if ln.split()}
                images = {ln.split()[0] for ln in bottom.splitlines() if ln.split()}
            else:
                running = False
        hstate = "running" if running else "DOWN"
        ok &= running
        print(f"\n{h.name:10} ssh 127.0.0.1:{h.port}  pid {pid}  {hstate}")
        print(f"  {'GUEST':14} {'KIND':8} {'STATE':10} SSHD")
        for g in h.guests:
            gstate = machines.get(g.name) or ("stopped" if g.name in images else "missing")
            want = "running" if g.started else "stopped"
            flag = "" if gstate == want else f"  (expected {want})"
            ok &= not flag
            sshd = f"127.0.0.1:{g.sshd_port}" if g.sshd_port else "-"
            print(f"  {g.name:14} {g.kind:8} {gstate:10} {sshd}{flag}")
        if h.tree:
            print(f"  {h.tree:14} {'tree':8} {'-':10} (systemd-nspawn -D {guests.TREE_NAME} "
                  f"under /srv/nspawn-fast/trees)")
    return 0 if ok else 1
