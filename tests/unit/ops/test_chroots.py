import json
import os
import subprocess
import sys

import pytest

from ansible_nspawn_fast.ops import chroots, playbooks
from ansible_nspawn_fast.ops.place import Place
from ansible_nspawn_fast.plugins import CONNECTION_DIR, STRATEGY_DIR


def create(tmp_path, name, command):
    book = playbooks.ChrootPlaybook(name, tmp_path / f"{name}.yml", create=command)
    return chroots.create_tree(Place(), str(tmp_path / "trees"), book)


MAKE_TREE = "mkdir -p {{ tree }}/usr/lib && echo ID=test > {{ tree }}/usr/lib/os-release"


def test_a_tree_is_built_beside_its_name_and_renamed(tmp_path):
    assert create(tmp_path, "t1", MAKE_TREE + " && test ! -e " + str(tmp_path / "trees/t1")) is None
    assert (tmp_path / "trees/t1/usr/lib/os-release").read_text() == "ID=test\n"
    assert sorted(p.name for p in (tmp_path / "trees").iterdir()) == ["t1"]


@pytest.mark.parametrize("command, why", [
    (MAKE_TREE + " && echo bad >&2 && false", "bad / the creation command failed (exit 1)"),
    ("mkdir {{ tree }}", "made no OS tree"),
])
def test_a_failed_creation_leaves_nothing(tmp_path, command, why):
    assert why in create(tmp_path, "t1", command)
    assert list((tmp_path / "trees").iterdir()) == []


def test_a_leftover_of_an_interrupted_run_is_removed_first_and_an_existing_tree_kept(tmp_path):
    (tmp_path / "trees/.t1.nspawn-fast-new/half").mkdir(parents=True)
    assert create(tmp_path, "t1", MAKE_TREE) is None
    assert not (tmp_path / "trees/t1/half").exists()
    assert "exists already" in create(tmp_path, "t1", MAKE_TREE)


def test_survey_lists_tree_directories_only(tmp_path):
    for d in ("a", "b.c", ".hidden", "with space"):
        (tmp_path / d).mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert chroots.existing_trees(Place(), str(tmp_path)) == {"a", "b.c", "with space", "link"}
    assert chroots.existing_trees(Place(), str(tmp_path / "missing")) == set()


def test_config_points_at_this_installation_and_each_tree(tmp_path):
    place = Place(host="builder", user="root", port=2222, ssh_args=("-i", "my key"))
    cfg = chroots.write_config(tmp_path, place, "/var/lib/trees", ["a", "b"])
    text = cfg.read_text()
    assert "strategy = nspawn_linear" in text
    assert f"connection_plugins = {CONNECTION_DIR}\n" in text and (CONNECTION_DIR / "nspawn.py").is_file()
    assert f"strategy_plugins = {STRATEGY_DIR}\n" in text and (STRATEGY_DIR / "nspawn_linear.py").is_file()
    inv = json.loads((tmp_path / "inventory.yml").read_text())["all"]
    assert inv["hosts"]["b"] == {"ansible_nspawn_directory": "/var/lib/trees/b"}
    assert inv["vars"] == {"ansible_connection": "nspawn", "ansible_host": "builder", "ansible_user": "root",
                           "ansible_port": 2222, "ansible_ssh_common_args": "-i 'my key'"}
    assert "CallbackModule" in (tmp_path / "callback_plugins" / "nspawn_chroots.py").read_text()
    (tmp_path / "l").mkdir()
    chroots.write_config(tmp_path / "l", Place(), "/t", ["a"])
    assert json.loads((tmp_path / "l" / "inventory.yml").read_text())["all"]["vars"]["ansible_nspawn_local"] is True


def test_results_and_summary():
    made, ok, changed, failed, gone = (chroots.TreeResult(n) for n in ("made", "ok", "changed", "failed", "gone"))
    made.created, made.seconds = True, 10.0
    chroots._result(made, {"ok": 3, "changed": 2, "failures": 0, "unreachable": 0, "seconds": 2.5}, 0)
    chroots._result(ok, {"ok": 3, "changed": 0, "failures": 0, "unreachable": 0, "seconds": 1}, 0)
    chroots._result(changed, {"ok": 3, "changed": 1, "failures": 0, "unreachable": 0, "seconds": 1}, 0)
    chroots._result(failed, {"ok": 1, "changed": 0, "failures": 1, "unreachable": 0, "seconds": 1}, 2)
    chroots._result(gone, None, 4)
    assert [r.status for r in (made, ok, changed, failed, gone)] == ["created", "ok", "changed", "failed", "failed"]
    assert made.seconds == 12.5
    table = chroots.summary([made, ok, changed, failed, gone]).splitlines()
    assert table[0].split() == ["tree", "result", "ok", "changed", "failed", "time"]
    assert table[1].split() == ["made", "created", "3", "2", "0", "12.5s"]
    assert table[4].split()[:6] == ["failed", "failed", "1", "0", "1", "1.0s"]
    assert "a task failed" in table[4]
    assert table[5].split()[:6] == ["gone", "failed", "-", "-", "-", "0.0s"]
    assert "exit 4" in table[5]


