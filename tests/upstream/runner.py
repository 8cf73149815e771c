"""Upstream integration targets against one lab container, under one strategy and pipelining setting.

The targets are vendored unchanged (ansible-core/ and mitogen/, each with an ORIGIN note). What
ansible-test or a target's runme.sh would do around them is done here instead, and this is the
only place they are adapted:

- the inventory: `testhost` (ansible-core's name) is one lab container reached with
  `ansible_connection: nspawn`; it is also the group `test-targets` (Mitogen's name); `localhost`
  is the controller (`ansible_connection: local`, this interpreter);
- the configuration: the lab's (plugin paths, `interpreter_python`, SSH control path), plus the
  library/action/module_utils/filter paths and `gathering = explicit` of Mitogen's own ansible.cfg
  for its playbooks, and `roles_path` = a copy of the vendored targets, as ansible-test sets it
  (it runs them from a copy too); a connection timeout of 30 s instead of 10 (CONNECTION_TIMEOUT);
- one run at a time per container (`container_lock`): the targets create and delete the same
  users and files, so two test sessions against one lab take turns;
- the steps of each runme.sh, written out below (output directories under a temporary
  directory instead of ansible-test's);
- Mitogen's runner sets `is_mitogen` from the strategy's name; here it is false under every
  strategy: the claim under test is that nspawn_linear and nspawn_free behave as stock Ansible.

A run's outcome per step is its exit code and its PLAY RECAP; `compare` tells two runs apart.
Used by tests/integration/test_upstream.py; `python -m tests.upstream.runner --help` prints a
table of target x strategy x pipelining for a lab.
"""
from __future__ import annotations

import argparse
import configparser
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORE_TARGETS = HERE / "ansible-core" / "targets"
MITOGEN = HERE / "mitogen"
SETUP = HERE / "setup"
BIN = Path(sys.executable).parent
STRATEGIES = ("linear", "free", "nspawn_linear", "nspawn_free")
STEP_TIMEOUT = 300  # seconds: a step that hangs fails instead of wedging the run (the longest takes ~60)
LOCK_WAIT = 1800    # seconds to wait for another run in the same container (one target, at most)
# ansible-core's connection and become timeout (10 s by default; ssh's become prompt wait adds
# 2): on a loaded 2-CPU machine `sudo ... su` alone has taken longer, under stock linear too.
# Tasks that test a timeout set their own (become_su's wrong prompt: ansible_ssh_timeout 3).
CONNECTION_TIMEOUT = "30"


@dataclasses.dataclass(frozen=True)
class Step:
    """One ansible-playbook (or ansible) run of a target, as its runme.sh runs it."""

    label: str
    args: tuple[str, ...]              # after the tool: playbook and options
    tool: str = "ansible-playbook"
    env: tuple[tuple[str, str], ...] = ()
    expect_rc: int | None = 0           # None: only compared with stock linear
    output_has: str | None = None       # runme.sh greps the output for this ...
    output_lacks: str | None = None     # ... or for the absence of this
    python_var: bool = True             # ansible_python_interpreter in the inventory, as ansible-test has it
    timing_changed: bool = False        # `changed` depends on timing: compared as part of `ok` only
    # Under nspawn_linear/nspawn_free, the one failure documented in docs/semantics.md (a regex
    # of it) instead of stock linear's result: anything else, or its absence, is a difference.
    documented_difference: str | None = None
    why: str = ""                       # when the step differs from upstream's


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    suite: str                          # "ansible-core" or "mitogen"
    steps: tuple[Step, ...]
    ci: bool = False                    # in the reduced set `./run test` runs
    reset: bool = False                 # setup/reset.yml first (stock linear): it creates users


def _role_step(role: str, gather_facts: bool = True, label: str = "role", **kwargs: Any) -> Step:
    """ansible-test's way of running a role target: a play with the role on testhost."""
    return Step(label, ("{workdir}/role-" + role + ".yml",),
                env=(("NF_ROLE", role), ("NF_GATHER", "yes" if gather_facts else "no")), **kwargs)


def _mitogen_step(label: str, playbooks: Iterable[str], **kwargs: Any) -> Step:
    return Step(label, ("{workdir}/mitogen-" + label + ".yml",),
                env=(("NF_IMPORTS", json.dumps(list(playbooks))),), **kwargs)


def _core(name: str) -> str:
    """A file of an ansible-core target, in the run's own copy of the targets (as ansible-test
    runs them from a copy: some write next to themselves, fetch's injection test does)."""
    return "{targets}/" + name


