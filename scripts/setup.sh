#!/usr/bin/env bash
# Prepare this checkout on a fresh Debian 12 machine, as root: the apt packages the lab
# needs, a virtualenv in .venv, this project installed into it (editable) with its
# test and benchmark extras, and the checkout on .venv's path for the development tools
# (nspawn_fast_dev: `nspawn-fast lab`, `nspawn-fast bench`), which the package leaves out.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "setup: run as root (the lab mounts overlays and boots containers)" >&2
    exit 1
fi

# sshpass: ansible-core < 2.19 needs it for any ssh connection given a password (2.19+ uses
# SSH_ASKPASS); the tests pass ansible_password to check that it is never logged.
packages=(systemd-container debootstrap openssh-server openssh-client iproute2 python3-venv sshpass)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: $python is older than 3.11; set PYTHON=/path/to/python3.11+" >&2
    exit 1
fi
if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: creating .venv with $("$python" --version)" >&2
    rm -rf .venv
    "$python" -m venv .venv
fi
# Reinstall only when pyproject.toml or this script changed (the install is editable: code changes
# need no reinstall).
stamp=.venv/.nspawn-fast-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x .venv/bin/nspawn-fast ]; then
    echo "setup: installing ansible-nspawn-fast into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,bench,lint]'
    echo "$want" > "$stamp"
fi
# nspawn_fast_dev is no part of the installed package: a .pth file puts this checkout on
# .venv's sys.path, so `nspawn-fast lab ...` and `nspawn-fast bench` find it.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ "$(cat "$site/nspawn_fast_dev.pth" 2>/dev/null)" != "$PWD" ]; then
    echo "$PWD" > "$site/nspawn_fast_dev.pth"
fi
