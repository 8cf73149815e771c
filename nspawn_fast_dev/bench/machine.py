"""The machine and the versions a session ran on, for the report's header."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path


def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1]
    except OSError:
        pass
    return "?"


def describe() -> str:
    cpu = _first("/proc/cpuinfo", "model name")
    mem_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    mem = f"{int(mem_kb) / 1024 / 1024:.0f} GB" if mem_kb.isdigit() else "?"
    distro = _first("/etc/os-release", "PRETTY_NAME=").strip('"')
    return f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM, {distro}, kernel {platform.release()}"


def _cmd_version(argv: list[str]) -> str:
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    return ((cp.stdout or cp.stderr).strip().splitlines() or ["?"])[0]


def versions() -> str:
    pkgs = []
    for name in ("ansible-core", "mitogen", "pytest-benchmark", "matplotlib"):
        try:
            pkgs.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pkgs.append(f"{name} ?")
    return ", ".join([f"Python {platform.python_version()}", *pkgs,
                      _cmd_version(["ssh", "-V"]),
                      _cmd_version(["systemd-nspawn", "--version"])])


def commit(repo: Path) -> str:
    head = _cmd_version(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return head + (" (working tree with uncommitted changes)" if dirty else "")
