"""Reading a unified kernel image (a PE file with .linux, .initrd, .cmdline, .osrel sections).

Standard library only: the update agent on the machine and `sonix release` on the host both
use it, to see whether two releases boot the same kernel and initrd.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import BinaryIO


class NotAUki(ValueError):
    """The file is not a UKI this module can read; the message says what is wrong."""


MAX_SECTIONS = 96  # the PE/COFF limit


def sections(f: BinaryIO) -> dict[str, tuple[int, int]]:
    """Section name → (file offset, size) of a PE image. The size is the section's virtual
    size (what the stub loads), capped at the raw data in the file and at the file's end.
    Anything malformed (a truncated header, a table past the end) is a NotAUki."""
    try:
        return _sections(f)
    except struct.error as e:
        raise NotAUki(f"a malformed PE header ({e})") from None


def _sections(f: BinaryIO) -> dict[str, tuple[int, int]]:
    f.seek(0, 2)
    file_size = f.tell()
    f.seek(0)
    dos = f.read(64)
    if len(dos) < 64 or dos[:2] != b"MZ":
        raise NotAUki("no MZ header")
    (pe_offset,) = struct.unpack_from("<I", dos, 0x3C)
    f.seek(pe_offset)
    header = f.read(24)
    if len(header) < 24 or header[:4] != b"PE\0\0":
        raise NotAUki("no PE header")
    count, optional_size = struct.unpack_from("<H12xH", header, 6)
    if count > MAX_SECTIONS:
        raise NotAUki(f"{count} sections, more than PE allows ({MAX_SECTIONS})")
    f.seek(pe_offset + 24 + optional_size)
    table = f.read(40 * count)
    if len(table) < 40 * count:
        raise NotAUki("the section table ends past the end of the file")
    found = {}
    for i in range(count):
        name_raw, virtual_size, _, raw_size, raw_offset = struct.unpack_from(
            "<8sIIII", table, 40 * i)
        name = name_raw.rstrip(b"\0").decode("ascii", "replace")
        size = min(virtual_size, raw_size) if virtual_size else raw_size
        if raw_offset > file_size:
            raise NotAUki(f"section {name!r} starts past the end of the file")
        found[name] = (raw_offset, min(size, file_size - raw_offset))
    return found


def section_bytes(path: Path, name: str) -> bytes:
    with path.open("rb") as f:
        table = sections(f)
        if name not in table:
            raise NotAUki(f"{path} has no {name} section")
        offset, size = table[name]
        f.seek(offset)
        return f.read(size)


def boot_digests(path: Path) -> dict[str, str]:
    """sha256 of the kernel and the initrd inside a UKI: equal digests mean the same boot."""
    with path.open("rb") as f:
        table = sections(f)
        digests = {}
        for section, key in ((".linux", "linux_sha256"), (".initrd", "initrd_sha256")):
            if section not in table:
                raise NotAUki(f"{path} has no {section} section")
            offset, size = table[section]
            f.seek(offset)
            digests[key] = hashlib.sha256(f.read(size)).hexdigest()
    return digests


def _text(path: Path, name: str) -> str:
    try:
        return section_bytes(path, name).decode()
    except UnicodeDecodeError:
        raise NotAUki(f"the {name} section of {path} is not UTF-8 text") from None


def cmdline(path: Path) -> str:
    return _text(path, ".cmdline").strip("\0\n ")


def os_release(path: Path) -> dict[str, str]:
    fields = {}
    for line in _text(path, ".osrel").splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            fields[key.strip()] = value.strip().strip('"')
    return fields
