"""sonix release on small fake images: manifest fields, trimming, SHA256SUMS, keep, refusals,
and the channel server's byte ranges. gpg is replaced by a fake signer (its argv is checked at
the run chokepoint); tests/integration/test_release_channel.py signs for real."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import struct
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from uki_fakes import fake_uki

from sonix import process, ui
from sonix.agents.versions import compare_versions
from sonix.commands.serve import parse_listen
from sonix.release import channel, serve, signing

MiB = 1 << 20
USR_OFFSET, USR_SLOT = 1 * MiB, 4 * MiB
VERITY_OFFSET, VERITY_SLOT = 5 * MiB, 1 * MiB


# ---- fakes ---------------------------------------------------------------------------------


def fake_image(tmp: Path, *, version: str = "2", fill: int = 1, usr_blocks: int = 3,
               verity_bytes: int = 4096 + 10, stray: int | None = None,
               ) -> tuple[dict[str, Any], Path, Path]:
    """(build manifest, disk, UKI): a sparse disk with an erofs superblock and `usr_blocks`
    4 KiB blocks in the usr slot, `verity_bytes` of non-zero hash data in the verity slot."""
    usrhash = hashlib.sha256(f"{version}-{fill}".encode()).hexdigest()
    disk = tmp / f"disk-{version}-{fill}.raw"
    with disk.open("wb") as f:
        f.truncate(VERITY_OFFSET + VERITY_SLOT + MiB)
        usr = bytearray([fill]) * (usr_blocks * 4096)
        usr[1024:1088] = bytes(64)
        struct.pack_into("<IIIB", usr, 1024, channel.EROFS_MAGIC, 0, 0, 12)
        struct.pack_into("<I", usr, 1024 + 36, usr_blocks)
        f.seek(USR_OFFSET)
        f.write(usr)
        f.seek(VERITY_OFFSET)
        f.write(b"verity\0\0" + bytes([fill]) * (verity_bytes - 8))
        if stray is not None:
            f.seek(USR_OFFSET + stray)
            f.write(b"\x01")
    uki = tmp / f"sonix_{version}-{fill}.efi"
    cmdline = f"rw console=ttyS0 usrhash={usrhash}"
    fake_uki(uki, cmdline, linux=b"kernel-" + bytes([fill]))
    partitions = [
        {"type": "esp", "uuid": str(uuid.uuid4()), "label": "ESP", "offset": 4096,
         "raw_size": 4096},
        {"type": "usr-x86-64", "uuid": str(uuid.UUID(usrhash[:32])), "label": f"sonix_{version}",
         "offset": USR_OFFSET, "raw_size": USR_SLOT},
        {"type": "usr-x86-64-verity", "uuid": str(uuid.UUID(usrhash[32:])),
         "label": f"sonix_{version}_verity", "offset": VERITY_OFFSET, "raw_size": VERITY_SLOT},
    ]
    manifest = {"name": "sonix", "version": version, "usrhash": usrhash, "cmdline": cmdline,
                "kernel": "6.12-test", "uki": uki.name, "partitions": partitions}
    return manifest, disk, uki


class FakeSigner:
    """Writes `signed:<sha256 of the data>` (detached) or `<data>--signed:<sha256>` (clear);
    records what the channel held at signing time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.calls: list[tuple[bytes, set[str]]] = []

    def detached(self, data: Path, signature: Path) -> None:
        content = data.read_bytes()
        visible = {p.name for p in self.directory.iterdir() if not p.name.startswith(".")}
        self.calls.append((content, visible))
        signature.write_bytes(b"signed:" + hashlib.sha256(content).hexdigest().encode())

    def clear(self, data: Path, signed: Path) -> None:
        content = data.read_bytes()
        signed.write_bytes(content + b"--signed:" + hashlib.sha256(content).hexdigest().encode())


def sums_lines(text: str) -> list[str]:
    """The file lines of SHA256SUMS (without the serial and expiry)."""
    return [line for line in text.splitlines() if not line.startswith("#")]


def release(tmp: Path, directory: Path, keep: int = 3, **image: Any) -> channel.Published:
    manifest, disk, uki = fake_image(tmp, **image)
    built = channel.image_from_build(manifest, disk, uki)
    directory.mkdir(exist_ok=True)
    with channel.locked(directory):
        staged = channel.stage(built, directory,
                               created=datetime.datetime(2026, 11, 24, 12, tzinfo=datetime.UTC))
        try:
            return channel.publish(directory, staged, keep, FakeSigner(directory))
        finally:
            staged.discard()


