"""Shared pytest set-up: the source root and the Nix environment for every test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sonix import nix
from sonix.build import BuildResult, build_system

ROOT = Path(__file__).resolve().parents[1]

# Nix as sonix runs it (sonix.nix.NIX_ENV: no substituters, no build sandbox), also for the
# tests that call nix-build or nix-instantiate themselves.
os.environ.update(nix.NIX_ENV)
os.environ["SONIX_ROOT"] = str(ROOT)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def build_config(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[Path], BuildResult]]:
    """Build a configuration's image once per test session (VM tests share them).

    The `system` links are GC roots for the session only: at its end they go, so that
    `sonix test` can collect the images of earlier sessions when the disk runs low (pytest
    keeps the last three sessions' directories). Until then Nix reuses the builds."""
    cache: dict[Path, BuildResult] = {}
    out = tmp_path_factory.mktemp("builds")

    def build(config: Path) -> BuildResult:
        config = config.resolve()
        if config not in cache:
            cache[config] = build_system(config, out / config.stem)
        return cache[config]

    yield build
    for link in out.glob("*/system"):
        link.unlink()
