# The nspawn inventory plugin of ansible-nspawn-fast: every machine of machined on every listed
# host, reached with ansible_connection nspawn. The logic lives in ansible_nspawn_fast.inventory;
# this file is only its documentation and the class Ansible loads.
# Copyright: ansible-nspawn-fast developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: nspawn
short_description: Every systemd-nspawn machine on every listed host, reached with ansible_connection nspawn
description:
  - Lists the machines that machined knows on each host (C(machinectl list), and with
    O(include_stopped) the images of C(machinectl list-images) that are not running) and
    makes each one an inventory host with C(ansible_connection=nspawn), C(ansible_host),
    C(ansible_port), C(ansible_user) and the SSH settings of its host, and
    C(ansible_nspawn_container) set to its machine name.
  - Loaded from the collection (C(plugin=nspawn_fast.nspawn.nspawn) with no plugin path
    configured), C(ansible_connection) is the collection's connection plugin,
    C(nspawn_fast.nspawn.nspawn); O(compose) can set another.
  - Per host ONE SSH round trip with the system C(ssh) (BatchMode, ControlMaster) runs a
    small POSIX sh script there that asks machined only (C(machinectl list), which has each
    running machine's os-release ID and VERSION_ID, C(machinectl list-images), and with
    O(os_pretty_name) machined's C(GetMachineOSRelease) for each running machine);
    nothing reads a container's files. Listing needs no root on the host. JSON output is
    used where machinectl has it, its text columns on older systemd (239 and later).
  - Hosts are asked in parallel (up to 32 at a time), each bounded by O(timeout). A host that cannot be asked is
    a warning naming it and the SSH error, and its machines are missing; with O(strict) it
    fails the inventory source.
  - Machine names are checked with machined's own rules; a name that fails them (odd
    characters) is skipped with a warning and never becomes an inventory name.
  - Each host gets the variables C(nspawn_host) (the host's O(hosts[].alias)),
    C(nspawn_state) (running or stopped), C(nspawn_class) (container or vm; null for a
    stopped image), C(nspawn_os_id), C(nspawn_os_version), C(nspawn_os_pretty_name)
    (with O(os_pretty_name); running machines only; the container's own os-release, as machined reads it,
    so a claim of the container, not a fact to base trust on), C(nspawn_image_type)
    (directory, subvolume, raw, block; null when the machine has no image).
  - Groups (names sanitized to letters, digits and C(_)) are C(nspawn_host_<host>),
    C(nspawn_running), C(nspawn_stopped), C(nspawn_os_<id>), C(nspawn_class_<class>).
  - A stopped image keeps C(ansible_connection=nspawn); tasks on it make it UNREACHABLE
    with the connection's "is not running" message, never silently run elsewhere. Start it
    (C(machinectl start)) or use O(include_stopped=false) or the C(nspawn_running) group.
  - The configuration file's name must end in C(.nspawn.yml) or C(.nspawn.yaml).
version_added: "0.1.0"
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description:
      - C(nspawn), or a fully qualified name of this plugin (any name ending in C(.nspawn),
        such as the collection's C(nspawn_fast.nspawn.nspawn)).
    type: string
    required: true
  hosts:
    description:
      - The hosts that run the machines.
      - Each item is a mapping; a plain string is the same as O(hosts[].name) alone.
    type: list
    elements: raw
    default: []
    suboptions:
      name:
        description: The host's SSH target (C(ansible_host) of its machines).
        type: string
        required: true
      alias:
        description:
          - The host's name in the inventory; C(nspawn_host), the group
            C(nspawn_host_<alias>) and C({{ host }}) in O(name_template). Needed when two
            items have the same O(hosts[].name) (one address, two ports).
          - Defaults to O(hosts[].name).
        type: string
      port:
        description: SSH port (C(ansible_port) of its machines).
        type: integer
      user:
        description: SSH user (C(ansible_user) of its machines). Root, or see O(hosts[].sudo).
        type: string
      private_key_file:
        description: SSH private key (C(ansible_ssh_private_key_file) of its machines).
        type: string
      ssh_common_args:
        description:
          - Extra SSH arguments, for example C(-o ProxyJump=bastion) (C(ansible_ssh_common_args)
            of its machines); they come first on the listing's ssh command line, so they win.
        type: string
      sudo:
        description:
          - Sets C(ansible_nspawn_host_sudo=true) on its machines (the connection runs its
            host side through C(sudo -n)). The listing itself needs no root and does not use sudo.
        type: boolean
        default: false
  hosts_from_group:
    description:
      - Also ask every host of this inventory group, with its C(ansible_host), C(ansible_port),
        C(ansible_user), C(ansible_ssh_private_key_file), C(ansible_ssh_common_args) and
        C(ansible_nspawn_host_sudo) (host and group variables, taken as written, not
        templated); its inventory name is its O(hosts[].alias).
      - The group's source must come before this file (C(-i hosts.yml -i fleet.nspawn.yml)).
    type: string
  name_template:
    description:
      - Jinja2 template of each machine's inventory name. It sees C(machine), C(host) (the
        host's alias), C(host_short) (up to its first dot; an IP address whole, dots as
        dashes), C(ssh_host), C(state), C(class) and C(os_id).
      - A name is never silently given twice. With the default, a machine name already taken
        on an earlier host is a warning naming both hosts, and the later machine is named
        C({{ machine }}-{{ host_short }}). A template of your own that gives one name twice
        fails the source with both hosts named.
      - For fleets that reuse machine names on several hosts, use C({{ machine }}-{{ host }}).
      - Unset (the default) is C({{ machine }}), the machine name itself. (Not written as a
        default here because Ansible would template a default that starts with C({{).)
    type: string
  include_stopped:
    description:
      - Also list the images machined knows that are not running (C(nspawn_state=stopped),
        group C(nspawn_stopped)).
    type: boolean
    default: true
  os_pretty_name:
    description:
      - Also ask machined for the whole os-release of each running machine, for
        C(nspawn_os_pretty_name) (null without it; C(nspawn_os_id) and C(nspawn_os_version)
        come from C(machinectl list) either way).
      - Costs one C(busctl) process and machined call per running machine, which machined
        answers one at a time by entering the machine; on a host with 25 machines that is
        most of the listing's time.
    type: boolean
    default: false
  timeout:
    description:
      - Seconds to wait for each host's answer (also its SSH ConnectTimeout).
    type: integer
    default: 30
  ssh_executable:
    description: The ssh client to run.
    type: string
    default: ssh
  ssh_args:
    description:
      - SSH options of the listing, after the host's O(hosts[].ssh_common_args).
      - With C(ControlMaster) and no C(ControlPath) of your own, the master's socket is
        C(<control_path_dir>/nsi-%C), so the next listing within ControlPersist needs no
        new SSH handshake.
    type: string
    default: -o ControlMaster=auto -o ControlPersist=60s
  control_path_dir:
    description: Directory of the listing's SSH ControlMaster sockets (created mode 0700).
    type: string
    default: ~/.ansible/cp
"""

EXAMPLES = r"""
# fleet.nspawn.yml: every machine on two hosts
plugin: nspawn
hosts:
  - name: server1.example.com
    user: root
  - name: server2.example.com
    user: ansible
    sudo: true
    ssh_common_args: -o ProxyJump=bastion.example.com
# ansible-inventory -i fleet.nspawn.yml --graph
# ansible -i fleet.nspawn.yml nspawn_running -m ping

# lab.nspawn.yml: one address, two ports (aliases tell them apart); machines named by host
plugin: nspawn
hosts:
  - {name: 127.0.0.1, port: 2201, alias: nf-host1, private_key_file: ~/.ssh/lab}
  - {name: 127.0.0.1, port: 2202, alias: nf-host2, private_key_file: ~/.ssh/lab}
name_template: "{{ machine }}-{{ host }}"
include_stopped: false

# the hosts of an inventory group: ansible-inventory -i hosts.yml -i from-group.nspawn.yml
plugin: nspawn
hosts_from_group: container_hosts
timeout: 10

# constructed features and the inventory cache
plugin: nspawn
hosts: [server1.example.com, server2.example.com]
keyed_groups:
  - key: nspawn_os_id ~ '_' ~ nspawn_os_version   # debian_12, ubuntu_24.04 (sanitized)
    prefix: os
  - key: nspawn_host
    prefix: machines_of
groups:
  bookworm: nspawn_os_id == 'debian' and nspawn_os_version == '12'
compose:
  ansible_pipelining: "true"   # Jinja2 expressions
strict: false
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-inventory
cache_timeout: 300
"""

from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402

_MISSING = ""
try:
    from ansible_nspawn_fast import inventory as _impl
except ImportError as e:  # installed without its Python package
    _impl = None
    _MISSING = (f"the nspawn inventory plugin needs the Python package ansible-nspawn-fast where "
                f"Ansible runs: pip install ansible-nspawn-fast (importing it failed: {e})")


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "nspawn"

    def verify_file(self, path):
        if not super().verify_file(path):
            return False
        if _impl is None:
            return path.endswith(("nspawn.yml", "nspawn.yaml"))
        return _impl.is_config_path(path)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        if _impl is None:
            from ansible.errors import AnsibleParserError
            raise AnsibleParserError(_MISSING)
        _impl.populate(self, path, cache)
