"""The one table of the host helper's error codes, and each interface's words for the next step."""
from __future__ import annotations

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
