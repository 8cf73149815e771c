# ansible-nspawn-fast: strategy shim. The logic lives in ansible_nspawn_fast.transport.
from __future__ import annotations

from ansible.plugins.loader import strategy_loader

from ansible_nspawn_fast.transport.strategy import NspawnStrategyMixin


class StrategyModule(NspawnStrategyMixin, strategy_loader.get("free", class_only=True)):
    pass
