"""sonix release of a real image (the VM tests' minimal-test build, shared per session), checked
the way a machine checks a channel: gpgv first, then every file's sha256; the release files
rebuild slots that dm-verity accepts; `sonix serve` resumes downloads with byte ranges."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sonix import cli, process
from sonix.agents import records, uki, update
from sonix.build import BuildResult
from sonix.release import channel, release_build, signing, verify_channel

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests/vm/configs/minimal-test.nix"


@dataclass(frozen=True)
class Published:
    build: BuildResult
    key: signing.Key
    directory: Path

    @property
    def manifest(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.release_file("json").read_text())
        return data

    def release_file(self, suffix: str) -> Path:
        name, version = self.build.manifest["name"], self.build.manifest["version"]
        return self.directory / f"{name}_{version}.{suffix}"


@pytest.fixture(scope="module")
def published(build_config: Callable[[Path], BuildResult],
              tmp_path_factory: pytest.TempPathFactory) -> Published:
    result = build_config(CONFIG)
    tmp = tmp_path_factory.mktemp("release")
    key = signing.ensure_key(tmp / "keys")
    release_build(result, tmp / "channel", key)
    return Published(result, key, tmp / "channel")


def shadow(published: Published, tmp: Path, tampered: str, change: Callable[[bytes], bytes]
           ) -> Path:
    """A copy of the channel (symlinks) in which one file's bytes are changed."""
    copy = tmp / "shadow"
    copy.mkdir()
    for path in published.directory.iterdir():
        if path.name == tampered:
            (copy / path.name).write_bytes(change(path.read_bytes()))
        elif path.name.startswith("SHA256SUMS"):
            shutil.copyfile(path, copy / path.name)
        else:
            (copy / path.name).symlink_to(path)
    return copy


def test_the_channel_holds_the_documented_files(published: Published) -> None:
    build = published.build.manifest
    stem = f"{build['name']}_{build['version']}"
    suffixes = ("chunks", "efi", "json", "usr", "verity")
    assert sorted(p.name for p in published.directory.iterdir()) == sorted(
        ["SHA256SUMS", "SHA256SUMS.gpg", "SHA256SUMS.signed", "chunks"]
        + [f"{stem}.{s}" for s in suffixes])
    manifest = published.manifest
    usrhash = build["usrhash"]
    assert manifest["usrhash"] == usrhash
    assert manifest["kernel"] == build["kernel"]
    assert manifest["cmdline"] == build["cmdline"] == uki.cmdline(published.build.uki)
    assert manifest["boot"] == uki.boot_digests(published.build.uki)
    files = manifest["files"]
    assert isinstance(files, dict)
    slots = {p["type"]: p for p in build["partitions"]}
    assert files["usr"]["size"] == build["bytes"]["usr_fs"]
    assert files["usr"]["slot_size"] == slots["usr-x86-64"]["raw_size"]
    assert files["usr"]["partition_uuid"].replace("-", "") == usrhash[:32]
    assert files["usr"]["label"] == stem
    assert files["verity"]["slot_size"] == slots["usr-x86-64-verity"]["raw_size"]
    assert files["verity"]["partition_uuid"].replace("-", "") == usrhash[32:]
    assert files["verity"]["label"] == f"{stem}_verity"
    assert files["verity"]["size"] % 4096 == 0
    assert published.release_file("efi").read_bytes() == published.build.uki.read_bytes()


def test_the_release_files_rebuild_slots_that_dm_verity_accepts(published: Published,
                                                                tmp_path: Path) -> None:
    """The file, then zeros up to slot_size (docs/updates.md), gives the root hash usrhash=."""
    files = published.manifest["files"]
    assert isinstance(files, dict)
    slots = {}
    for role in ("usr", "verity"):
        slots[role] = tmp_path / role
        shutil.copyfile(published.release_file(role), slots[role])
        os.truncate(slots[role], files[role]["slot_size"])  # sparse zeros
    usrhash = str(published.manifest["usrhash"])
    runner = signing.tools_runner()
    process.run([runner, "--ro", tmp_path, "--", "veritysetup", "verify", slots["usr"],
                 slots["verity"], usrhash], capture=True)
    wrong = process.run([runner, "--ro", tmp_path, "--", "veritysetup", "verify", slots["usr"],
                         slots["verity"], "0" * 64], capture=True, check=False)
    assert wrong.returncode != 0


def test_a_machine_accepts_the_channel(published: Published) -> None:
    assert signing.verify(published.key.trusted, published.directory / "SHA256SUMS",
                          published.directory / "SHA256SUMS.gpg")
    assert verify_channel(published.directory, published.key.trusted) == []


def test_a_tampered_sha256sums_is_rejected(published: Published, tmp_path: Path) -> None:
    def swap_first_digit(text: bytes) -> bytes:
        return (b"0" if text[:1] != b"0" else b"1") + text[1:]

    copy = shadow(published, tmp_path, "SHA256SUMS", swap_first_digit)
    assert not signing.verify(published.key.trusted, copy / "SHA256SUMS",
                              copy / "SHA256SUMS.gpg")
    assert verify_channel(copy, published.key.trusted) == [
        "SHA256SUMS is not the text of SHA256SUMS.signed"]


