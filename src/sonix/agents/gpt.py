"""Reading and changing GPT partition entries (UUID and name) in place, standard library only.

The update agent gives the inactive usr slot the partition UUIDs that the new release's
`usrhash=` names (the initrd finds /usr and its hash tree by them) and a label with the
version. Only the entry's unique GUID and name change; both copies of the table (primary after
LBA 1, backup before the last LBA) and both headers get new CRC32s, and the writes are
flushed before returning.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

SECTOR = 512
TYPE_USR = uuid.UUID("8484680c-9521-48c6-9c11-b0720656f69e")  # usr, x86-64
TYPE_USR_VERITY = uuid.UUID("77ff5f63-e7b6-4633-acf4-1565b864c0e6")  # usr-verity, x86-64
TYPE_ESP = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
HEADER = struct.Struct("<8sIII4xQQQQ16sQIII")  # 92 bytes, up to the entries' CRC32
ENTRY = struct.Struct("<16s16sQQQ72s")  # 128 bytes


class GptError(ValueError):
    pass


@dataclass(frozen=True)
class Partition:
    number: int  # 1-based, as /dev/vdaN
    type: uuid.UUID
    uuid: uuid.UUID
    first_lba: int
    last_lba: int
    attributes: int
    name: str

    @property
    def offset(self) -> int:
        return self.first_lba * SECTOR

    @property
    def size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * SECTOR


@dataclass(frozen=True)
class _Header:
    lba: int
    raw: bytes
    backup_lba: int
    entries_lba: int
    count: int
    entry_size: int


def _read_header(fd: int, lba: int) -> _Header:
    raw = os.pread(fd, SECTOR, lba * SECTOR)
    (signature, _rev, size, crc, current, backup, _first, _last, _guid, entries_lba, count,
     entry_size, _entries_crc) = HEADER.unpack_from(raw)
    if signature != b"EFI PART":
        raise GptError(f"no GPT header at LBA {lba}")
    check = bytearray(raw[:size])
    check[16:20] = b"\0\0\0\0"
    if zlib.crc32(check) != crc:
        raise GptError(f"GPT header at LBA {lba} has a bad CRC32")
    if entry_size != ENTRY.size or current != lba:
        raise GptError(f"unsupported GPT header at LBA {lba}")
    return _Header(lba, raw[:size], backup, entries_lba, count, entry_size)


def _decode(number: int, raw: bytes) -> Partition:
    type_le, uuid_le, first, last, attrs, name = ENTRY.unpack(raw)
    return Partition(
        number, uuid.UUID(bytes_le=type_le), uuid.UUID(bytes_le=uuid_le), first, last, attrs,
        name.decode("utf-16-le").rstrip("\0"),
    )


def _encode(p: Partition) -> bytes:
    name = p.name.encode("utf-16-le")
    if len(name) > 72:
        raise GptError(f"partition name {p.name!r} is longer than 36 characters")
    return ENTRY.pack(p.type.bytes_le, p.uuid.bytes_le, p.first_lba, p.last_lba, p.attributes,
                      name.ljust(72, b"\0"))


def read(disk: Path) -> list[Partition]:
    """The used entries of the primary table (checked against its CRC32)."""
    fd = os.open(disk, os.O_RDONLY)
    try:
        header = _read_header(fd, 1)
        table = os.pread(fd, header.count * header.entry_size, header.entries_lba * SECTOR)
    finally:
        os.close(fd)
    (entries_crc,) = struct.unpack_from("<I", header.raw, 88)
    if zlib.crc32(table) != entries_crc:
        raise GptError("the GPT partition entries have a bad CRC32")
    partitions = []
    for i in range(header.count):
        raw = table[i * ENTRY.size:(i + 1) * ENTRY.size]
        if raw[:16] != bytes(16):
            partitions.append(_decode(i + 1, raw))
    return partitions


def update(disk: Path, changes: dict[int, tuple[uuid.UUID, str]]) -> None:
    """Give partition numbers new (unique GUID, name), in both tables, with fresh CRC32s."""
    fd = os.open(disk, os.O_RDWR)
    try:
        primary = _read_header(fd, 1)
        for header in (primary, _read_header(fd, primary.backup_lba)):
            table = bytearray(os.pread(fd, header.count * ENTRY.size, header.entries_lba * SECTOR))
            for number, (new_uuid, name) in changes.items():
                at = (number - 1) * ENTRY.size
                old = _decode(number, bytes(table[at:at + ENTRY.size]))
                if old.type == uuid.UUID(int=0):
                    raise GptError(f"partition {number} does not exist")
                table[at:at + ENTRY.size] = _encode(replace(old, uuid=new_uuid, name=name))
            raw = bytearray(header.raw)
            struct.pack_into("<I", raw, 88, zlib.crc32(table))
            raw[16:20] = b"\0\0\0\0"
            struct.pack_into("<I", raw, 16, zlib.crc32(raw))
            os.pwrite(fd, bytes(table), header.entries_lba * SECTOR)
            os.pwrite(fd, bytes(raw), header.lba * SECTOR)
        os.fsync(fd)
    finally:
        os.close(fd)
