"""`nspawn-fast chroots [HOST:]`: keep every OS tree in DIR up to date with its playbook.

For each PLAYBOOKS/NAME.yml (playbooks.py): a missing DIR/NAME is created first with the
playbook's `nspawn_chroot_create`, built beside its final name and renamed when complete; then
all trees are maintained in one ansible-playbook run in directory mode (ansible_nspawn_directory)
under strategy nspawn_linear, through a temporary inventory and ansible.cfg that point at this
installation's plugins. One tree failing does not stop the others (maintain()); a summary table
follows and the exit status is 1 if any tree failed.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import posixpath
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..plugins import CONNECTION_DIR, STRATEGY_DIR
from . import helper, playbooks
from .errors import OpsError
from .place import Place, parse_place

# The callback (chroot_callback.py, which imports Ansible) writes its report to this file.
REPORT_ENV = "NSPAWN_FAST_CHROOTS_REPORT"
CALLBACK_SHIM = '''# Written by nspawn-fast chroots for one run.
DOCUMENTATION = """
name: nspawn_chroots
type: aggregate
short_description: per-tree results for nspawn-fast chroots
description: [Writes each host's recap counts and time to $NSPAWN_FAST_CHROOTS_REPORT.]
"""
from ansible_nspawn_fast.ops.chroot_callback import CallbackModule  # noqa: E402,F401
'''

# Lists the tree directories in DIR ($1), one a line: names only, no file of a tree is read.
SURVEY = 'for t in "$1"/*; do [ -d "$t" ] && printf "%s\\n" "${t##*/}"; done; exit 0'

# Creates the tree $1 by running $3, which builds it at $2 (beside $1, same file system), and
# renames $2 to $1 only when $3 succeeded and left an OS tree: never a half tree under $1.
CREATE = r'''
final=$1 tmp=$2
[ ! -e "$final" ] || { echo "$final exists already" >&2; exit 1; }
mkdir -p -- "${final%/*}/" || exit 1
if [ -e "$tmp" ] || [ -L "$tmp" ]; then
  rm -rf --one-file-system -- "$tmp" || {
    echo "cannot remove $tmp, left by an interrupted run: unmount what is under it, remove it" >&2; exit 1; }
fi
sh -c "$3" nspawn-chroot-create </dev/null >&2
rc=$?
if [ "$rc" -ne 0 ]; then
  why="the creation command failed (exit $rc)"
elif [ ! -e "$tmp/usr/lib/os-release" ] && [ ! -e "$tmp/etc/os-release" ]; then
  why="the creation command made no OS tree at $tmp (no usr/lib/os-release or etc/os-release)"
elif mv -T -- "$tmp" "$final"; then
  exit 0
else
  why="cannot rename $tmp to $final"
fi
if [ -e "$tmp" ] && ! rm -rf --one-file-system -- "$tmp"; then
  why="$why; the half-made $tmp is left: unmount what is under it, remove it"
fi
echo "$why" >&2
exit 1
'''


@dataclasses.dataclass
class TreeResult:
    """One line of the summary."""

    name: str
    status: str = "failed"  # created, ok, changed, failed or skipped
    detail: str = ""
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    created: bool = False


def _host_run(place: Place, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(place.argv(argv), capture_output=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError as e:
        raise helper.not_installed(e) from None


def _ssh_failed(place: Place, cp: subprocess.CompletedProcess[bytes]) -> OpsError:
    return helper.ssh_failed(place, cp.stderr)


def existing_trees(place: Place, directory: str) -> set[str]:
    cp = _host_run(place, ["sh", "-c", SURVEY, "nspawn-chroots", directory])
    if cp.returncode != 0:
        raise _ssh_failed(place, cp) if cp.returncode == 255 else OpsError(
            f"cannot list {directory} on {place.describe()}: {cp.stderr.decode(errors='replace').strip()}")
    return set(cp.stdout.decode("utf-8", "replace").splitlines())


def create_tree(place: Place, directory: str, book: playbooks.ChrootPlaybook) -> str | None:
    """Create DIR/NAME; None when done, else why not (one line)."""
    assert book.create is not None
    final = posixpath.join(directory, book.name)
    tmp = posixpath.join(directory, f".{book.name}.nspawn-fast-new")
    cp = _host_run(place, ["sh", "-c", CREATE, "nspawn-chroot", final, tmp,
                           playbooks.create_command(book.create, tmp)])
    if cp.returncode == 0:
        return None
    if cp.returncode == 255 and not place.local:
        return str(_ssh_failed(place, cp))
    lines = [line for line in cp.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return " / ".join(lines[-3:]) or f"exit {cp.returncode}"


def write_config(work: Path, place: Place, directory: str, names: list[str]) -> Path:
    """The run's inventory, callback shim and ansible.cfg in `work`; returns the cfg."""
    common: dict[str, object] = {"ansible_connection": "nspawn"}
    if place.local:
        common["ansible_nspawn_local"] = True
    else:
        common["ansible_host"] = place.host
        if place.user:
            common["ansible_user"] = place.user
        if place.port:
            common["ansible_port"] = place.port
        if place.ssh_args:
            common["ansible_ssh_common_args"] = shlex.join(place.ssh_args)
    hosts = {n: {"ansible_nspawn_directory": posixpath.join(directory, n)} for n in names}
    # JSON is YAML: every value quoted right.
    (work / "inventory.yml").write_text(json.dumps({"all": {"hosts": hosts, "vars": common}}, indent=1))
    (work / "callback_plugins").mkdir()
    (work / "callback_plugins" / "nspawn_chroots.py").write_text(CALLBACK_SHIM)
    cfg = work / "ansible.cfg"
    cfg.write_text(f"""# Written by nspawn-fast chroots for one run.
[defaults]
inventory = {work / 'inventory.yml'}
connection_plugins = {CONNECTION_DIR}
strategy_plugins = {STRATEGY_DIR}
strategy = nspawn_linear
callback_plugins = {work / 'callback_plugins'}
callbacks_enabled = nspawn_chroots
interpreter_python = /usr/bin/python3
retry_files_enabled = False
deprecation_warnings = False
""")
    return cfg


def _ansible_playbook() -> str:
    beside = Path(sys.executable).with_name("ansible-playbook")
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    if not found:
        raise OpsError("ansible-playbook is not installed here (pip install ansible-core)")
    return found


def load_errors(env: dict[str, str], books: list[playbooks.ChrootPlaybook]) -> dict[str, str]:
    """Playbooks Ansible cannot load, by name: checked first, as one of them would end the run."""
    cmd = [_ansible_playbook(), "--syntax-check"]
    if subprocess.run([*cmd, *(str(b.path) for b in books)], capture_output=True, env=env).returncode == 0:
        return {}
    errors = {}
    for b in books:
        cp = subprocess.run([*cmd, str(b.path)], capture_output=True, text=True, env=env)
        if cp.returncode != 0:
            said = [line for line in (cp.stderr + cp.stdout).splitlines() if "ERROR" in line]
            errors[b.name] = f"the playbook does not load: {said[0][:300] if said else cp.returncode}"
    return errors


def summary(results: list[TreeResult]) -> str:
    """The table printed at the end: tree, result, recap counts, time, and why for failures."""
    rows = [["tree", "result", "ok", "changed", "failed", "time", ""]]
    for r in results:
        c = r.counts
        failed = c.get("failures", 0) + c.get("unreachable", 0)
        rows.append([r.name, r.status, *(str(v) if c else "-" for v in (c.get("ok", 0), c.get("changed", 0), failed)),
                     f"{r.seconds:.1f}s", r.detail])
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = ["  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]),
                        *(row[i].rjust(widths[i]) for i in range(2, 6)), row[6]]).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def _result(r: TreeResult, stats: dict[str, float] | None, rc: int) -> None:
    """Fill in a tree's result from the callback's report."""
    if stats is None:
        r.status, r.detail = "failed", f"no task ran (ansible-playbook exit {rc})"
        return
    r.counts = {k: int(v) for k, v in stats.items() if k != "seconds"}
    r.seconds += float(stats.get("seconds", 0.0))
    why = ("unreachable" if r.counts.get("unreachable") else
           "a task failed" if r.counts.get("failures") else "")
    if why:
        r.status = "failed"
        r.detail = f"{'created, then ' if r.created else ''}{why} (see ansible-playbook's output above)"
    else:
        r.status = "created" if r.created else ("changed" if r.counts.get("changed") else "ok")


