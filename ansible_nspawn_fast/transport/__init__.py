"""The mitogen side of `strategy = nspawn_linear`.

- plan.py      the connection stack as plain data (no Ansible, no mitogen calls)
- hostside.py  runs in the host's persistent interpreter: leader lookup and cache
- connection.py  the Ansible adapter: an ansible_mitogen Connection for `nspawn`
- strategy.py  the strategy mixin: ansible_mitogen's, plus `nspawn` -> our adapter
"""