def listing(directory: Path) -> list[str]:
    """Every file under directory (the chunk store's too), relative to it."""
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                  if p.is_file())


def release_files(directory: Path) -> list[str]:
    """The files of a channel outside its chunk store."""
    return [name for name in listing(directory) if not name.startswith("chunks/")]


# ---- versions ------------------------------------------------------------------------------

# Checked against `systemd-analyze compare-versions` of systemd 257 (the tools tree).
SYSTEMD_ORDER = [
    ("1", "2", -1), ("1.9", "1.10", -1), ("1.0", "1.00", 0), ("01", "1", 0), ("1", "1.0", -1),
    ("1.0", "1.a", 1), ("0", "a", 1), ("1a", "1.a", 1), ("123a", "123", 1),
    ("123.a", "123.b", -1), ("A", "a", -1), ("", "0", -1), ("0.", "0", 1),
    ("1~rc1", "1", -1), ("1~rc1", "1~rc2", -1), ("1~", "1", -1), ("", "~", 1),
    ("1-1", "1.1", -1), ("1.0-1", "1.0.1", -1), ("1^", "1", 1), ("1^", "1.0", -1),
    ("1^", "1a", -1), ("1+", "1", 0), ("1_2", "1.2", 1), ("1_2_3", "1.3.3", 1),
    ("bar-123", "foo-123", -1), ("2026.11.24.1", "2026.11.24.10", -1),
    ("2026.11.24.9", "2026.11.25", -1), ("1.0.0~rc1", "5.2", -1), ("abc-5", "1.0.0~rc1", -1),
    ("0a", "a", 1), ("1.01", "1.1", 0),
]


@pytest.mark.parametrize(("a", "b", "order"), SYSTEMD_ORDER)
def test_versions_compare_like_systemd(a: str, b: str, order: int) -> None:
    assert compare_versions(a, b) == order
    assert compare_versions(b, a) == -order


# ---- reading the image ---------------------------------------------------------------------


def test_image_partitions_are_found_by_the_halves_of_usrhash(tmp_path: Path) -> None:
    manifest, disk, uki = fake_image(tmp_path)
    image = channel.image_from_build(manifest, disk, uki)
    assert image.usr == channel.Slot(USR_OFFSET, USR_SLOT, str(uuid.UUID(manifest["usrhash"][:32])),
                                     "sonix_2")
    assert image.verity.uuid == str(uuid.UUID(manifest["usrhash"][32:]))
    assert image.verity.label == "sonix_2_verity"


def test_image_with_partition_uuids_not_from_usrhash_is_refused(tmp_path: Path) -> None:
    manifest, disk, uki = fake_image(tmp_path)
    manifest["partitions"][1]["uuid"] = str(uuid.uuid4())
    with pytest.raises(ui.SonixError, match="no usr-x86-64 partition with UUID"):
        channel.image_from_build(manifest, disk, uki)


def test_uki_without_the_usrhash_is_refused(tmp_path: Path) -> None:
    manifest, disk, uki = fake_image(tmp_path)
    fake_uki(uki, "rw usrhash=" + "0" * 64)
    with pytest.raises(ui.SonixError, match="does not boot usrhash="):
        channel.image_from_build(manifest, disk, uki)


@pytest.mark.parametrize("version", ["1~rc1", "2^1", "1 2", ""])
def test_versions_outside_the_channel_charset_are_refused(tmp_path: Path, version: str) -> None:
    manifest, disk, uki = fake_image(tmp_path)
    manifest["version"] = version
    with pytest.raises(ui.SonixError, match="cannot name channel files"):
        channel.image_from_build(manifest, disk, uki)


# ---- one release ---------------------------------------------------------------------------


