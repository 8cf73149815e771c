"""The built-in lab: "remote hosts" and nspawn guests on one machine.

Each host is a systemd-booted nspawn container with its own sshd on a 127.0.0.1 port
and its own machined; guests are booted inside it with `machinectl start`.
Everything shares one read-only debootstrap image through overlayfs.
"""
