"""Shared pytest set-up: the source root and the Nix environment for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Same settings as sonix.nix: no substituters (nothing outside this machine is reachable).
os.environ.setdefault("NIX_CONFIG", "substituters =\n")
os.environ["SONIX_ROOT"] = str(ROOT)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