def test_release_files_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    published = release(tmp_path, out)
    assert published.new
    assert release_files(out) == ["SHA256SUMS", "SHA256SUMS.gpg", "SHA256SUMS.signed",
                                  "sonix_2.chunks", "sonix_2.efi", "sonix_2.json", "sonix_2.usr",
                                  "sonix_2.verity"]
    assert [name for name in listing(out) if name.startswith("chunks/")]
    manifest = json.loads((out / "sonix_2.json").read_text())
    build, _, uki = fake_image(tmp_path)  # the same bytes again
    usrhash = build["usrhash"]

    def entry(name: str) -> dict[str, Any]:
        data = (out / name).read_bytes()
        return {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    assert manifest == {
        "format": 1,
        "name": "sonix",
        "version": "2",
        "usrhash": usrhash,
        "kernel": "6.12-test",
        "cmdline": f"rw console=ttyS0 usrhash={usrhash}",
        "created": "2026-11-24T12:00:00Z",
        "files": {
            "uki": entry("sonix_2.efi"),
            "usr": {**entry("sonix_2.usr"), "slot_size": USR_SLOT,
                    "partition_uuid": str(uuid.UUID(usrhash[:32])), "label": "sonix_2"},
            "verity": {**entry("sonix_2.verity"), "slot_size": VERITY_SLOT,
                       "partition_uuid": str(uuid.UUID(usrhash[32:])),
                       "label": "sonix_2_verity"},
        },
        "boot": {"linux_sha256": hashlib.sha256(b"kernel-\x01").hexdigest(),
                 "initrd_sha256": hashlib.sha256(b"initrd").hexdigest()},
    }
    assert (out / "sonix_2.efi").read_bytes() == uki.read_bytes()
    assert all(os.stat(out / name).st_mode & 0o777 == 0o644 for name in listing(out))


def test_usr_is_the_erofs_file_system_and_verity_ends_at_its_last_used_block(
    tmp_path: Path,
) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out, usr_blocks=5, verity_bytes=2 * 4096 + 1)
    _, disk, _ = fake_image(tmp_path, usr_blocks=5, verity_bytes=2 * 4096 + 1)
    with disk.open("rb") as f:
        f.seek(USR_OFFSET)
        assert (out / "sonix_2.usr").read_bytes() == f.read(5 * 4096)
        f.seek(VERITY_OFFSET)
        assert (out / "sonix_2.verity").read_bytes() == f.read(3 * 4096)  # rounded up


def test_a_usr_slot_with_data_after_the_file_system_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ui.SonixError, match=r"not empty after its erofs file system .* at 20000"):
        release(tmp_path, tmp_path / "channel", stray=20000)
    assert not any((tmp_path / "channel").iterdir())  # nothing staged is left behind


def test_a_usr_slot_without_erofs_is_refused(tmp_path: Path) -> None:
    manifest, disk, uki = fake_image(tmp_path)
    with disk.open("r+b") as f:
        f.seek(USR_OFFSET + 1024)
        f.write(bytes(4))
    with pytest.raises(ui.SonixError, match="does not start with an erofs"):
        channel.stage(channel.image_from_build(manifest, disk, uki), tmp_path)


def test_sha256sums_format_and_signature(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out)
    text = (out / "SHA256SUMS").read_text()
    lines = sums_lines(text)
    assert [line.split("  ")[1] for line in lines] == [
        "sonix_2.chunks", "sonix_2.efi", "sonix_2.json", "sonix_2.usr", "sonix_2.verity"]
    for line in lines:
        digest, name = line.split("  ")
        assert digest == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert text.endswith("\n")
    assert channel.parse_sums(text) == {line.split("  ")[1]: line.split("  ")[0]
                                        for line in lines}
    signature = (out / "SHA256SUMS.gpg").read_bytes()
    assert signature == b"signed:" + hashlib.sha256(text.encode()).hexdigest().encode()
    assert (out / "SHA256SUMS.signed").read_bytes().startswith(text.encode() + b"--signed:")


# ---- several releases ----------------------------------------------------------------------