def maintain(books: list[playbooks.ChrootPlaybook], results: dict[str, TreeResult], env: dict[str, str],
             report: Path, extra: list[str]) -> None:
    """All trees in one ansible-playbook run; the results from the callback's report.

    Ansible ends a run at the first playbook whose hosts all failed, and each playbook here
    has one host: the trees after a failed one get a run of their own (one run when all
    succeed, one more per failed tree).
    """
    pending = books
    while pending:
        report.unlink(missing_ok=True)
        rc = subprocess.run([_ansible_playbook(), *(str(b.path) for b in pending), *extra], env=env).returncode
        got = json.loads(report.read_text()) if report.exists() else {}
        hosts, started = got.get("hosts", {}), set(got.get("playbooks", []))
        ran = [b for b in pending if str(b.path) in started]
        for b in ran:  # no counts: a playbook without tasks, unless the run broke off in it
            broke_off = rc != 0 and b is ran[-1]
            _result(results[b.name], hosts.get(b.name, None if broke_off else {}), rc)
        rest = [b for b in pending if str(b.path) not in started]
        if rest and not ran:
            for b in rest:
                _result(results[b.name], None, rc)
            return
        if rest:
            print(f"nspawn-fast: ansible-playbook stopped after a failed tree; once more for "
                  f"{', '.join(b.name for b in rest)}", file=sys.stderr, flush=True)
        pending = rest


