"""Operator tools: `nspawn-fast enter`, `stop` and `chroots`.

Small modules with one job each: `errors` (the one-line error), `place` (where a command runs:
over the user's own ssh, or on this machine), `helper` (the host helper's verbs there, and its
errors as one line), `enter`, `ptyrelay` (a terminal of its own for a local command), `stop`,
`playbooks` (what a chroot playbook says), `chroots`, `chroot_callback` (the Ansible callback
that reports per tree) and `commands` (the CLI wiring). Nothing here imports Ansible except
`chroot_callback`, so `enter` and `stop` run on a host that has only python3 (e.g. as the
ExecStop= of systemd-nspawn@.service).
"""
