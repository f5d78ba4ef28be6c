"""The parts of `sonix keygen --secure-boot` (src/sonix/secureboot.py) that need no tools: the
layout of an authenticated variable, the DER wrapping openssl wants, and the check that Nix's
build users can reach the private keys. The keys themselves are made and checked with the real
tools in tests/integration/test_secure_boot.py."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from sonix import secureboot


def auth(signature: bytes, esl: bytes, timestamp: bytes = b"T" * 16) -> bytes:
    header = struct.pack("<IHH", 24 + len(signature), 0x0200, 0x0EF1)
    return timestamp + header + secureboot.CERT_TYPE_PKCS7.bytes_le + signature + esl


def test_an_auth_file_splits_into_timestamp_signature_and_list() -> None:
    assert secureboot.split_auth(auth(b"sig", b"list")) == (b"T" * 16, b"sig", b"list")


@pytest.mark.parametrize("data", [
    b"short",
    auth(b"sig", b"list")[:16] + struct.pack("<IHH", 27, 0x0100, 0x0EF1) + b"\0" * 16 + b"sig",
    auth(b"sig", b"list").replace(secureboot.CERT_TYPE_PKCS7.bytes_le, b"\0" * 16),
    auth(b"sig", b"")[:16] + struct.pack("<IHH", 9999, 0x0200, 0x0EF1)
    + secureboot.CERT_TYPE_PKCS7.bytes_le,
])
def test_what_is_not_an_auth_file(data: bytes) -> None:
    with pytest.raises(ValueError):
        secureboot.split_auth(data)


@pytest.mark.parametrize("size", [3, 127, 128, 255, 256, 70000])
def test_content_info_lengths(size: int) -> None:
    """DER lengths: short form below 128, long form (0x81, 0x82, 0x83 ...) above."""
    wrapped = secureboot.content_info(b"x" * size)
    assert wrapped[0] == 0x30
    body_length = len(wrapped) - 2 if wrapped[1] < 0x80 else \
        int.from_bytes(wrapped[2:2 + (wrapped[1] & 0x7F)], "big")
    assert wrapped.endswith(b"x" * size)
    assert body_length == 11 + 1 + len(secureboot._der_length(size)) + size
    assert bytes.fromhex("06092a864886f70d010702") in wrapped[:20]


def test_keys_the_build_users_cannot_reach_are_named(tmp_path: Path) -> None:
    if secureboot.build_group() is None:
        pytest.skip("no nixbld group on this host")
    keys = secureboot.KeySet(tmp_path / "keys")
    keys.directory.mkdir()
    for path in keys.files():
        path.write_text("x")
    keys.directory.chmod(0o700)
    for path in keys.private_files():
        path.chmod(0o600)
    os.chmod(tmp_path, 0o700)
    problems = secureboot.readable_by_builds(keys)
    assert f"{keys.directory} is not searchable by the group nixbld" in problems
    assert f"{keys.key('db')} is not readable by the group nixbld" in problems
    assert f"{tmp_path} is not searchable by others (o+x)" in problems