def triage(books: list[playbooks.ChrootPlaybook], trees: set[str], directory: str,
           pb_dir: Path) -> tuple[dict[str, TreeResult], list[playbooks.ChrootPlaybook]]:
    """Every tree's result so far, and the playbooks to go on with (a detail means failed)."""
    results = {b.name: TreeResult(b.name) for b in books}
    todo = []
    for b in books:
        r = results[b.name]
        if b.problem:
            r.detail = b.problem
        elif b.name in trees or b.create:
            todo.append(b)
        else:
            r.status, r.detail = "skipped", f"no tree {directory}/{b.name} and no {playbooks.CREATE_VAR} in it"
    for name in sorted(trees - set(results)):
        results[name] = TreeResult(name, "skipped", f"no {name}.yml in {pb_dir}")
    return results, todo


def run(args: argparse.Namespace) -> int:
    spec = args.place or ""
    place, rest = parse_place(spec if (not spec or ":" in spec) else spec + ":", args.ssh_args)
    if rest:
        raise OpsError(f"{spec!r}: write the builder host as HOST: or [USER@]HOST[:PORT]: (with the colon)")
    if place.local and os.geteuid() != 0:
        raise OpsError("maintaining trees on this machine needs root: run nspawn-fast chroots as root")
    directory = args.dir.rstrip("/") or "/"
    if not posixpath.isabs(directory):
        raise OpsError(f"--dir {args.dir!r} must be an absolute path on {place.describe()}")
    pb_dir = Path(args.playbooks)
    if not pb_dir.is_dir():
        raise OpsError(f"--playbooks {pb_dir} is not a directory here")
    books = playbooks.find_playbooks(pb_dir.resolve())
    if not books:
        raise OpsError(f"no NAME.yml in {pb_dir}: write one playbook per tree (hosts: NAME)")
    trees = existing_trees(place, directory)
    results, todo = triage(books, trees, directory, pb_dir)
    with tempfile.TemporaryDirectory(prefix="nspawn-fast-chroots-") as tmp:
        work = Path(tmp)
        cfg = write_config(work, place, directory, [b.name for b in todo])
        report = work / "report.json"
        env = {**os.environ, "ANSIBLE_CONFIG": str(cfg), REPORT_ENV: str(report)}
        for name, why in (load_errors(env, todo) if todo else {}).items():
            results[name].detail = why
        todo = [b for b in todo if not results[b.name].detail]
        for b in [b for b in todo if b.name not in trees]:
            print(f"nspawn-fast: creating {directory}/{b.name} on {place.describe()}", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            why = create_tree(place, directory, b)
            results[b.name].seconds = time.monotonic() - t0
            results[b.name].created = why is None
            results[b.name].detail = why or ""
        todo = [b for b in todo if not results[b.name].detail]
        maintain(todo, results, env, report, args.ansible_args)
    ordered = [results[n] for n in sorted(results)]
    sys.stdout.write("\n" + summary(ordered))
    return 1 if any(r.status == "failed" for r in ordered) else 0
