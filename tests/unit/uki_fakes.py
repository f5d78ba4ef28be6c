"""A fake unified kernel image for unit tests of the channel and the update agent."""

from __future__ import annotations

import struct
from pathlib import Path


def fake_uki(path: Path, cmdline: str, linux: bytes = b"kernel", initrd: bytes = b"initrd"
             ) -> None:
    """A PE file with .linux, .initrd and .cmdline sections (what agents/uki.py reads)."""
    sections = [(b".linux", linux), (b".initrd", initrd), (b".cmdline", cmdline.encode())]
    pe_offset = 64
    table_at = pe_offset + 24
    data_at = table_at + 40 * len(sections)
    head = bytearray(b"MZ" + bytes(62))
    struct.pack_into("<I", head, 0x3C, pe_offset)
    head += b"PE\0\0" + struct.pack("<HH12xHH", 0x8664, len(sections), 0, 0)
    body = b""
    for name, data in sections:
        head += struct.pack("<8sIIII16x", name, len(data), 0, len(data), data_at + len(body))
        body += data
    path.write_bytes(bytes(head) + body)
