"""CPU placement under nspawn_linear: mitogen's pinning only where it leaves Ansible enough CPUs."""
from __future__ import annotations

import ansible_mitogen.affinity
import pytest

from ansible_nspawn_fast.transport import affinity


@pytest.mark.parametrize("cpus", [1, 2, 3])
def test_small_machines_pin_nothing(cpus: int) -> None:
    mitogen_policy = ansible_mitogen.affinity.FixedPolicy(cpu_count=cpus)
    chosen = affinity.policy_for(cpus, mitogen_policy)
    assert type(chosen) is ansible_mitogen.affinity.Policy  # its assign_* do nothing


@pytest.mark.parametrize("cpus", [4, 16])
def test_larger_machines_keep_mitogens_placement(cpus: int) -> None:
    mitogen_policy = ansible_mitogen.affinity.FixedPolicy(cpu_count=cpus)
    assert affinity.policy_for(cpus, mitogen_policy) is mitogen_policy