def test_the_callback_reports_counts_and_time(tmp_path, monkeypatch):
    from ansible_nspawn_fast.ops.chroot_callback import CallbackModule

    class Host:
        def __init__(self, name):
            self.name = name

        def get_name(self):
            return self.name

    class Stats:
        processed = {"a": 1}

        def summarize(self, host):
            return {"ok": 2, "changed": 1, "failures": 0, "unreachable": 0}

    report = tmp_path / "r.json"
    monkeypatch.setenv(chroots.REPORT_ENV, str(report))
    class Playbook:
        _file_name = "/p/a.yml"

    cb = CallbackModule()
    cb.v2_playbook_on_start(Playbook())
    cb.v2_runner_on_start(Host("a"), None)
    cb.v2_playbook_on_stats(Stats())
    assert json.loads(report.read_text()) == {
        "hosts": {"a": {"ok": 2, "changed": 1, "failures": 0, "unreachable": 0, "seconds": 0.0}},
        "playbooks": ["/p/a.yml"]}


def test_the_create_script_is_plain_sh():
    subprocess.run(["sh", "-n", "-c", chroots.CREATE], check=True)
    subprocess.run(["sh", "-n", "-c", chroots.SURVEY], check=True)


FAKE_ANSIBLE_PLAYBOOK = """#!{python}
# Plays Ansible's executor: playbooks in order, the run ends at the first one that fails.
import json, os, sys
report, calls = {{"hosts": {{}}, "playbooks": []}}, os.environ["FAKE_CALLS"]
with open(calls, "a") as f:
    f.write(" ".join(os.path.basename(a)[:-4] for a in sys.argv[1:]) + "\\n")
rc = 0
for path in sys.argv[1:]:
    name = os.path.basename(path)[:-4]
    report["playbooks"].append(path)
    if name.startswith("empty"):
        continue  # no task: the callback reports nothing for it
    bad = name.startswith("bad")
    report["hosts"][name] = {{"ok": 1, "changed": 0, "failures": int(bad), "unreachable": 0, "seconds": 1.0}}
    if bad:
        rc = 2
        break
json.dump(report, open(os.environ["NSPAWN_FAST_CHROOTS_REPORT"], "w"))
sys.exit(rc)
"""


def test_a_failed_tree_does_not_stop_the_others(tmp_path, monkeypatch):
    fake = tmp_path / "ansible-playbook"
    fake.write_text(FAKE_ANSIBLE_PLAYBOOK.format(python=sys.executable))
    fake.chmod(0o755)
    monkeypatch.setattr(chroots, "_ansible_playbook", lambda: str(fake))
    names = ["a", "bad1", "b", "empty", "bad2", "c"]
    books = [playbooks.ChrootPlaybook(n, tmp_path / f"{n}.yml") for n in names]
    results = {n: chroots.TreeResult(n) for n in names}
    env = {**os.environ, "FAKE_CALLS": str(tmp_path / "calls"),
           chroots.REPORT_ENV: str(tmp_path / "report.json")}
    chroots.maintain(books, results, env, tmp_path / "report.json", [])
    assert {n: r.status for n, r in results.items()} == {
        "a": "ok", "bad1": "failed", "b": "ok", "empty": "ok", "bad2": "failed", "c": "ok"}
    assert (tmp_path / "calls").read_text().splitlines() == [
        "a bad1 b empty bad2 c", "b empty bad2 c", "c"]


def test_nothing_reported_means_every_tree_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(chroots, "_ansible_playbook", lambda: "false")
    results = {"a": chroots.TreeResult("a")}
    chroots.maintain([playbooks.ChrootPlaybook("a", tmp_path / "a.yml")], results, dict(os.environ),
                     tmp_path / "report.json", [])
    assert (results["a"].status, results["a"].detail) == ("failed", "no task ran (ansible-playbook exit 1)")


def test_triage(tmp_path):
    books = [playbooks.ChrootPlaybook("bad", tmp_path / "bad.yml", problem="no good"),
             playbooks.ChrootPlaybook("new", tmp_path / "new.yml", create="mk {{ tree }}"),
             playbooks.ChrootPlaybook("old", tmp_path / "old.yml"),
             playbooks.ChrootPlaybook("shared", tmp_path / "shared.yml")]
    results, todo = chroots.triage(books, {"old", "orphan"}, "/t", tmp_path)
    assert [b.name for b in todo] == ["new", "old"]
    assert {n: (r.status, r.detail) for n, r in results.items() if n not in ("new", "old")} == {
        "bad": ("failed", "no good"),
        "shared": ("skipped", "no tree /t/shared and no nspawn_chroot_create in it"),
        "orphan": ("skipped", f"no orphan.yml in {tmp_path}")}
