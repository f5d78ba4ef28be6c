"""`sonix test` makes room in the Nix store before a session when the disk runs low."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from sonix import nix, ui
from sonix.commands import test as test_command

GIB = 1 << 30


class Usage(NamedTuple):
    total: int
    used: int
    free: int


class FakeDisk:
    """disk_usage() that reports `free`, and a collector that frees `freed` once."""

    def __init__(self, free: int, freed: int) -> None:
        self.free = free
        self.freed = freed
        self.collections = 0

    def usage(self, path: object) -> Usage:
        return Usage(500 * GIB, 0, self.free)

    def collect(self) -> str:
        self.collections += 1
        self.free += self.freed
        return f"12 store paths deleted, {self.freed >> 20} MiB freed"


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> FakeDisk:
    fake = FakeDisk(free=0, freed=0)
    monkeypatch.setattr(shutil, "disk_usage", fake.usage)
    monkeypatch.setattr(nix, "collect_garbage", fake.collect)
    return fake


def test_enough_space_collects_nothing(disk: FakeDisk, tmp_path: Path) -> None:
    disk.free = 40 * GIB
    test_command.make_room(tmp_path, need=25 * GIB)
    assert disk.collections == 0


def test_low_space_collects_garbage_first(
    disk: FakeDisk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    disk.free, disk.freed = 1 * GIB, 60 * GIB
    test_command.make_room(tmp_path, need=25 * GIB)
    assert disk.collections == 1
    err = capsys.readouterr().err
    assert "Only 1 GiB free" in err and "61440 MiB freed" in err


def test_still_too_little_space_is_an_error_that_says_what_to_remove(
    disk: FakeDisk, tmp_path: Path
) -> None:
    disk.free, disk.freed = 1 * GIB, 2 * GIB
    with pytest.raises(ui.SonixError) as error:
        test_command.make_room(tmp_path, need=25 * GIB)
    assert "only 3 GiB free" in error.value.message
    assert error.value.hint is not None and ".sonix/build" in error.value.hint


def test_no_nix_store_yet_is_left_alone(disk: FakeDisk, tmp_path: Path) -> None:
    test_command.make_room(tmp_path / "missing", need=25 * GIB)
    assert disk.collections == 0
