"""Machine names as machined accepts them.

systemd (src/basic/hostname-util.c, machine_name_is_valid) takes a hostname:
dot-separated labels of ASCII letters, digits and '-' (not at a label's start
or end), at most 64 characters. Checking this before anything runs means a name such as
'web;touch /tmp/x' never reaches a shell or machinectl. machined's special name '.host' (the
host itself) is refused too: a task for a container must never run on its host.
"""
from __future__ import annotations

import re

HOST_NAME_MAX = 64
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_NAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def is_valid_machine_name(name: object) -> bool:
    if not isinstance(name, str):
        return False
    return len(name) <= HOST_NAME_MAX and _NAME_RE.fullmatch(name) is not None
