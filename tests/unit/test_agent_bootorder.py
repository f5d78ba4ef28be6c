"""agents/bootorder.py: the firmware boot options that start systemd-boot again after the
firmware refused a UKI (docs/secure-boot.md), on an efivarfs stand-in directory. The VM test
(tests/vm/test_updates.py) shows the firmware using them."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest

from sonix.agents import bootorder

ESP = bootorder.Partition(number=1, start=2048, size=262144,
                          uuid=uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4"))
GLOBAL = bootorder.EFI_GLOBAL


def put(efivars: Path, name: str, data: bytes) -> None:
    (efivars / f"{name}-{GLOBAL}").write_bytes(struct.pack("<I", 7) + data)


def order(efivars: Path) -> list[int]:
    data = (efivars / f"BootOrder-{GLOBAL}").read_bytes()[4:]
    return list(struct.unpack(f"<{len(data) // 2}H", data))


@pytest.fixture
def efivars(tmp_path: Path) -> Path:
    """The firmware's own options: a disk (0001) and PXE (0002), in that order."""
    put(tmp_path, "Boot0001", bootorder.load_option("UEFI QEMU HARDDISK", b"\x7f\xff\x04\x00"))
    put(tmp_path, "Boot0002", bootorder.load_option("UEFI PXEv4", b"\x7f\xff\x04\x00"))
    put(tmp_path, "BootOrder", struct.pack("<2H", 1, 2))
    return tmp_path


def test_the_device_path_is_a_short_form_hard_drive_path() -> None:
    path = bootorder.hard_drive_path(ESP, r"\EFI\systemd\systemd-bootx64.efi")
    assert path[:4] == bytes((4, 1, 42, 0))  # media, hard drive, 42 bytes
    number, start, size, signature, fmt, kind = struct.unpack("<IQQ16sBB", path[4:42])
    assert (number, start, size, fmt, kind) == (1, 2048, 262144, 2, 2)
    assert uuid.UUID(bytes_le=signature) == ESP.uuid
    name = r"\EFI\systemd\systemd-bootx64.efi" + "\0"
    assert path[42:46] == struct.pack("<BBH", 4, 4, 4 + 2 * len(name))
    assert path[46:-4].decode("utf-16-le") == name
    assert path[-4:] == bytes((0x7F, 0xFF, 4, 0))


def test_options_come_first_and_the_rest_keeps_its_order(efivars: Path) -> None:
    changes = bootorder.ensure(2, efivars=efivars, partition=ESP)
    assert order(efivars) == [0x1000, 0x1001, 1, 2]
    assert changes[-1] == "BootOrder 1000,1001,0001,0002"
    options = bootorder.boot_options(efivars)
    path = bootorder.hard_drive_path(ESP, bootorder.DEFAULT_LOADER)
    assert options[0x1000] == bootorder.load_option("sonix (1)", path)
    assert options[0x1001] == bootorder.load_option("sonix (2)", path)


def test_a_second_run_writes_nothing(efivars: Path) -> None:
    bootorder.ensure(2, efivars=efivars, partition=ESP)
    before = {p.name: p.stat().st_mtime_ns for p in efivars.iterdir()}
    assert bootorder.ensure(2, efivars=efivars, partition=ESP) == []
    assert {p.name: p.stat().st_mtime_ns for p in efivars.iterdir()} == before


def test_a_reordered_boot_order_is_put_right_with_the_same_options(efivars: Path) -> None:
    bootorder.ensure(2, efivars=efivars, partition=ESP)
    put(efivars, "BootOrder", struct.pack("<4H", 1, 0x1001, 2, 0x1000))  # firmware moved them
    bootorder.ensure(2, efivars=efivars, partition=ESP)
    assert order(efivars) == [0x1000, 0x1001, 1, 2]
    assert sorted(bootorder.boot_options(efivars)) == [1, 2, 0x1000, 0x1001]


