import shlex
import textwrap

import pytest

from ansible_nspawn_fast.ops import playbooks


def write(tmp_path, name, text):
    (tmp_path / name).write_text(textwrap.dedent(text))


def test_a_playbook_per_tree_with_its_creation_command(tmp_path):
    write(tmp_path, "bookworm.yml", """
        - hosts: bookworm
          vars:
            secret: !vault |
              $ANSIBLE_VAULT;1.1;AES256
              6162
            nspawn_chroot_create: "debootstrap --variant=minbase bookworm {{ tree }}"
          tasks: []
        - import_playbook: common.yml
        - hosts: [bookworm]
          tasks: []
    """)
    write(tmp_path, "sid.yaml", "- hosts: sid\n  tasks: []\n")
    write(tmp_path, "README.md", "not a playbook")
    write(tmp_path, ".hidden.yml", "- hosts: x\n")
    books = playbooks.find_playbooks(tmp_path)
    assert [(b.name, b.create, b.problem) for b in books] == [
        ("bookworm", "debootstrap --variant=minbase bookworm {{ tree }}", None),
        ("sid", None, None),
    ]


@pytest.mark.parametrize("text, problem", [
    ("- hosts: all\n", "targets hosts 'all'"),
    ("- hosts: other\n", "`hosts: t`"),
    ("- tasks: []\n", "targets hosts None"),
    ("{hosts: t}\n", "not a list of plays"),
    ("- hosts: t\n  vars: {nspawn_chroot_create: debootstrap sid /srv/t}\n", "with {{ tree }}"),
    ("- hosts: t\n  vars: {nspawn_chroot_create: 'cp -a {{ src }} {{ tree }}'}\n", "only {{ tree }}"),
    ("- hosts: t\n  vars: {nspawn_chroot_create: [a, b]}\n", "must be a command"),
    ("- hosts: t\n  tasks: [\n", "cannot be read"),
])
def test_problems_name_the_file_and_the_fix(tmp_path, text, problem):
    write(tmp_path, "t.yml", text)
    (book,) = playbooks.find_playbooks(tmp_path)
    assert book.problem is not None and problem in book.problem
    assert book.create is None


def test_yml_and_yaml_for_one_tree_is_a_problem(tmp_path):
    write(tmp_path, "t.yml", "- hosts: t\n")
    write(tmp_path, "t.yaml", "- hosts: t\n")
    (book,) = playbooks.find_playbooks(tmp_path)
    assert "keep one" in book.problem


def test_the_tree_path_is_quoted_into_the_command():
    tree = "/srv/my trees/.x.nspawn-fast-new"
    cmd = playbooks.create_command("debootstrap bookworm {{tree}} && touch {{ tree }}/made", tree)
    assert shlex.split(cmd) == ["debootstrap", "bookworm", tree, "&&", "touch", tree + "/made"]
