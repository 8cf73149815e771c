"""The mitogen side of `strategy = nspawn_linear` (docs/design-nspawn-linear.md).

- plan.py        the connection stack as plain data (no Ansible, no mitogen calls)
- connection.py  the Ansible adapter in each task's worker: an ansible_mitogen Connection for `nspawn`
- bulk.py        in each task's worker: files of 8 MiB and more over an SSH session of their own
- muxside.py     in the multiplexer: one call per task (host, leader, container interpreter)
- hostside.py    in each host's interpreter: leader cache, parallel container starts
- codecache.py   in each container's interpreter: the code it compiles, kept for the next run
- strategy.py    the strategy mixin: ansible_mitogen's, plus `nspawn` -> our adapter and the hooks
- lifetime.py    multiplexer and workers end with the controller, even on SIGKILL
"""
