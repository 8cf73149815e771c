"""Runs in a container's interpreter: the code it compiles, kept for the next run.

mitogen sends a new interpreter every module it imports as source, and the interpreter
compiles each one. For a task's first module run that is some 70 modules (mitogen's,
ansible_mitogen's, ansible's module_utils): about 90 ms of CPU per container, which a run
against 50 containers pays 50 times, every run (measured: almost half of a cold container
interpreter's CPU). Python itself keeps such work in __pycache__; this module does the same
for mitogen's importer, in a directory of the container that only its root can write:
`install()` makes mitogen.core's importer compile through `cached_compile`, which looks the
code object up by a hash of the interpreter's version, the file name and the source.

Trust: only an interpreter running as root uses the cache (a become user's does not), and
it reads only root's regular files in root's own directory that nobody else can write. Root
of the container could put anything there, but it controls this interpreter anyway: the
cache never crosses to the host or to another container. It is bounded: when it holds more
than MAX_ENTRIES files (sources of other versions pile up over upgrades), it is emptied.
Any failure (a read-only tree, a full disk) just compiles, as without the cache.
"""
from __future__ import annotations

import hashlib
import marshal
import os
import stat
import sys
import types
import typing as t

CACHE_DIR = "/var/cache/ansible-nspawn-fast/code"
MAX_ENTRIES = 1024
MAX_FILE = 8 << 20
_VERSION = (sys.version + "\0" + sys.implementation.cache_tag + "\0").encode()

_dir: str | None = None  # set by install() once the directory passed its checks


def install(cache_dir: str = CACHE_DIR) -> bool:
    """Make mitogen's importer in this interpreter use the cache; False when it cannot."""
    global _dir
    import mitogen.core
    if os.geteuid() != 0 or not _usable_dir(cache_dir):
        return False
    try:
        names = os.listdir(cache_dir)
        if len(names) > MAX_ENTRIES:
            for name in names:
                _unlink(os.path.join(cache_dir, name))
    except OSError:
        return False
    _dir = cache_dir
    # mitogen.core's importer calls the name `compile`: a module global shadows the builtin.
    mitogen.core.compile = cached_compile  # type: ignore[attr-defined]
    return True


def _usable_dir(path: str) -> bool:
    """Root's own directory, not a symlink, that nobody else can write (made so if missing)."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o077


def _key(source: t.Any, filename: str) -> str:
    data = source if isinstance(source, bytes) else str(source).encode("utf-8", "surrogatepass")
    return hashlib.sha256(_VERSION + filename.encode("utf-8", "surrogatepass") + b"\0" + data).hexdigest()


def cached_compile(source: t.Any, filename: str, mode: str, flags: int = 0,
                   dont_inherit: bool = False) -> types.CodeType:
    """compile(), answered from the cache when it holds this very source."""
    if _dir is None or mode != "exec" or flags:
        return compile(source, filename, mode, flags, dont_inherit)
    path = os.path.join(_dir, _key(source, filename))
    code = _load(path, filename)
    if code is None:
        code = compile(source, filename, mode, flags, dont_inherit)
        _store(path, code)
    return code


def _load(path: str, filename: str) -> types.CodeType | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022 \
                or st.st_size > MAX_FILE:
            return None
        with os.fdopen(fd, "rb") as f:
            fd = -1
            code = marshal.loads(f.read(MAX_FILE))
    except (OSError, ValueError, EOFError, TypeError):
        return None
    finally:
        if fd >= 0:
            os.close(fd)
    if isinstance(code, types.CodeType) and code.co_filename == filename:
        return code
    return None


def _store(path: str, code: types.CodeType) -> None:
    """Written beside its place and renamed: a reader sees the whole file or none."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(marshal.dumps(code))
        os.replace(tmp, path)
    except (OSError, ValueError):
        _unlink(tmp)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
