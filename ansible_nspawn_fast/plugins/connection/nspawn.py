# The nspawn connection plugin of ansible-nspawn-fast: its options (DOCUMENTATION) and the entry
# to its logic, which lives in the Python package (ansible_nspawn_fast.connection).
# Ansible loads this very file from the package (connection_plugins = .../ansible_nspawn_fast/plugins/
# connection, printed by `nspawn-fast ansible-cfg`), from a checkout's connection_plugins/ (a symlink
# to it) or from the collection nspawn_fast.nspawn (a copy of it, made by scripts/build-collection.sh).
# Copyright: ansible-nspawn-fast developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: nspawn
short_description: Run tasks inside systemd-nspawn containers on remote hosts, without sshd in them
description:
  - SSH to the host that runs the container (or use the controller itself), find the container's
    leader with C(machinectl show NAME -p Leader), enter the namespaces of the leader that differ
    from the host's, join its cgroup, and run there with the container's environment.
  - The SSH hop is ansible-core's own C(ansible.builtin.ssh) plugin, configured from the same
    variables as a stock ssh host (ControlMaster/ControlPersist, ProxyJump, keys, passwords).
  - Directory mode (O(nspawn_directory)) runs each command in a not-running OS tree with
    C(systemd-nspawn -D), for maintaining build chroots.
  - Works under every stock strategy; C(strategy = nspawn_linear) makes it faster.
  - The host needs C(nsenter) (util-linux) and C(machinectl)/C(systemd-nspawn) (systemd-container);
    the SSH user must be root there, or set O(nspawn_host_sudo).
version_added: "0.1.0"
extends_documentation_fragment:
  - connection_pipelining
