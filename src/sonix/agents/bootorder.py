"""Firmware boot options that lead back to systemd-boot (standard library; runs on the machine).

With Secure Boot the firmware refuses a UKI whose signature does not verify. systemd-boot
(257) then gives the error back to the firmware, which starts its next boot option, and after
the last one waits at its boot menu for a key: a machine nobody can reach. systemd-boot has
already used one try of the refused entry, so what brings the machine back is simply to start
systemd-boot again, once per try: after the last try the refused entry sorts last and the
previous release boots.

`ensure(count)` makes the first `count` entries of `BootOrder` options of their own ("sonix
(1)", "sonix (2)", …) that start systemd-boot from the ESP this boot came from (systemd-boot's
`LoaderDevicePartUUID`), and leaves the rest of the order as it was. Nothing is written when the
order already starts that way, so a normal boot costs no NVRAM write.

`python3 bootorder.py COUNT [LOADER]` is what `sonix-boot-options.service` runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import struct
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

EFIVARS = Path("/sys/firmware/efi/efivars")
EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
LOADER_VENDOR = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
DEFAULT_LOADER = r"\EFI\systemd\systemd-bootx64.efi"
# EFI_VARIABLE_NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS
ATTRIBUTES = 0x7
LOAD_OPTION_ACTIVE = 0x1
# linux/fs.h: efivarfs marks every variable immutable; the flag goes before a rewrite.
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x10
BOOT_OPTION = re.compile(r"^Boot([0-9A-F]{4})-" + EFI_GLOBAL + "$")


class BootOrderError(Exception):
    pass


@dataclass(frozen=True)
class Partition:
    number: int
    start: int  # in logical blocks of the disk
    size: int
    uuid: uuid.UUID


def description(index: int) -> str:
    return f"sonix ({index})"


def hard_drive_path(partition: Partition, loader: str) -> bytes:
    """A short-form device path (UEFI 2.10, 10.3.4.1 and 10.3.4.4): HD(number, GPT, UUID,
    start, size)/File(loader)/End. The firmware finds the disk by the partition's UUID."""
    hard_drive = struct.pack("<BBHIQQ16sBB", 0x04, 0x01, 42, partition.number, partition.start,
                             partition.size, partition.uuid.bytes_le, 0x02, 0x02)
    name = (loader + "\0").encode("utf-16-le")
    file = struct.pack("<BBH", 0x04, 0x04, 4 + len(name)) + name
    end = bytes((0x7F, 0xFF, 0x04, 0x00))
    return hard_drive + file + end


def load_option(text: str, path: bytes) -> bytes:
    """EFI_LOAD_OPTION: attributes, the device path's length, the description, the path."""
    return (struct.pack("<IH", LOAD_OPTION_ACTIVE, len(path)) + (text + "\0").encode("utf-16-le")
            + path)


def variable(name: str, vendor: str = EFI_GLOBAL, efivars: Path = EFIVARS) -> bytes | None:
    """A variable's data (without its 4 attribute bytes), or None when it does not exist."""
    try:
        return (efivars / f"{name}-{vendor}").read_bytes()[4:]
    except FileNotFoundError:
        return None


def _mutable(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        flags = bytearray(struct.pack("i", 0))
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags)
        value = struct.unpack("i", flags)[0]
        if value & FS_IMMUTABLE_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", value & ~FS_IMMUTABLE_FL))
    except OSError as e:
        if e.errno not in (errno.ENOTTY, errno.EOPNOTSUPP):  # a file system without flags
            raise
    finally:
        os.close(fd)


def write_variable(name: str, data: bytes, efivars: Path = EFIVARS) -> None:
    """Attributes and data in one write, as efivarfs wants them."""
    path = efivars / f"{name}-{EFI_GLOBAL}"
    if path.exists():
        _mutable(path)
    payload = struct.pack("<I", ATTRIBUTES) + data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, payload)
        # efivarfs sets the variable to what one write() gave it; a plain file (the unit
        # tests' stand-in) is cut to it here (efivarfs may refuse that: nothing to cut).
        with contextlib.suppress(OSError):
            os.ftruncate(fd, len(payload))
    finally:
        os.close(fd)