FETCH_OUT = "output_dir={workdir}/fetch-output"

TARGETS: dict[str, Target] = {t.name: t for t in (
    # --- ansible-core: test/integration/targets -------------------------------------------
    Target("connection", "ansible-core", (
        Step("test_connection", (_core("connection/test_connection.yml"), "-e", "target_hosts=testhost",
                                 "-e", "action_prefix=", "-e", "local_tmp={workdir}/ansible-local",
                                 "-e", "remote_tmp=/tmp/ansible-remote")),
        Step("set_fact-hides-connection-vars", ("testhost", "-m", "set_fact", "-a", "testing=value", "-v"),
             tool="ansible", output_lacks="ansible_host"),
        Step("reset_connection", (_core("connection/test_reset_connection.yml"), "-e", "target_hosts=testhost")),
        Step("reset_connection_templated", (_core("connection/test_reset_connection_templated.yml"),
                                            "-e", "target_hosts=testhost")),
    ), ci=True),
    Target("raw", "ansible-core", (
        Step("runme", (_core("raw/runme.yml"), "-v"), env=(("ANSIBLE_BECOME_ALLOW_SAME_USER", "1"),)),
    )),
    Target("fetch", "ansible-core", (
        Step("run_fetch_tests", (_core("fetch/run_fetch_tests.yml"), "-e", FETCH_OUT)),
        Step("run_fetch_tests-become", (_core("fetch/run_fetch_tests.yml"), "-e", FETCH_OUT, "-b")),
        Step("avoid_slurp_return", (_core("fetch/injection/avoid_slurp_return.yml"), "-e", FETCH_OUT)),
        Step("unreadable_with_stat", (_core("fetch/test_unreadable_with_stat.yml"), "-e", "ansible_user=fetcher",
                                      "-e", "ansible_become=no", "-e", FETCH_OUT),
             expect_rc=4,
             why="upstream first gives the container user `fetcher` an SSH login (setup_unreadable_test.yml, "
                 "which copies the controller's /root/.ssh/authorized_keys); an nspawn target has no SSH "
                 "login of its own: `ansible_user` is the host's SSH user, and with `fetcher`, who has no "
                 "account on the host, every strategy must report the host UNREACHABLE (exit 4)"),
        Step("cleanup", (_core("fetch/cleanup.yml"), "-e", FETCH_OUT, "-b"), expect_rc=None,
             why="upstream ignores its result too (an EXIT trap); it needs the fact cache of the setup step "
                 "that is not run"),
    ), ci=True, reset=True),
    Target("remote_tmp", "ansible-core", (
        Step("runme", (_core("remote_tmp/playbook.yml"), "-v"),
             documented_difference=r"^assert: FAILED: result\.files\|length == 1$",
             why="its second play counts the AnsiballZ files in remote_tmp while `find` runs: ansible_mitogen "
                 "runs modules in its interpreter and writes none (docs/semantics.md)"),
    ), ci=True, reset=True),
    Target("async", "ansible-core", (
        _role_step("async", timing_changed=True,
                   why="`get async status with custom dir using newer format` asks once (no until loop) for a "
                       "fire-and-forget `echo moo`: whether the job has finished (changed) or not yet (ok) "
                       "depends on how fast the task before it ran"),
    )),  # not in the reduced set: on a loaded machine its `gather_facts: parallel` task's service_facts
    # outruns the target's own `gather_timeout: 10` (async_wrapper's "Timeout exceeded"), under any strategy
    Target("async_fail", "ansible-core", (_role_step("async_fail"),), ci=True),
    Target("async_extra_data", "ansible-core", (
        Step("runme", (_core("async_extra_data/test_async.yml"), "-v"), env=(("ANSIBLE_DEBUG", "0"),),
             output_has="junk after the JSON data: junk_after_module_output"),
    ), ci=True),
    Target("become_su", "ansible-core", (_role_step("become_su", gather_facts=False),), ci=True, reset=True),
    Target("become_sudo", "ansible-core", (_role_step("become_sudo", gather_facts=False),), ci=True, reset=True),
    Target("old_style_modules_posix", "ansible-core", (_role_step("old_style_modules_posix"),)),
    Target("want_json_modules_posix", "ansible-core", (_role_step("want_json_modules_posix"),)),
    Target("embedded_module", "ansible-core", (
        _role_step("embedded_module"),
        _role_step("embedded_module", label="role-python-from-ansible.cfg", python_var=False,
                   why="a second run with the Python of ansible.cfg's interpreter_python (as the lab, and "
                       "many sites, configure it) instead of ansible-test's ansible_python_interpreter"),
    ), ci=True),
    Target("wait_for_connection", "ansible-core", (_role_step("wait_for_connection"),)),
    # --- Mitogen: tests/ansible/integration and tests/ansible/regression ---------------------
    Target("mitogen-runner", "mitogen", (_mitogen_step("runner", [
        "integration/runner/atexit.yml",
        "integration/runner/builtin_command_module.yml",
        "integration/runner/custom_bash_old_style_module.yml",
        "integration/runner/custom_bash_want_json_module.yml",
        "integration/runner/custom_binary_single_null.yml",
        "integration/runner/custom_perl_json_args_module.yml",
        "integration/runner/custom_perl_want_json_module.yml",
        "integration/runner/custom_python_json_args_module.yml",
        "integration/runner/custom_python_want_json_module.yml",
        "integration/runner/custom_script_interpreter.yml",
        "integration/runner/environment_isolation.yml",
    ]), _mitogen_step("crashy_new_style_module", ["integration/runner/crashy_new_style_module.yml"],
                      documented_difference=r"^Check error report: FAILED: out\.msg is match\(msg_pattern\)",
                      why="a module that raises: ansible-core reports `Module failed: <error>`, "
                          "ansible_mitogen's in-process runner `<error>` (docs/semantics.md)"))),
    Target("mitogen-action", "mitogen", (_mitogen_step("action", [
        "integration/action/copy.yml",
        "integration/action/fixup_perms2__copy.yml",
        "integration/action/low_level_execute_command.yml",
        "integration/action/remote_expand_user.yml",
        "integration/action/remote_file_exists.yml",
        "integration/action/remove_tmp_path.yml",
        "integration/action/transfer_data.yml",
    ]),)),
    Target("mitogen-async", "mitogen", (_mitogen_step("async", [
        "integration/async/multiple_items_loop.yml",
        "integration/async/result_shell_echo_hi.yml",
        "integration/async/runner_new_process.yml",
        "integration/async/runner_one_job.yml",
        "integration/async/runner_timeout_then_polling.yml",
        "integration/async/runner_two_simultaneous_jobs.yml",
        "integration/async/runner_with_polling_and_timeout.yml",
    ]),)),
    Target("mitogen-connection", "mitogen", (_mitogen_step("connection", [
        "integration/connection/exec_command.yml",
        "integration/connection/put_small_file.yml",
        "integration/connection/put_large_file.yml",
    ]),)),
    Target("mitogen-playbook_semantics", "mitogen", (_mitogen_step("playbook_semantics", [
        "integration/playbook_semantics/become_flags.yml",
        "integration/playbook_semantics/environment.yml",
        "integration/playbook_semantics/with_items.yml",
    ]),)),
    Target("mitogen-module_utils", "mitogen", (_mitogen_step("module_utils", [
        "integration/module_utils/adjacent_to_role.yml",
    ]),)),
    Target("mitogen-regression", "mitogen", (_mitogen_step("regression", [
        "regression/issue_113__duplicate_module_imports.yml",
        "regression/issue_118__script_not_marked_exec.yml",
        "regression/issue_122__environment_difference.yml",
        "regression/issue_154__module_state_leaks.yml",
        "regression/issue_177__copy_module_failing.yml",
        "regression/issue_332_ansiblemoduleerror_first_occurrence.yml",
        "regression/issue_590__sys_modules_crap.yml",
        "regression/issue_1477__task_warnings_persist.yml",
    ]),)),
)}


