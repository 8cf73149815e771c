"""The container interpreter's code cache: hits, misses, and files it must not trust."""
import os

import mitogen.core
import pytest

from ansible_nspawn_fast.transport import codecache, plan

SOURCE = "X = 6 * 7\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("the cache is root's only; ownership checks need root")  # CI runs as root
    monkeypatch.setattr(mitogen.core, "compile", compile, raising=False)
    monkeypatch.setattr(codecache, "_dir", None)
    path = str(tmp_path / "code")
    assert codecache.install(path)
    return path


def run(code):
    ns = {}
    exec(code, ns)
    return ns["X"]


def test_install_routes_mitogens_importer_through_the_cache(cache):
    assert mitogen.core.compile is codecache.cached_compile
    assert oct(os.stat(cache).st_mode & 0o777) == "0o700"


def test_second_compile_of_a_source_is_read_from_the_cache(cache, monkeypatch):
    first = codecache.cached_compile(SOURCE, "/m.py", "exec", 0, True)
    assert len(os.listdir(cache)) == 1
    monkeypatch.setattr(codecache, "compile", lambda *a: pytest.fail("compiled again"), raising=False)
    again = codecache.cached_compile(SOURCE, "/m.py", "exec", 0, True)
    assert run(again) == run(first) == 42


def test_other_source_or_file_name_is_another_entry(cache):
    codecache.cached_compile(SOURCE, "/m.py", "exec", 0, True)
    codecache.cached_compile(SOURCE, "/n.py", "exec", 0, True)
    assert run(codecache.cached_compile("X = 1\n", "/m.py", "exec", 0, True)) == 1
    assert len(os.listdir(cache)) == 3


@pytest.mark.parametrize("spoil", ["other-owner", "group-writable", "garbage", "symlink"])
def test_an_entry_it_must_not_trust_is_compiled_again(cache, spoil, tmp_path):
    codecache.cached_compile(SOURCE, "/m.py", "exec", 0, True)
    (entry,) = [os.path.join(cache, n) for n in os.listdir(cache)]
    forged = tmp_path / "forged"
    forged.write_bytes(__import__("marshal").dumps(compile("X = 666\n", "/m.py", "exec")))
    if spoil == "other-owner":
        os.replace(forged, entry)
        os.chown(entry, 65534, 65534)
    elif spoil == "group-writable":
        os.replace(forged, entry)
        os.chmod(entry, 0o620)
    elif spoil == "garbage":
        with open(entry, "wb") as f:
            f.write(b"\xff not marshal")
    else:
        os.unlink(entry)
        os.symlink(forged, entry)
    assert run(codecache.cached_compile(SOURCE, "/m.py", "exec", 0, True)) == 42


def test_a_directory_others_can_write_is_not_used(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    monkeypatch.setattr(mitogen.core, "compile", compile, raising=False)
    monkeypatch.setattr(codecache, "_dir", None)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    assert not codecache.install(str(shared))
    assert mitogen.core.compile is compile


def test_a_full_cache_is_emptied(cache, monkeypatch):
    for i in range(5):
        codecache.cached_compile(f"X = {i}\n", "/m.py", "exec", 0, True)
    monkeypatch.setattr(codecache, "MAX_ENTRIES", 3)
    assert codecache.install(cache)
    assert os.listdir(cache) == []


def test_only_a_running_containers_hop_caches():
    assert plan.is_container_hop({"remote_name": "nspawn:web"})
    assert not plan.is_container_hop({"remote_name": "nspawn-tree:srv:tree"})
