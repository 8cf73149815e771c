"""The host's installed copy of helper.sh (enter.INSTALLED_HELPER, enter.INSTALL_HELPER), run
by the host's real sh against a directory of its own: it is used only when it and its
directory are this user's (root's) own regular file and directory, never a symlink, and the
installer gives a copy its name only when its SHA-256 matches. Anything else is refused (the
plugin then sends the command through the installer), and what runs is always the helper
this controller sent."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ansible_nspawn_fast import enter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="files of another owner need root to make")
NOBODY = 65534
DIGEST = enter.helper_digest()
# A verb the helper refuses before it needs any host tool: its answer shows the helper ran.
RAN = f"NSPAWN-FAST-ERROR {enter.RUN_NONCE} usage unknown verb probe"
FORGED = "#!/bin/sh\necho FORGED-HELPER-RAN\n"


def call(directory: Path, install: bool = False, text: str | None = None) -> subprocess.CompletedProcess[str]:
    if install:
        argv = ["sh", "-c", enter.INSTALL_HELPER, "nspawn-fast", str(directory), DIGEST,
                enter.host_helper() if text is None else text]
    else:
        argv = ["sh", "-c", enter.INSTALLED_HELPER, "nspawn-fast", str(directory), DIGEST]
    return subprocess.run([*argv, enter.RUN_NONCE, "probe"], capture_output=True, text=True, timeout=30)


def no_helper(cp: subprocess.CompletedProcess[str]) -> bool:
    return enter.parse_helper_error(cp.returncode, cp.stdout.encode(), cp.stderr.encode()) == (
        enter.NO_HELPER, "the helper is not installed on this host")


def test_the_installer_installs_a_root_only_copy_that_later_calls_use(tmp_path):
    directory = tmp_path / "nspawn-fast"
    assert no_helper(call(directory))
    cp = call(directory, install=True)
    assert (cp.returncode, RAN in cp.stderr) == (211, True), cp
    installed = directory / f"helper-{DIGEST}"
    assert installed.read_text() == enter.host_helper()
    assert (installed.stat().st_mode & 0o777, directory.stat().st_mode & 0o777) == (0o600, 0o700)
    assert [p.name for p in directory.iterdir()] == [installed.name]  # no temp file left
    cp = call(directory)
    assert (cp.returncode, RAN in cp.stderr) == (211, True), cp


@pytest.mark.parametrize("forgery", ["other-owner", "symlink", "directory-of-other-owner", "directory-symlink"])
def test_a_forged_copy_is_never_run(tmp_path, forgery):
    directory = tmp_path / "nspawn-fast"
    installed = directory / f"helper-{DIGEST}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (elsewhere / installed.name).write_text(FORGED)
    if forgery == "directory-symlink":
        directory.symlink_to(elsewhere)
    else:
        directory.mkdir(mode=0o700)
        if forgery == "symlink":
            installed.symlink_to(elsewhere / installed.name)
        else:
            installed.write_text(FORGED)
            installed.chmod(0o600)
            os.chown(installed if forgery == "other-owner" else directory, NOBODY, NOBODY)
    cp = call(directory)
    assert no_helper(cp), cp
    assert "FORGED" not in cp.stdout + cp.stderr
    # Through the installer the helper this controller sent runs, whatever is there.
    cp = call(directory, install=True)
    assert "FORGED" not in cp.stdout + cp.stderr
    assert (cp.returncode, RAN in cp.stderr) == (211, True), cp
    if forgery == "other-owner":  # its own directory: the forged file is replaced
        assert installed.read_text() == enter.host_helper() and installed.stat().st_uid == 0


def test_a_copy_whose_hash_does_not_match_is_not_installed_and_the_sent_text_runs(tmp_path):
    directory = tmp_path / "nspawn-fast"
    cp = call(directory, install=True, text=FORGED.replace("FORGED", "SENT"))
    assert "SENT-HELPER-RAN" in cp.stdout
    assert not (directory / f"helper-{DIGEST}").exists()
    assert list(directory.iterdir()) == []