def test_a_tampered_signed_index_is_rejected(published: Published, tmp_path: Path) -> None:
    def change_a_digest(text: bytes) -> bytes:
        at = text.index(b"\n\n") + 2 + 60  # inside the signed text
        return text[:at] + (b"0" if text[at:at + 1] != b"0" else b"1") + text[at + 1:]

    copy = shadow(published, tmp_path, "SHA256SUMS.signed", change_a_digest)
    assert signing.verify_signed(published.key.trusted, copy / "SHA256SUMS.signed") is None
    assert verify_channel(copy, published.key.trusted) == [
        f"gpgv does not accept {copy / 'SHA256SUMS.signed'} with {published.key.trusted}"]


def test_the_signed_index_carries_serial_and_expiry_and_the_agent_accepts_it(
    published: Published, tmp_path: Path,
) -> None:
    """The agent's own check (gpgv from PATH, as on the machine) on the real signature."""
    signed = (published.directory / "SHA256SUMS.signed").read_bytes()
    text = update.verify_index(signed, (published.key.trusted,), tmp_path)
    index = records.SignedIndex.from_text(text.decode())
    assert text == (published.directory / "SHA256SUMS").read_bytes()
    assert index.serial > 1_700_000_000
    expiry = index.expiry()
    assert expiry is not None
    left = expiry - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=6.9) < left <= datetime.timedelta(days=7)
    # Text outside the signed part is never used: a line added before the signature block.
    forged = signed.replace(b"-----BEGIN PGP SIGNATURE-----",
                            b"0" * 64 + b"  evil.json\n-----BEGIN PGP SIGNATURE-----")
    with pytest.raises(update.UpdateError, match="signature is not valid"):
        update.verify_index(forged, (published.key.trusted,), tmp_path)


def test_renew_signs_a_higher_serial_and_a_new_expiry(
    published: Published, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    directory = tmp_path / "channel"
    shutil.copytree(published.directory, directory)
    before = records.SignedIndex.from_text((directory / "SHA256SUMS").read_text())
    argv = ["channel", "renew", "--channel", str(directory), "--key", str(published.key.home),
            "--valid-days", "30"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == f"{directory}\n"
    after = records.SignedIndex.from_text((directory / "SHA256SUMS").read_text())
    assert after.serial > before.serial and after.files == before.files
    assert after.expires > before.expires
    assert verify_channel(directory, published.key.trusted) == []


def test_a_tampered_file_is_found(published: Published, tmp_path: Path) -> None:
    verity = published.release_file("verity").name
    copy = shadow(published, tmp_path, verity, lambda data: data[:-1] + b"\x01")
    assert verify_channel(copy, published.key.trusted) == [
        f"{verity} does not match its SHA256SUMS line"]


def test_a_signature_by_another_key_is_rejected(published: Published, tmp_path: Path) -> None:
    other = signing.ensure_key(tmp_path / "other-keys")
    sums, signature = tmp_path / "SHA256SUMS", tmp_path / "SHA256SUMS.gpg"
    shutil.copyfile(published.directory / "SHA256SUMS", sums)
    signing.sign(other, sums, signature)  # checks it against the other key's trusted.gpg
    assert not signing.verify(published.key.trusted, sums, signature)


def test_sonix_release_prints_the_channel_and_a_second_run_changes_nothing(
    published: Published, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "channel"
    argv = ["release", str(CONFIG), "--channel", str(directory), "--key",
            str(published.key.home), "--keep", "1"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == f"{directory}\n"
    sums = channel.parse_sums((directory / "SHA256SUMS").read_text())
    # The build is reproducible: the same files, only the manifest's `created` differs.
    first = channel.parse_sums((published.directory / "SHA256SUMS").read_text())
    assert {n: d for n, d in sums.items() if not n.endswith(".json")} == {
        n: d for n, d in first.items() if not n.endswith(".json")}
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == f"{directory}\n"
    # The same files; the index is signed again (a new serial).
    assert channel.parse_sums((directory / "SHA256SUMS").read_text()) == sums


@pytest.fixture
def server(published: Published) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sonix", "serve", str(published.directory), "--listen",
         "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def test_sonix_serve_resumes_downloads(published: Published, server: str) -> None:
    status, _, sums = get(server + "SHA256SUMS")
    assert (status, sums) == (200, (published.directory / "SHA256SUMS").read_bytes())
    usr = published.release_file("usr")
    size = usr.stat().st_size
    half = size // 2 + 123
    status, headers, first = get(server + usr.name, Range=f"bytes=0-{half - 1}")
    assert (status, headers["Content-Length"]) == (206, str(half))
    status, headers, rest = get(server + usr.name, Range=f"bytes={half}-")
    assert (status, headers["Content-Range"]) == (206, f"bytes {half}-{size - 1}/{size}")
    files = published.manifest["files"]
    assert isinstance(files, dict)
    assert hashlib.sha256(first + rest).hexdigest() == files["usr"]["sha256"]
    with pytest.raises(urllib.error.HTTPError) as error:
        get(server + usr.name, Range=f"bytes={size}-")
    assert error.value.code == 416
    assert channel.parse_sums(sums.decode())[usr.name] == files["usr"]["sha256"]
