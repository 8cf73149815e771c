"""The base image: one debootstrap tree shared read-only by every host and guest.

Cached under <cache>/<recipe hash>/rootfs and rebuilt only when the recipe changes.
It is built in a temporary directory and renamed into place, so an interrupted build
never leaves a half-made image that a later `up` would trust.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from .mounts import mounts_under, umount_all
from .runner import LabError, progress, require_space, require_tools, run

IMAGE_MB = 450  # measured ~324 MB, plus slack for the .deb cache during the build

# Everything that decides the image's content.  Change anything here and the hash
# changes, so the next `up` builds a new image (old ones stay until removed by hand).
RECIPE: dict[str, Any] = {
    "version": 1,
    "suite": "bookworm",
    "variant": "minbase",
    "mirror": "http://deb.debian.org/debian",
    "include": ["python3", "systemd", "systemd-sysv", "dbus", "systemd-container",
                "openssh-server", "iproute2", "sudo", "libpam-systemd"],
    # ssh.socket would grab *:22 in the shared network namespace; gettys only add noise.
    # systemd-remount-fs has nothing to remount under nspawn, and at a host's boot it
    # sometimes failed "to attach to cgroup" (hybrid cgroups here), leaving it degraded.
    "mask": ["ssh.socket", "apt-daily.timer", "apt-daily-upgrade.timer",
             "console-getty.service", "getty@.service", "systemd-remount-fs.service"],
}


def recipe_hash(recipe: dict[str, Any] = RECIPE) -> str:
    blob = json.dumps(recipe, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def image_dir(cache_dir: Path, recipe: dict[str, Any] = RECIPE) -> Path:
    return cache_dir / recipe_hash(recipe)


def rootfs(cache_dir: Path, recipe: dict[str, Any] = RECIPE) -> Path:
    return image_dir(cache_dir, recipe) / "rootfs"


def is_built(cache_dir: Path, recipe: dict[str, Any] = RECIPE) -> bool:
    # recipe.json is written last, after the rename: its presence means "complete".
    return (image_dir(cache_dir, recipe) / "recipe.json").is_file()


def host_public_keys(cache_dir: Path) -> list[str]:
    """The image's sshd host public keys (every host and guest shares them)."""
    keydir = rootfs(cache_dir) / "etc" / "ssh"
    return [p.read_text().split(" #")[0].strip() for p in sorted(keydir.glob("ssh_host_*_key.pub"))]


def _remove_tree(path: Path) -> None:
    """Remove a build tree; unmount what debootstrap may have left mounted inside first."""
    umount_all(path)
    if mounts_under(path):
        raise LabError(f"cannot clean up {path}: mounts remain under it",
                       f"unmount them (see /proc/self/mountinfo), then rm -rf {path}")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def _clean_stale_builds(cache_dir: Path) -> None:
    for p in cache_dir.glob(".build-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and Path(f"/proc/{pid}").exists() and int(pid) != os.getpid():
            continue  # another build is running right now
        progress(f"removing an interrupted image build: {p}")
        _remove_tree(p)


def _debootstrap(target: Path, log: Path, recipe: dict[str, Any]) -> None:
    argv = ["debootstrap", f"--variant={recipe['variant']}",
            f"--include={','.join(recipe['include'])}",
            recipe["suite"], str(target), recipe["mirror"]]
    last = time.monotonic()
    with open(log, "w") as logf:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        seen: set[str] = set()
        for line in proc.stdout:
            logf.write(line)
            # Show each new phase ("I: Retrieving", "I: Extracting", ...) once, plus at
            # most one line every 10 s, so a 50 s build visibly moves without flooding.
            head = " ".join(line.split()[:2])
            if head not in seen or time.monotonic() - last > 10:
                seen.add(head)
                last = time.monotonic()
                progress(f"  debootstrap: {line.strip()[:100]}")
        rc = proc.wait()
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-12:])
        hint = "check network access to the Debian mirror; the full log is in " + str(log)
        if "No space left" in tail:
            hint = "disk full: free some space and run `nspawn-fast lab up` again"
        raise LabError(f"debootstrap failed (exit {rc}):\n{tail}", hint)


def _configure(root: Path, recipe: dict[str, Any]) -> None:
    run(["chroot", str(root), "systemctl", "mask", *recipe["mask"]],
        what="masking units in the image")
    # Empty machine-id: each container gets its own at boot (nspawn passes a random
    # one); equal ids make nspawn refuse to link journals.
    (root / "etc" / "machine-id").write_text("")
    (root / "var" / "lib" / "dbus" / "machine-id").unlink(missing_ok=True)
    if not list((root / "etc" / "ssh").glob("ssh_host_*_key")):
        run(["chroot", str(root), "ssh-keygen", "-A"], what="generating ssh host keys")
    # debootstrap keeps the downloaded .debs: ~90 MB nobody needs.
    for deb in (root / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        deb.unlink()


def ensure_image(cache_dir: Path, recipe: dict[str, Any] = RECIPE) -> Path:
    """Return the rootfs of the image for `recipe`, building it if needed."""
    final = image_dir(cache_dir, recipe)
    if is_built(cache_dir, recipe):
        return final / "rootfs"
    require_tools(["debootstrap", "chroot"])
    cache_dir.mkdir(parents=True, exist_ok=True)
    _clean_stale_builds(cache_dir)
    if final.exists():  # present but without recipe.json: an unfinished leftover
        _remove_tree(final)
    require_space(cache_dir, IMAGE_MB, "the base image")
    build = cache_dir / f".build-{recipe_hash(recipe)}-{os.getpid()}"
    build.mkdir()
    t0 = time.monotonic()
    progress(f"building the base image {recipe_hash(recipe)} with debootstrap "
             f"({recipe['suite']}, {recipe['variant']}; about a minute)")
    try:
        _debootstrap(build / "rootfs", build / "debootstrap.log", recipe)
        _configure(build / "rootfs", recipe)
        build.rename(final)
        (final / "recipe.json").write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n")
    except BaseException:
        # Interrupted or failed: leave nothing half-done behind.
        _remove_tree(build)
        raise
    progress(f"base image ready in {time.monotonic() - t0:.0f} s: {final}")
    return final / "rootfs"


def remove_image(cache_dir: Path) -> None:
    """Drop the cached image for the current recipe (used to time a cold build)."""
    d = image_dir(cache_dir)
    if d.exists():
        _remove_tree(d)
