# The nspawn_linear strategy of ansible-nspawn-fast: ansible.builtin.linear on mitogen, with a
# persistent interpreter per nspawn container; the logic lives in ansible_nspawn_fast.transport.
# Ansible loads this very file from the package (strategy_plugins = .../ansible_nspawn_fast/plugins/
# strategy, printed by `nspawn-fast ansible-cfg`), from a checkout's strategy_plugins/ (a symlink to
# it) or from the collection nspawn_fast.nspawn (a copy of it, made by scripts/build-collection.sh).
# Copyright: ansible-nspawn-fast developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: nspawn_linear
short_description: The linear strategy with persistent interpreters in nspawn containers
description:
  - Runs plays as C(ansible.builtin.linear) does, on the C(mitogen) package (ansible_mitogen's
    multiplexer, module and file services).
  - Per remote host one SSH connection and one Python interpreter; per container of the
    C(nspawn) connection (C(nspawn_fast.nspawn.nspawn)) one interpreter started once from the
    host's; per directory tree one interpreter under C(systemd-nspawn -D). Later tasks run their
    modules and file transfers in those interpreters.
  - Other connection types in the play (ssh, local) run as under ansible_mitogen's C(mitogen_linear).
  - Needs the Python package C(ansible-nspawn-fast) where ansible-playbook runs
    (C(pip install ansible-nspawn-fast), which brings C(mitogen)).
version_added: "0.1.0"
"""

from ansible.plugins.loader import strategy_loader  # noqa: E402

try:
    from ansible_nspawn_fast.transport.strategy import NspawnStrategyMixin
except ImportError as e:  # the collection installed without its Python package
    from ansible.errors import AnsibleError

    _MISSING = (f"the nspawn_linear strategy needs the Python package ansible-nspawn-fast where "
                f"ansible-playbook runs: pip install ansible-nspawn-fast (importing it failed: {e})")

    class NspawnStrategyMixin:  # type: ignore[no-redef]
        """Stands in for the strategy when its package is missing: using it says what to install."""

        def __init__(self, *args, **kwargs):
            raise AnsibleError(_MISSING)


class StrategyModule(NspawnStrategyMixin, strategy_loader.get("linear", class_only=True)):
    pass