options:
  nspawn_container:
    description:
      - The machine name as C(machinectl list) shows it on the host.
      - Validated with machined's rules before anything runs.
    type: string
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_nspawn_container
    env:
      - name: ANSIBLE_NSPAWN_CONTAINER
  nspawn_directory:
    description:
      - Path on the host of a not-running OS tree. When set, commands run in it through
        C(systemd-nspawn -D) and O(nspawn_container) is not used.
    type: string
    vars:
      - name: ansible_nspawn_directory
  nspawn_args:
    description:
      - Extra arguments for C(systemd-nspawn) in directory mode, for example C(--bind=/srv/cache)
        or C(--private-network). A string is split like a shell would.
      - They are parsed as systemd-nspawn parses them (abbreviations, bundled short options)
        and refused, with the reason, when they would pick another tree or image
        (C(--directory), C(--image), C(--template), C(--overlay)), change the tree on disk
        or its ownership (C(--ephemeral), C(--private-users-ownership)), the machine's
        identity or registration (C(--machine), C(--register)), or how commands run
        (C(--user), C(--as-pid2), C(--pipe)).
    type: raw
    default: []
    vars:
      - name: ansible_nspawn_args
  nspawn_local:
    description:
      - The controller itself runs the containers; no SSH hop.
    type: boolean
    default: false
    vars:
      - name: ansible_nspawn_local
    env:
      - name: ANSIBLE_NSPAWN_LOCAL
  nspawn_host_sudo:
    description:
      - Run the host side (machinectl, nsenter, systemd-nspawn) through C(sudo -n), for a
        non-root SSH user with passwordless sudo on the host.
    type: boolean
    default: false
    vars:
      - name: ansible_nspawn_host_sudo
  nspawn_host_helper:
    description:
      - Path on the host of the installed host helper (C(nspawn-fast host-helper) prints it;
        install it root-owned, mode 0755). When set, the host runs that file instead of
        receiving the helper's text with every command, so that a sudoers rule for
        O(nspawn_host_sudo) can name one program (for example a line
        C(ansible ALL=(root\) NOPASSWD:/usr/local/libexec/nspawn-fast-helper) in /etc/sudoers.d).
      - Such a rule gives its user root inside every container and directory tree on that
        host (not a shell on the host); reinstall the file when this package is upgraded.
    type: string
    vars:
      - name: ansible_nspawn_host_helper
  nspawn_boot_timeout:
    description:
      - Seconds to wait for a container that is booting, stopping or restarting (its
        C(systemd-nspawn@) unit in auto-restart) until C(systemctl is-system-running) in it
        says running or degraded; 0 enters whatever leader is registered, without waiting.
    type: integer
    default: 90
    vars:
      - name: ansible_nspawn_boot_timeout
    ini:
      - section: nspawn_connection
        key: boot_timeout
    env:
      - name: ANSIBLE_NSPAWN_BOOT_TIMEOUT
  pipelining:
    env:
      - name: ANSIBLE_PIPELINING
      - name: ANSIBLE_SSH_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
      - section: ssh_connection
        key: pipelining
    vars:
      - name: ansible_pipelining
      - name: ansible_ssh_pipelining
  # The SSH hop: same names, variables and meaning as ansible.builtin.ssh, which reads them
  # (with its ini and env settings) itself. Listed here so Ansible passes their variables on.
  host:
    description: The host that runs the container (the SSH target), as for ansible.builtin.ssh.
    type: string
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_ssh_host
      - name: delegated_vars['ansible_host']
      - name: delegated_vars['ansible_ssh_host']
  port:
    description: SSH port of the host, as for ansible.builtin.ssh.
    type: int
    vars:
      - name: ansible_port
      - name: ansible_ssh_port
    keyword:
      - name: port
  remote_user:
    description: SSH user on the host, as for ansible.builtin.ssh. Root, or see O(nspawn_host_sudo).
    type: string
    vars:
      - name: ansible_user
      - name: ansible_ssh_user
    keyword:
      - name: remote_user
  password:
    description: SSH password for the host, as for ansible.builtin.ssh. Never logged.
    type: string
    vars:
      - name: ansible_password
      - name: ansible_ssh_pass
      - name: ansible_ssh_password
  password_mechanism:
    description: As for ansible.builtin.ssh (ansible-core 2.19 and later).
    type: string
    vars:
      - name: ansible_ssh_password_mechanism
  sshpass_prompt:
    description: As for ansible.builtin.ssh.
    type: string
    vars:
      - name: ansible_sshpass_prompt
  private_key_file:
    description: SSH private key for the host, as for ansible.builtin.ssh.
    type: string
    vars:
      - name: ansible_private_key_file
      - name: ansible_ssh_private_key_file
  private_key:
    description: As for ansible.builtin.ssh (ansible-core 2.19 and later).
    type: string
    vars:
      - name: ansible_private_key
      - name: ansible_ssh_private_key
  private_key_passphrase:
    description: As for ansible.builtin.ssh (ansible-core 2.19 and later).
    type: string
    vars:
      - name: ansible_private_key_passphrase
      - name: ansible_ssh_private_key_passphrase
  host_key_checking:
    description:
      - As for ansible.builtin.ssh, with its default and settings.
      - Under the nspawn_linear and nspawn_free strategies the SSH connection is mitogen's, which
        reads this option here; false makes it ignore known_hosts files altogether.
    type: boolean
    default: true
    ini:
      - section: defaults
        key: host_key_checking
      - section: ssh_connection
        key: host_key_checking
    env:
      - name: ANSIBLE_HOST_KEY_CHECKING
      - name: ANSIBLE_SSH_HOST_KEY_CHECKING
    vars:
      - name: ansible_host_key_checking
      - name: ansible_ssh_host_key_checking
  ssh_args:
    description: As for ansible.builtin.ssh (ControlMaster/ControlPersist by default).
    type: string
    vars:
      - name: ansible_ssh_args
  ssh_common_args:
    description: As for ansible.builtin.ssh, for example C(-o ProxyJump=bastion).
    type: string
    vars:
      - name: ansible_ssh_common_args
  ssh_extra_args:
    description: As for ansible.builtin.ssh.
    type: string
    vars:
      - name: ansible_ssh_extra_args
  ssh_executable:
    description: As for ansible.builtin.ssh.
    type: string
    vars:
      - name: ansible_ssh_executable
  sftp_executable:
    description: Not used (files go through the SSH session); accepted as for ansible.builtin.ssh.
    type: string
    vars:
      - name: ansible_sftp_executable
  scp_executable:
    description: Not used (files go through the SSH session); accepted as for ansible.builtin.ssh.
    type: string
    vars:
      - name: ansible_scp_executable
  scp_extra_args:
    description: Not used; accepted as for ansible.builtin.ssh.
    type: string
    vars:
      - name: ansible_scp_extra_args
  sftp_extra_args:
    description: Not used; accepted as for ansible.builtin.ssh.
    type: string
    vars:
      - name: ansible_sftp_extra_args
  sftp_batch_mode:
    description: Not used; accepted as for ansible.builtin.ssh.
    type: bool
    vars:
      - name: ansible_sftp_batch_mode
  ssh_transfer_method:
    description: Not used (files are streamed through the SSH session); accepted as for ansible.builtin.ssh.
    type: string
    vars:
      - name: ansible_ssh_transfer_method
  reconnection_retries:
    description: As for ansible.builtin.ssh.
    type: integer
    vars:
      - name: ansible_ssh_retries
  control_path:
    description: As for ansible.builtin.ssh.
    type: string
    vars:
      - name: ansible_control_path
  control_path_dir:
    description: As for ansible.builtin.ssh.
    type: string
    vars:
      - name: ansible_control_path_dir
  use_tty:
    description: As for ansible.builtin.ssh.
    type: bool
    vars:
      - name: ansible_ssh_use_tty
  timeout:
    description: As for ansible.builtin.ssh.
    type: integer
    vars:
      - name: ansible_ssh_timeout
  pkcs11_provider:
    description: As for ansible.builtin.ssh.
    type: string
    vars:
      - name: ansible_ssh_pkcs11_provider
  verbosity:
    description: As for ansible.builtin.ssh (ansible-core 2.19 and later).
    type: int
    vars:
      - name: ansible_ssh_verbosity
"""

EXAMPLES = r"""
# inventory.yml: containers web and db on host server1, reached as root over SSH
containers:
  hosts:
    web:
    db:
      ansible_nspawn_container: postgres-prod
  vars:
    ansible_connection: nspawn
    ansible_host: server1.example.com
    ansible_user: root
    ansible_pipelining: true

# a build chroot (not running) maintained with systemd-nspawn -D
chroots:
  hosts:
    bookworm-amd64:
      ansible_nspawn_directory: /var/lib/chroots/bookworm-amd64
      ansible_nspawn_args: --bind=/var/cache/apt
  vars:
    ansible_connection: nspawn
    ansible_host: builder.example.com
"""

__all__ = ["Connection"]

try:
    from ansible_nspawn_fast.connection import Connection
except ImportError as e:  # the collection installed without its Python package
    from ansible.errors import AnsibleError
    from ansible.plugins.connection import ConnectionBase

    _MISSING = (f"the nspawn connection needs the Python package ansible-nspawn-fast where ansible-playbook "
                f"runs: pip install ansible-nspawn-fast (importing it failed: {e})")

    class Connection(ConnectionBase):  # type: ignore[no-redef]
        """Stands in for the plugin when its package is missing: using it says what to install."""

        transport = "nspawn"

        def _missing(self, *args, **kwargs):
            raise AnsibleError(_MISSING)

        __init__ = _connect = exec_command = put_file = fetch_file = close = _missing