# --- outcome ---------------------------------------------------------------------------------
_RECAP = re.compile(r"^(\S+)\s+:\s+(ok=.*)$", re.M)
_TASK = re.compile(r"^TASK \[(.*)\] \*+$")
_FAIL = re.compile(r"^(?:fatal|failed): \[([^\]]+)\].*?(FAILED|UNREACHABLE)! => (.*)$")


def recap(output: str) -> dict[str, dict[str, int]]:
    return {host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
            for host, counts in _RECAP.findall(output)}


def failures(output: str) -> list[str]:
    """`TASK name: FAILED|UNREACHABLE: the failed assertion or msg` of each failure not ignored."""
    found: list[str] = []
    task = ""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if m := _TASK.match(line):
            task = m.group(1)
        elif m := _FAIL.match(line):
            body, end = m.group(3), i + 1
            if body == "{":  # the result as indented JSON, up to its closing brace
                while end < len(lines) and lines[end] != "}":
                    end += 1
                body = "\n".join(["{", *lines[i + 1:end + 1]])
                end += 1
            if end < len(lines) and lines[end].startswith("...ignoring"):
                continue
            try:
                result = json.loads(body)
                msg = str(result.get("assertion") or result.get("msg", ""))
            except ValueError:
                msg = body
            found.append(f"{task}: {m.group(2)}: {msg[:300]}")
    return found