def test_keep_drops_the_oldest_after_the_new_sums_are_signed(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    for version in ("1.8", "1.9"):
        release(tmp_path, out, version=version)
    manifest, disk, uki = fake_image(tmp_path, version="1.10")
    signer = FakeSigner(out)
    with channel.locked(out):
        staged = channel.stage(channel.image_from_build(manifest, disk, uki), out)
        published = channel.publish(out, staged, 2, signer)
    assert [r.version for r in published.dropped] == ["1.8"]
    assert sorted(r.version for r in published.kept) == ["1.10", "1.9"]
    sums = channel.parse_sums((out / "SHA256SUMS").read_text())
    assert sorted(sums) == sorted(f"sonix_{v}.{s}" for v in ("1.9", "1.10")
                                  for s in ("chunks", "efi", "json", "usr", "verity"))
    assert not [name for name in listing(out) if name.startswith("sonix_1.8.")]
    # While signing, the old release was still there and the new one not yet visible.
    (signed, visible), = signer.calls
    assert "sonix_1.8.usr" in visible and "sonix_1.10.usr" not in visible
    assert b"sonix_1.8" not in signed


def test_default_keep_is_three(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    for version in ("1", "2", "3", "4"):
        release(tmp_path, out, version=version)
    versions = {json.loads(p.read_text())["version"] for p in out.glob("*.json")}
    assert versions == {"2", "3", "4"}


def test_keep_leaves_other_images_alone(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out, version="1")
    other = json.loads((out / "sonix_1.json").read_text())
    for suffix in ("efi", "usr", "verity", "json"):
        os.rename(out / f"sonix_1.{suffix}", out / f"web_1.{suffix}")
    other["name"] = "web"
    for role, suffix in channel.SUFFIXES.items():
        other["files"][role]["name"] = f"web_1.{suffix}"
    (out / "web_1.json").write_text(json.dumps(other))
    release(tmp_path, out, version="2", keep=1)
    release(tmp_path, out, version="3", keep=1)
    assert "web_1.usr" in channel.parse_sums((out / "SHA256SUMS").read_text())
    assert sorted(p.name for p in out.glob("*.json")) == ["sonix_3.json", "web_1.json"]


def test_the_same_release_again_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out)
    before = {name: (out / name).read_bytes() for name in listing(out)}
    manifest, disk, uki = fake_image(tmp_path)
    with channel.locked(out):
        staged = channel.stage(channel.image_from_build(manifest, disk, uki), out)  # now
        published = channel.publish(out, staged, 3, FakeSigner(out))
    assert not published.new
    # The releases' files are untouched; the index is signed again with a new serial.
    after = {name: (out / name).read_bytes() for name in listing(out)}
    assert {n: d for n, d in after.items() if not n.startswith("SHA256SUMS")} == {
        n: d for n, d in before.items() if not n.startswith("SHA256SUMS")}
    assert sums_lines(after["SHA256SUMS"].decode()) == sums_lines(before["SHA256SUMS"].decode())


def test_a_published_version_never_changes(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out)
    before = {name: (out / name).read_bytes() for name in listing(out)}
    with pytest.raises(ui.SonixError, match=r"already published .* with different content") as e:
        release(tmp_path, out, fill=2)
    assert e.value.hint is not None and "bump image.version" in e.value.hint
    assert {name: (out / name).read_bytes() for name in listing(out)} == before


def test_an_older_version_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out, version="1.10")
    with pytest.raises(ui.SonixError, match=r"1\.9 is not newer than 1\.10"):
        release(tmp_path, out, version="1.9")
    assert not (out / "sonix_1.9.json").exists()


