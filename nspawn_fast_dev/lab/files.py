"""Small writers for files placed into a container's merged root before it boots."""
from __future__ import annotations

import os
from pathlib import Path


def write(root: Path, rel: str, text: str, mode: int = 0o644) -> Path:
    """Write root/rel (rel is absolute inside the container), creating parents."""
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    os.chmod(p, mode)
    return p


def hostname_files(root: Path, name: str) -> None:
    write(root, "/etc/hostname", name + "\n")
    # sudo warns "unable to resolve host" unless the own name resolves.
    write(root, "/etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n"
                              "::1\tlocalhost ip6-localhost ip6-loopback\n")


def sshd_files(root: Path, port: int, pubkey: str) -> None:
    """sshd on its own loopback port (the network namespace is shared with the machine)."""
    write(root, "/etc/ssh/sshd_config.d/lab.conf",
          "# written by nspawn-fast lab\n"
          f"Port {port}\nListenAddress 127.0.0.1\n"
          # Many multiplexed sessions and parallel handshakes at forks > 10.
          "MaxSessions 100\nMaxStartups 100:30:200\n"
          "UseDNS no\nPasswordAuthentication no\n")
    ssh_dir = root / "root" / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    write(root, "/root/.ssh/authorized_keys", pubkey.strip() + "\n", 0o600)


def mask_unit(root: Path, unit: str) -> None:
    link = root / "etc" / "systemd" / "system" / unit
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to("/dev/null")