def test_fewer_options_remove_the_left_over_ones(efivars: Path) -> None:
    bootorder.ensure(3, efivars=efivars, partition=ESP)
    changes = bootorder.ensure(1, efivars=efivars, partition=ESP)
    assert order(efivars) == [0x1000, 1, 2]
    assert sorted(bootorder.boot_options(efivars)) == [1, 2, 0x1000]
    assert "removed Boot1001" in changes and "removed Boot1002" in changes


def test_a_moved_esp_replaces_the_options(efivars: Path) -> None:
    bootorder.ensure(1, efivars=efivars, partition=ESP)
    moved = bootorder.Partition(2, 4096, 262144, uuid.uuid4())
    bootorder.ensure(1, efivars=efivars, partition=moved)
    options = bootorder.boot_options(efivars)
    ours = [n for n in order(efivars) if n >= 0x1000]
    assert len(ours) == 1 and options[ours[0]] == bootorder.load_option(
        "sonix (1)", bootorder.hard_drive_path(moved, bootorder.DEFAULT_LOADER))
    assert sorted(options) == [1, 2, ours[0]]


def test_no_boot_order_yet(tmp_path: Path) -> None:
    bootorder.ensure(1, efivars=tmp_path, partition=ESP)
    assert order(tmp_path) == [0x1000]


def test_not_booted_by_systemd_boot_is_a_clear_error(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(bootorder.BootOrderError, match="LoaderDevicePartUUID is not set"):
        bootorder.esp_partition(efivars=tmp_path)


def test_the_esp_is_found_from_the_loader_variable(tmp_path: Path) -> None:
    efivars, sys_block, dev = tmp_path / "efivars", tmp_path / "block", tmp_path / "dev"
    efivars.mkdir()
    (efivars / f"LoaderDevicePartUUID-{bootorder.LOADER_VENDOR}").write_bytes(
        b"\6\0\0\0" + (str(ESP.uuid).upper() + "\0").encode("utf-16-le"))
    disk = sys_block / "devices/vda"
    (disk / "queue").mkdir(parents=True)
    (disk / "queue/logical_block_size").write_text("512\n")
    (disk / "vda1").mkdir()
    for name, value in (("partition", 1), ("start", 2048), ("size", 262144)):
        (disk / "vda1" / name).write_text(f"{value}\n")
    (sys_block / "vda1").symlink_to(disk / "vda1")
    (dev / "disk/by-partuuid").mkdir(parents=True)
    (dev / "vda1").touch()
    (dev / "disk/by-partuuid" / str(ESP.uuid)).symlink_to(dev / "vda1")
    assert bootorder.esp_partition(sys_block, dev, efivars) == ESP


def test_main_reports_changes_errors_and_usage(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert bootorder.main(["x"]) == 2

    def refuse(count: int, loader: str) -> list[str]:
        raise bootorder.BootOrderError("LoaderDevicePartUUID is not set")

    monkeypatch.setattr(bootorder, "ensure", refuse)
    assert bootorder.main(["1"]) == 1
    assert "cannot set the firmware boot options: LoaderDevicePartUUID" in capsys.readouterr().err
    monkeypatch.setattr(bootorder, "ensure", lambda count, loader: [f"added {count} {loader}"])
    assert bootorder.main(["2", r"\EFI\BOOT\BOOTX64.EFI"]) == 0
    assert capsys.readouterr().out == "added 2 \\EFI\\BOOT\\BOOTX64.EFI\n"


def test_duplicate_options_of_ours_are_removed(efivars: Path) -> None:
    data = bootorder.load_option("sonix (1)", bootorder.hard_drive_path(ESP,
                                                                         bootorder.DEFAULT_LOADER))
    put(efivars, "Boot1000", data)
    put(efivars, "Boot1005", data)
    put(efivars, "BootOrder", struct.pack("<4H", 0x1005, 1, 0x1000, 2))
    bootorder.ensure(1, efivars=efivars, partition=ESP)
    assert order(efivars) == [0x1000, 1, 2]
    assert sorted(bootorder.boot_options(efivars)) == [1, 2, 0x1000]
