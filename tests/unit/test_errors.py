"""The one table of the host helper's error codes, and each interface's words for the next step."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ansible_nspawn_fast import enter, errors
from ansible_nspawn_fast.connection import ANSIBLE_STEPS
from ansible_nspawn_fast.ops.helper import OPERATOR_STEPS
from ansible_nspawn_fast.transport import hostside

STEPS = {"ansible": ANSIBLE_STEPS, "operator": OPERATOR_STEPS}


def helper_codes() -> set[str]:
    """Every CODE of `die CODE MESSAGE` in helper.sh."""
    codes = re.findall(r"\bdie\s+(\S+)", enter.host_helper())
    # Spelled out, never computed: otherwise this list could not be complete.
    assert codes and all(re.fullmatch(r"[a-z]+(-[a-z]+)*", c) for c in codes), codes
    return set(codes)


def host_interpreter_codes() -> set[str]:
    """The codes the host's interpreter adds to the helper's (its lookup, hostside.leader)."""
    return set(re.findall(r'"error": \("([a-z-]+)"', Path(hostside.__file__).read_text()))


def test_every_code_the_helper_can_emit_has_an_entry():
    assert {"not-running", "leader-changed", "usage"} <= helper_codes()  # the parse found them
    assert helper_codes() - set(errors.HELPER_FAILURES) == set()
    assert host_interpreter_codes() == {"not-ready", "lookup-failed"}
    assert host_interpreter_codes() - set(errors.HELPER_FAILURES) == set()


def test_every_entry_is_a_code_something_emits():
    assert set(errors.HELPER_FAILURES) - helper_codes() - host_interpreter_codes() == set()


def say(code: str, steps: errors.NextSteps, message: str = "what {the} helper said") -> errors.NspawnError:
    return errors.helper_failure(code, message, where="container web on host db1", name="web", steps=steps)


@pytest.mark.parametrize("interface", sorted(STEPS))
@pytest.mark.parametrize("code", sorted(errors.HELPER_FAILURES) + ["code-of-a-newer-helper"])
def test_each_message_names_the_container_the_cause_and_a_next_step_in_the_interfaces_words(code, interface):
    text = str(say(code, STEPS[interface]))
    # The helper's words as they came (not read as a template), after where it happened.
    assert "container web on host db1" in text and "what {the} helper said" in text
    assert "{" not in text.replace("{the}", "")  # every field of the table was filled
    other = STEPS["operator" if interface == "ansible" else "ansible"]
    for field, word in vars(other).items():
        if word != getattr(STEPS[interface], field):
            assert word not in text, f"the other interface's words for {field}"
    if errors.HELPER_FAILURES.get(code, errors.UNKNOWN_FAILURE).next_step:
        assert re.search(r"\. [A-Z]", text), "the next step is a sentence of its own"


@pytest.mark.parametrize("code", sorted(errors.HELPER_FAILURES))
def test_the_cause_is_the_same_sentence_for_every_interface(code):
    ansible, operator = (str(say(code, steps)) for steps in (ANSIBLE_STEPS, OPERATOR_STEPS))
    cause = errors.HELPER_FAILURES[code].cause
    # Up to the first field an interface fills, both messages read the same.
    common = cause.format(where="container web on host db1", name="web", message="what {the} helper said",
                          work="\0").split("\0")[0]
    assert ansible.startswith(common) and operator.startswith(common)
    assert type(say(code, ANSIBLE_STEPS)) is type(say(code, OPERATOR_STEPS))


def test_the_interfaces_say_the_same_cause_in_their_own_words():
    assert str(say("not-ready", ANSIBLE_STEPS, "x")) == (
        "container web on host db1 is running but not booted: x. Wait, raise ansible_nspawn_boot_timeout "
        "(0 enters it as it is) or look at `systemctl --failed` in it")
    assert str(say("not-ready", OPERATOR_STEPS, "x")).endswith(
        "not booted: x. Wait, raise --boot-timeout (0 enters it as it is) or look at `systemctl --failed` in it")
    assert str(say("leader-changed", ANSIBLE_STEPS, "x")) == (
        "container web on host db1 stopped or restarted while this task was running (x). The task failed; the "
        "next task enters the new leader")
    assert str(say("leader-changed", OPERATOR_STEPS, "x")).endswith(
        "while this command was running (x). Run the command again")


@pytest.mark.parametrize("code, kind", [
    ("not-running", errors.Unreachable), ("not-ready", errors.Unreachable), ("refused", errors.Unreachable),
    ("leader-changed", errors.ContainerRestarted), ("code-of-a-newer-helper", errors.Unreachable),
])
def test_the_kind_decides_unreachable_or_failed(code, kind):
    assert type(say(code, ANSIBLE_STEPS)) is kind


def test_a_code_this_version_does_not_know_is_said_as_it_came():
    text = str(say("code-of-a-newer-helper", ANSIBLE_STEPS, "x"))
    assert text.startswith("cannot enter container web on host db1: code-of-a-newer-helper x. ")
    assert "ansible_nspawn_host_helper" in text


# -- one error model for both Ansible paths ----------------------------------------------------
PACKAGE = Path(errors.__file__).parent
# The plugin path and nspawn_linear's (its connection and its bulk transfers).
ANSIBLE_PATHS = ("connection.py", "transport/connection.py", "transport/bulk.py")
# Raised as is, by design: a failed become hop of nspawn_linear, in ansible_mitogen's own words
# and kind (its password or prompt, not the container, failed).
AS_ANSIBLE_MITOGEN_SAYS = {("transport/connection.py", "AnsibleModuleError")}


def _called(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _calls_outside(tree: ast.AST, allowed_function: str) -> list[tuple[str, int]]:
    """(name, line) of every call outside `allowed_function`."""
    found: list[tuple[str, int]] = []

    def walk(node: ast.AST, inside: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside = inside or node.name == allowed_function
        if isinstance(node, ast.Call) and not inside:
            found.append((_called(node), node.lineno))
        for child in ast.iter_child_nodes(node):
            walk(child, inside)

    walk(tree, False)
    return found


@pytest.mark.parametrize("path", ANSIBLE_PATHS)
def test_both_paths_build_no_error_of_their_own(path):
    """Ansible's errors are made only by connection.to_ansible_error, and the runtime's only in
    errors.py: no message is written out on one path alone, or twice."""
    ours = {name for name, value in vars(errors).items()
            if isinstance(value, type) and issubclass(value, errors.NspawnError)}
    tree = ast.parse((PACKAGE / path).read_text())
    for name, line in _calls_outside(tree, "to_ansible_error"):
        if name.startswith("Ansible") and (path, name) not in AS_ANSIBLE_MITOGEN_SAYS:
            pytest.fail(f"{path}:{line} raises {name} itself: build it in errors.py, raise it through "
                        "to_ansible_error")
        assert name not in ours, f"{path}:{line} writes a {name} message itself: say it in errors.py"


def test_only_enter_py_builds_a_helper_command_line():
    """`enter`, `plan` (the container's interpreter) and `hostside` (the lookup) all take theirs
    from enter.py's helper_argv; the operator tools' own verbs (stop, enter-partial) too."""
    for f in sorted(PACKAGE.rglob("*.py")):
        rel = f.relative_to(PACKAGE).as_posix()
        calls = {name for name, _ in _calls_outside(ast.parse(f.read_text()), "")}
        if rel not in ("enter.py", "cli.py"):  # cli prints the helper for a host install
            assert "host_helper" not in calls, rel
        if "helper_argv" in calls:
            assert rel in ("enter.py", "ops/enter.py", "ops/stop.py"), rel
