"""state.json: what `up` started, so `status`/`down` and the next `up` can find it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import LabConfig


def load(cfg: LabConfig) -> dict[str, Any] | None:
    try:
        return json.loads(cfg.state_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"corrupt": True, "hosts": {}}


def save(cfg: LabConfig, state: dict[str, Any]) -> None:
    cfg.lab_dir.mkdir(parents=True, exist_ok=True)
    tmp = cfg.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(cfg.state_file)


def new(cfg: LabConfig, image: str) -> dict[str, Any]:
    return {"version": 1, "phase": "starting", "shape": cfg.shape(), "image": image,
            "hosts": {}}


def config_from_state(state: dict[str, Any], base: LabConfig) -> LabConfig:
    """The config a recorded lab was built with (status/down need its shape)."""
    from dataclasses import fields, replace
    known = {f.name for f in fields(base)}
    shape = {k: v for k, v in (state.get("shape") or {}).items() if k in known}
    try:
        return replace(base, **shape)
    except (TypeError, ValueError):
        return base


def host_paths(state: dict[str, Any]) -> dict[str, Path]:
    return {n: Path(h["root"]) for n, h in state.get("hosts", {}).items() if "root" in h}