_STATUS = re.compile(r"^(ok|changed|skipping|failed|fatal|ignored|included|unreachable): \[([^\]]+)\]")


def task_statuses(output: str) -> list[str]:
    """`TASK name: status` for each task and host, in order: where two runs part ways."""
    found, task = [], ""
    for line in output.splitlines():
        if m := _TASK.match(line):
            task = m.group(1)
        elif m := _STATUS.match(line):
            found.append(f"{task} [{m.group(2)}]: {m.group(1)}")
    return found


@dataclasses.dataclass
class StepResult:
    step: Step
    rc: int
    recap: dict[str, dict[str, int]]
    failures: list[str]
    output_ok: bool
    seconds: float
    output: str = dataclasses.field(repr=False, default="")

    def as_expected(self) -> bool:
        return (self.step.expect_rc is None or self.rc == self.step.expect_rc) and self.output_ok

    def comparable(self) -> tuple[Any, ...]:
        """What must be the same as under stock linear: exit code, recap, output check."""
        recap = self.recap
        if self.step.timing_changed:
            recap = {host: {k: v for k, v in counts.items() if k != "changed"} for host, counts in recap.items()}
        return (self.step.label, self.rc, recap, self.output_ok)

    def is_documented_difference(self) -> bool:
        pattern = self.step.documented_difference
        return (pattern is not None and self.rc == 2 and len(self.failures) == 1
                and re.search(pattern, self.failures[0]) is not None)

    def describe(self) -> str:
        first = f"; first failure: {self.failures[0]}" if self.failures else ""
        check = "" if self.output_ok else "; output check failed"
        return f"{self.step.label}: rc={self.rc} recap={self.recap}{check}{first}"


@dataclasses.dataclass
class TargetResult:
    target: Target
    strategy: str
    pipelining: bool
    steps: list[StepResult]

    def as_expected(self) -> bool:
        return all(s.as_expected() for s in self.steps)

    def comparable(self) -> list[tuple[Any, ...]]:
        return [s.comparable() for s in self.steps]

    def describe(self) -> str:
        return "\n".join(s.describe() for s in self.steps)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


def compare(result: TargetResult, reference: TargetResult) -> list[str]:
    """How `result` differs from `reference` (stock linear, same pipelining): [] if it does not."""
    diffs = []
    for ours, ref in zip(result.steps, reference.steps, strict=True):
        if result.strategy.startswith("nspawn_") and ours.step.documented_difference is not None:
            if not ours.is_documented_difference():
                diffs.append(f"{ours.describe()}\n  expected the one failure docs/semantics.md documents: "
                             f"{ours.step.documented_difference}")
            continue
        if ours.comparable() != ref.comparable():
            diffs.append(f"{ours.describe()}\n  stock linear: {ref.describe()}")
            for a, b in zip(task_statuses(ours.output), task_statuses(ref.output), strict=False):
                if a != b:
                    diffs.append(f"  first task that differs: {a}\n  under stock linear:       {b}")
                    break
    return diffs