def delete_variable(name: str, efivars: Path = EFIVARS) -> None:
    path = efivars / f"{name}-{EFI_GLOBAL}"
    _mutable(path)
    path.unlink()


def esp_partition(sys_block: Path = Path("/sys/class/block"), dev: Path = Path("/dev"),
                  efivars: Path = EFIVARS) -> Partition:
    """The partition systemd-boot was started from, as the firmware addresses it."""
    raw = variable("LoaderDevicePartUUID", LOADER_VENDOR, efivars)
    if raw is None:
        raise BootOrderError("LoaderDevicePartUUID is not set: not booted by systemd-boot")
    part_uuid = uuid.UUID(raw.decode("utf-16-le").rstrip("\0"))
    link = dev / "disk/by-partuuid" / str(part_uuid)
    try:
        name = link.resolve(strict=True).name
    except OSError as e:
        raise BootOrderError(f"the ESP {link} is not there: {e.strerror}") from None
    block = sys_block / name
    disk = block.resolve().parent
    sector = 512  # sysfs counts start and size in 512-byte sectors
    logical = int((disk / "queue/logical_block_size").read_text())
    return Partition(
        number=int((block / "partition").read_text()),
        start=int((block / "start").read_text()) * sector // logical,
        size=int((block / "size").read_text()) * sector // logical,
        uuid=part_uuid,
    )


def boot_options(efivars: Path = EFIVARS) -> dict[int, bytes]:
    options = {}
    for path in efivars.iterdir():
        match = BOOT_OPTION.match(path.name)
        if match:
            options[int(match[1], 16)] = path.read_bytes()[4:]
    return options


def ensure(count: int, loader: str = DEFAULT_LOADER, efivars: Path = EFIVARS,
           partition: Partition | None = None) -> list[str]:
    """Make BootOrder start with `count` options that start `loader` on the ESP; returns what
    changed (empty: nothing was written)."""
    partition = partition or esp_partition(efivars=efivars)
    path = hard_drive_path(partition, loader)
    wanted = [load_option(description(i + 1), path) for i in range(count)]
    options = boot_options(efivars)
    raw_order = variable("BootOrder", efivars=efivars) or b""
    order = list(struct.unpack(f"<{len(raw_order) // 2}H", raw_order[: len(raw_order) // 2 * 2]))
    prefix = "sonix (".encode("utf-16-le")
    ours = {number: data for number, data in options.items() if data[6:].startswith(prefix)}
    if [options.get(n) for n in order[:count]] == wanted and len(ours) == count:
        return []
    changes: list[str] = []
    numbers: list[int] = []
    for data in wanted:
        number = next((n for n, d in sorted(ours.items()) if d == data and n not in numbers),
                      None)
        if number is None:
            number = next(n for n in range(0x1000, 0x10000) if n not in options)
            write_variable(f"Boot{number:04X}", data, efivars)
            options[number] = data
            changes.append(f"added Boot{number:04X} {description(len(numbers) + 1)}")
        numbers.append(number)
    left_over = [n for n in sorted(ours) if n not in numbers]  # a smaller count, another ESP
    for number in left_over:
        delete_variable(f"Boot{number:04X}", efivars)
        changes.append(f"removed Boot{number:04X}")
    rest = [n for n in order if n not in numbers and n not in left_over]
    new_order = numbers + rest
    write_variable("BootOrder", struct.pack(f"<{len(new_order)}H", *new_order), efivars)
    changes.append("BootOrder " + ",".join(f"{n:04X}" for n in new_order))
    return changes


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or not argv[0].isdigit():
        print("usage: bootorder.py COUNT [LOADER]", file=sys.stderr)
        return 2
    try:
        changes = ensure(int(argv[0]), argv[1] if len(argv) > 1 else DEFAULT_LOADER)
    except (BootOrderError, OSError, ValueError) as e:
        reason = os.strerror(e.errno) if isinstance(e, OSError) and e.errno else str(e)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            reason += " (the firmware's variable store is full)"
        print(f"cannot set the firmware boot options: {reason}", file=sys.stderr)
        return 1
    for change in changes:
        print(change)
    if not changes:
        print(f"BootOrder starts with {argv[0]} sonix boot option(s) already")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
