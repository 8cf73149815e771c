"""What a chroot playbook says: which tree it maintains and how to create that tree.

`PLAYBOOKS/NAME.yml` (or `.yaml`) maintains the tree `DIR/NAME`. Every play in it must target
that tree (`hosts: NAME`): all playbooks run in one ansible-playbook run, where `hosts: all`
would reach every tree. A play's `vars:` may hold `nspawn_chroot_create`, the host command
that creates a missing tree, with `{{ tree }}` where the new tree goes, e.g.
`debootstrap --variant=minbase bookworm {{ tree }}`.
"""
from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

CREATE_VAR = "nspawn_chroot_create"
_TREE_RE = re.compile(r"\{\{\s*tree\s*\}\}")
# A tree's directory name, which is also its inventory hostname.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_IMPORTS = ("import_playbook", "ansible.builtin.import_playbook")


class _Loader(yaml.SafeLoader):
    """Ansible's YAML without its tags: `!vault` and `!unsafe` values read as None."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


@dataclasses.dataclass(frozen=True)
class ChrootPlaybook:
    name: str
    path: Path
    create: str | None = None  # the command template, with {{ tree }}
    problem: str | None = None  # why it cannot run, or None


def find_playbooks(directory: Path) -> list[ChrootPlaybook]:
    """Every NAME.yml / NAME.yaml in `directory`, read; sorted by name."""
    by_name: dict[str, list[Path]] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix in (".yml", ".yaml") and path.is_file() and _NAME_RE.fullmatch(path.stem):
            by_name.setdefault(path.stem, []).append(path)
    found = []
    for name, paths in sorted(by_name.items()):
        if len(paths) > 1:
            found.append(ChrootPlaybook(name, paths[0], problem=f"both {paths[0].name} and "
                                        f"{paths[1].name} exist: keep one"))
        else:
            found.append(read_playbook(paths[0], name))
    return found


def read_playbook(path: Path, name: str) -> ChrootPlaybook:
    try:
        plays = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        return ChrootPlaybook(name, path, problem=f"{path.name} cannot be read: {' '.join(str(e).split())}")
    if not isinstance(plays, list) or not all(isinstance(p, dict) for p in plays):
        return ChrootPlaybook(name, path, problem=f"{path.name} is not a list of plays")
    create: Any = None
    for i, play in enumerate(plays, 1):
        if any(k in play for k in _IMPORTS):
            continue  # an imported playbook's plays are its own business: documented
        hosts = play.get("hosts")
        if hosts != name and hosts != [name]:
            return ChrootPlaybook(name, path, problem=f"play {i} of {path.name} targets hosts {hosts!r}: "
                                  f"each play must say `hosts: {name}`, its tree (all trees run in one "
                                  "ansible-playbook run)")
        play_vars = play.get("vars")
        if create is None and isinstance(play_vars, dict):
            create = play_vars.get(CREATE_VAR)
    if create is None:
        return ChrootPlaybook(name, path)
    problem = None
    if not isinstance(create, str) or not _TREE_RE.search(create):
        problem = f"{CREATE_VAR} in {path.name} must be a command with {{{{ tree }}}} where the new tree goes"
    elif "{{" in _TREE_RE.sub("", create) or "{%" in create:
        problem = f"{CREATE_VAR} in {path.name}: only {{{{ tree }}}} is filled in, no other template"
    return ChrootPlaybook(name, path, create=create if problem is None else None, problem=problem)


def create_command(template: str, tree: str) -> str:
    """The creation command for `tree` (a path), quoted for the host's shell."""
    return _TREE_RE.sub(lambda _: shlex.quote(tree), template)
