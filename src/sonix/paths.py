"""Where things are: the source tree and the per-user state directory."""

from __future__ import annotations

import os
from pathlib import Path


def source_root() -> Path:
    """The sonix checkout (lib/, modules/, pkgs/ ...)."""
    env = os.environ.get("SONIX_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """Writable working state (VM disks, apt indices): `.sonix/` in the checkout by default."""
    env = os.environ.get("SONIX_STATE_DIR")
    path = Path(env) if env else source_root() / ".sonix"
    path.mkdir(parents=True, exist_ok=True)
    return path