# --- running ---------------------------------------------------------------------------------
def container_for(lab: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The lab container the targets run in: the last host's first guest, unless one is named."""
    wanted = os.environ.get("NSPAWN_FAST_UPSTREAM_CONTAINER")
    for host in lab["hosts"]:
        if wanted in host["guests"]:
            return host, wanted
    host = lab["hosts"][-1]
    return host, host["guests"][0]


def write_inventory(lab: dict[str, Any], workdir: Path, python_var: bool = True) -> Path:
    host, container = container_for(lab)
    lab_vars = _lab_connection_vars(lab)
    if python_var:
        lab_vars["ansible_python_interpreter"] = "/usr/bin/python3"  # the lab image's
    inventory = {"all": {
        "hosts": {
            "testhost": {**lab_vars, "ansible_connection": "nspawn", "ansible_host": "127.0.0.1",
                         "ansible_port": host["port"], "ansible_nspawn_container": container},
            "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        },
        "children": {"test-targets": {"hosts": {"testhost": {}}}},
    }}
    path = workdir / "inventory.json"   # JSON is YAML: the yaml inventory plugin reads it
    path.write_text(json.dumps(inventory, indent=1))
    # Mitogen's playbooks read their defaults from the group_vars beside their inventory.
    group_vars = workdir / "group_vars"
    if not group_vars.exists():
        group_vars.symlink_to(MITOGEN / "hosts" / "group_vars")
    return path


def _lab_connection_vars(lab: dict[str, Any]) -> dict[str, Any]:
    return {"ansible_user": "root", "ansible_ssh_private_key_file": lab["key"],
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={lab['known_hosts']} -o StrictHostKeyChecking=yes"}


def write_config(lab: dict[str, Any], workdir: Path, suite: str, checkout: Path | None = None) -> Path:
    lab_cfg = configparser.ConfigParser(interpolation=None)
    lab_cfg.read(lab["ansible_cfg"])
    defaults = {k: lab_cfg["defaults"][k] for k in ("connection_plugins", "strategy_plugins",
                                                    "interpreter_python", "forks")}
    if checkout is not None:
        plugins = checkout / "ansible_nspawn_fast" / "plugins"
        defaults.update(connection_plugins=str(plugins / "connection"), strategy_plugins=str(plugins / "strategy"))
    defaults.update(retry_files_enabled="False", roles_path=str(workdir / "targets"), host_key_checking="True")
    if suite == "mitogen":  # from Mitogen's tests/ansible/ansible.cfg
        lib = MITOGEN / "lib"
        defaults.update(library=str(lib / "modules"), action_plugins=str(lib / "action"),
                        module_utils=str(lib / "module_utils"), filter_plugins=str(lib / "filters"),
                        gathering="explicit")
    cfg = configparser.ConfigParser(interpolation=None)
    cfg["defaults"] = defaults
    cfg["ssh_connection"] = {"control_path_dir": lab_cfg["ssh_connection"]["control_path_dir"]}
    path = workdir / f"ansible-{suite}.cfg"
    with path.open("w") as f:
        cfg.write(f)
    return path


def _write_generated(step: Step, workdir: Path) -> None:
    env = dict(step.env)
    if "NF_ROLE" in env:
        (workdir / f"role-{env['NF_ROLE']}.yml").write_text(
            f"- hosts: testhost\n  gather_facts: {env['NF_GATHER']}\n  roles:\n    - role: {env['NF_ROLE']}\n")
    if "NF_IMPORTS" in env:
        imports = json.loads(env["NF_IMPORTS"])
        playbooks = [SETUP / "gather_facts.yml", *(MITOGEN / i for i in imports)]
        text = "".join(f"- import_playbook: {p}\n" for p in playbooks)
        (workdir / f"mitogen-{step.label}.yml").write_text(text)



def run_step(lab: dict[str, Any], target: Target, step: Step, strategy: str, pipelining: bool,
             workdir: Path, checkout: Path | None = None) -> StepResult:
    _write_generated(step, workdir)
    inventory = write_inventory(lab, workdir, step.python_var)
    env = {**os.environ,
           "ANSIBLE_CONFIG": str(write_config(lab, workdir, target.suite, checkout)),
           "ANSIBLE_INVENTORY": str(inventory),
           "ANSIBLE_STRATEGY": strategy, "ANSIBLE_PIPELINING": str(pipelining),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_DEPRECATION_WARNINGS": "0",
           "ANSIBLE_TIMEOUT": CONNECTION_TIMEOUT,
           # Targets run ansible-playbook themselves (async's callback test): this one.
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update({k: v for k, v in step.env if not k.startswith("NF_")})
    if checkout is not None:  # another copy of this project's code (the table's "before")
        env["PYTHONPATH"] = str(checkout)
    args = [a.replace("{workdir}", str(workdir)).replace("{targets}", str(workdir / "targets"))
            for a in step.args]
    if target.suite == "mitogen":
        env["I_WAS_PRESERVED"] = "1"  # Mitogen's run_ansible_playbook.py; become_flags.yml reads it
        args += ["-e", json.dumps({"is_mitogen": False, "is_macos_controller": False,
                                   "git_basedir": str(MITOGEN)})]
    start = time.monotonic()
    # A session of its own: a step that hangs is killed with everything it started.
    with subprocess.Popen([str(BIN / step.tool), *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, cwd=workdir,
                          start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=STEP_TIMEOUT)
            rc, output = proc.returncode, stdout + stderr
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            rc, output = -1, f"{stdout}{stderr}\n(timed out after {STEP_TIMEOUT} s)"
    output_ok = ((step.output_has is None or step.output_has in output)
                 and (step.output_lacks is None or step.output_lacks not in output))
    return StepResult(step, rc, recap(output), failures(output), output_ok,
                      time.monotonic() - start, output)


@contextlib.contextmanager
def container_lock(lab: dict[str, Any], wait: float = LOCK_WAIT) -> Iterator[None]:
    """Held while a target runs in the lab's container: two runs at once (two test sessions
    against one lab) would create, use and delete the same users and files under each other
    (seen as `whoami: cannot find name for user ID 1001`: the other run's cleanup had removed
    the user the task had just become)."""
    _, container = container_for(lab)
    path = Path(lab["lab_dir"]) / f"upstream-{container}.lock"
    deadline = time.monotonic() + wait
    with path.open("a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"container {container}: another run of the upstream targets has held "
                                       f"{path} for {wait:.0f} s; wait for it to end, or pick another container "
                                       "with NSPAWN_FAST_UPSTREAM_CONTAINER") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_target(lab: dict[str, Any], target: Target, strategy: str, pipelining: bool,
               workdir: Path, checkout: Path | None = None) -> TargetResult:
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "targets").exists():
        shutil.copytree(CORE_TARGETS, workdir / "targets", symlinks=True)
    with container_lock(lab):
        if target.reset:
            reset = run_step(lab, target, Step("reset", (str(SETUP / "reset.yml"),)), "linear", True,
                             workdir, checkout)
            if not reset.as_expected():
                raise RuntimeError(f"could not reset the container before {target.name}:\n{reset.output[-3000:]}")
        steps = [run_step(lab, target, step, strategy, pipelining, workdir, checkout) for step in target.steps]
    return TargetResult(target, strategy, pipelining, steps)


# --- command line: the table ------------------------------------------------------------------
def _cell(result: TargetResult, reference: TargetResult | None) -> str:
    if reference is not None and result is not reference:
        if compare(result, reference):
            return "differs"
        if any(s.step.documented_difference for s in result.steps) and result.strategy.startswith("nspawn_"):
            return "documented"
    return "pass" if result.as_expected() else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab-dir", default=os.environ.get("NSPAWN_FAST_LAB_DIR", "/var/lib/nspawn-fast/lab"))
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated (default: all)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--pipelining", default="off,on")
    parser.add_argument("--checkout", type=Path, help="run this copy of the project's code instead "
                        "(e.g. an unpacked `git archive` of an earlier commit)")
    parser.add_argument("--details", action="store_true", help="print how each cell differs or fails")
    parser.add_argument("--output", type=int, default=0, metavar="N", help="with --details: the last N lines")
    opts = parser.parse_args(argv)
    lab = json.loads((Path(opts.lab_dir) / "lab.json").read_text())
    pipelinings = [p == "on" for p in opts.pipelining.split(",")]
    strategies = opts.strategies.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="nf-upstream-") as tmp:
        for name in opts.targets.split(","):
            target = TARGETS[name]
            cells = []
            for pipelining in pipelinings:
                reference = None
                for strategy in strategies:
                    workdir = Path(tmp) / f"{name}-{strategy}-{int(pipelining)}"
                    result = run_target(lab, target, strategy, pipelining, workdir, opts.checkout)
                    if strategy == "linear":
                        reference = result
                    cells.append(_cell(result, reference))
                    if opts.details and cells[-1] != "pass":
                        print(f"--- {name} {strategy} pipelining={pipelining}\n{result.describe()}", flush=True)
                        if opts.output:
                            for step in result.steps:
                                print("\n".join(step.output.splitlines()[-opts.output:]), flush=True)
                        if reference is not None and result is not reference:
                            print("  " + "\n  ".join(compare(result, reference)), flush=True)
            rows.append((name, cells))
            print(f"{name}: {' '.join(cells)}", file=sys.stderr, flush=True)
    header = [f"{s} {'pipelining' if p else 'no pipelining'}" for p in pipelinings for s in strategies]
    print("| target | " + " | ".join(header) + " |")
    print("|---|" + "---|" * len(header))
    for name, cells in rows:
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
