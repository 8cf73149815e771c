"""ansible-nspawn-fast: fast, correct Ansible against systemd-nspawn containers."""