def test_a_file_changed_in_the_channel_is_never_signed(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out, version="1")
    with (out / "sonix_1.verity").open("r+b") as f:
        f.write(b"X")
    before = (out / "SHA256SUMS").read_bytes()
    with pytest.raises(ui.SonixError, match=r"sonix_1\.verity does not match its manifest"):
        release(tmp_path, out, version="2")
    assert (out / "SHA256SUMS").read_bytes() == before
    assert not (out / "sonix_2.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_signing_failure_leaves_the_channel_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out, version="1")
    before = {name: (out / name).read_bytes() for name in listing(out)}
    manifest, disk, uki = fake_image(tmp_path, version="2")

    class Failing(FakeSigner):
        def clear(self, data: Path, signed: Path) -> None:
            raise ui.SonixError("gpg failed")

    failing = Failing(out)

    with channel.locked(out), pytest.raises(ui.SonixError, match="gpg failed"):
        staged = channel.stage(channel.image_from_build(manifest, disk, uki), out)
        try:
            channel.publish(out, staged, 3, failing)
        finally:
            staged.discard()
    assert {name: (out / name).read_bytes() for name in listing(out)} == before


def test_one_writer_at_a_time_and_leftovers_are_cleared(tmp_path: Path) -> None:
    (tmp_path / ".sonix-sonix_1.usr.abc.tmp").write_text("interrupted")
    (tmp_path / "index.html").write_text("kept")
    with channel.locked(tmp_path):
        assert listing(tmp_path) == ["index.html"]
        with pytest.raises(ui.SonixError, match="another sonix release"), \
                channel.locked(tmp_path):
            pass


def test_keep_must_be_positive() -> None:
    with pytest.raises(ui.SonixError, match="at least 1"):
        channel.select([], "sonix", 0)


# ---- gpg argv (the run chokepoint) ---------------------------------------------------------


def test_signing_runs_gpg_and_gpgv_in_the_tools_tree(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def run(argv: Sequence[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append([str(a) for a in argv])
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    monkeypatch.setattr(signing, "tools_runner", lambda: Path("/run-in-tools"))
    monkeypatch.setattr(process, "run", run)
    key = signing.Key(tmp_path / "keys", ("F" * 40,))
    signing.sign(key, tmp_path / "ch" / "SUMS", tmp_path / "ch" / "SUMS.gpg")
    home, ch = str(tmp_path / "keys"), str(tmp_path / "ch")
    assert calls[0] == [
        "/run-in-tools", "--rw", home, "--rw", ch, "--", "sh", "-c", signing.SESSION, "sh", home,
        "gpg", "--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback",
        "--yes", "--detach-sign", "--output", f"{ch}/SUMS.gpg", f"{ch}/SUMS",
    ]
    assert calls[1] == [
        "/run-in-tools", "--ro", home, "--ro", ch, "--",
        "gpgv", "--keyring", f"{home}/trusted.gpg", f"{ch}/SUMS.gpg", f"{ch}/SUMS",
    ]


# ---- serving -------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-9", (0, 10)), ("bytes=10-", (10, 100)), ("bytes=-5", (95, 100)),
    ("bytes=90-200", (90, 100)), ("bytes=-500", (0, 100)), ("bytes=5-4", None),
    ("bytes=0-1,5-6", None), ("items=0-1", None), ("bytes=-", None),
])
def test_range_headers(header: str, expected: tuple[int, int] | None) -> None:
    assert serve.parse_range(header, 100) == expected


HUGE = "9" * 5000  # int() refuses more than 4300 digits


@pytest.mark.parametrize(("header", "expected"), [
    (f"bytes=0-{HUGE}", (0, 100)), (f"bytes=-{HUGE}", (0, 100)), (f"bytes=1{HUGE}-{HUGE}", None),
    ("bytes=" + "0" * 5000 + "1-2", (1, 3)), ("BYTES = 1 - 2", (1, 3)), ("bytes=\u0663-", None),
    ("bytes=99-" + "0" * 5000 + "100", (99, 100)),
])
def test_range_numbers_of_any_length(header: str, expected: tuple[int, int] | None) -> None:
    assert serve.parse_range(header, 100) == expected


@pytest.mark.parametrize(("target", "expected"), [
    ("/a/b", ["a", "b"]), ("//a//b?x#y", ["a", "b"]), ("/a%20b", ["a b"]),
    ("http://h/a", ["a"]), ("/caf%E9", ["caf\udce9"]), ("/", None), ("/a/", None),
    ("a", None), ("*", None), ("/.a", None), ("/a/.b/c", None), ("/%2e%2E/x", None),
    ("/a%2f..%2fb", None), ("/a%00", None), ("/a\\b", None), ("/a%5cb", None),
])
def test_request_parts(target: str, expected: list[str] | None) -> None:
    assert serve.request_parts(target) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0", f"bytes={HUGE}-",
                                    f"bytes={HUGE}-{HUGE}", f"bytes={HUGE}-1{HUGE}"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(serve.Unsatisfiable):
        serve.parse_range(header, 100)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "sonix_2.usr").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "SHA256SUMS").write_text("x\n")
    (tmp_path / ".sonix-SHA256SUMS.x.tmp").write_text("in progress")
    (tmp_path / "sub").mkdir()
    server = serve.make_server(tmp_path, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield serve.server_url(server)
    finally:
        server.shutdown()
        server.server_close()


def fetch(url: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_server_ranges_and_lengths(served: str) -> None:
    data = bytes(range(256)) * 40
    status, headers, body = fetch(served + "sonix_2.usr")
    assert (status, headers["Content-Length"], body) == (200, str(len(data)), data)
    assert headers["Accept-Ranges"] == "bytes"
    status, headers, body = fetch(served + "sonix_2.usr", Range="bytes=100-199")
    assert (status, body) == (206, data[100:200])
    assert headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert headers["Content-Length"] == "100"
    status, headers, body = fetch(served + "sonix_2.usr", Range="bytes=20000-")
    assert (status, headers["Content-Range"], body) == (416, f"bytes */{len(data)}", b"")
    etag = fetch(served + "sonix_2.usr", "HEAD")[1]["ETag"]
    assert fetch(served + "sonix_2.usr", Range="bytes=-3", **{"If-Range": etag})[2] == data[-3:]
    assert fetch(served + "sonix_2.usr", Range="bytes=-3", **{"If-Range": '"old"'})[0] == 200
    status, headers, body = fetch(served + "sonix_2.usr", "HEAD")
    assert (status, headers["Content-Length"], body) == (200, str(len(data)), b"")
    assert fetch(served + "SHA256SUMS")[1]["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("path", ["", "sub/", ".sonix-SHA256SUMS.x.tmp", "../etc/passwd",
                                  "%2e%2e/x", "missing"])
def test_server_has_no_listings_hidden_files_or_escapes(served: str, path: str) -> None:
    assert fetch(served + path)[0] == 404


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert parse_listen("[::1]:0") == ("::1", 0)
    with pytest.raises(Exception, match="HOST:PORT"):
        parse_listen("8000")
