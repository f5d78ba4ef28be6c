"""agents/records.py (issue 14): the release manifest and the signed index as the agent reads
them from a hostile channel, as corpora of cases with their expected outcome (refused at a
JSON path, or read), and the serial and expiry that `sonix release` / `sonix channel renew`
write."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from test_release import FakeSigner, fake_image

from sonix import ui
from sonix.agents import records
from sonix.release import channel

H = "a" * 64
USRHASH = "5bb68a18cc5bc82a5c7aff2f678701bd" + "0123456789abcdef0123456789abcdef"


def good_manifest() -> dict[str, Any]:
    return {
        "format": 1, "name": "sonix", "version": "2", "usrhash": USRHASH,
        "kernel": "6.12", "cmdline": f"rw usrhash={USRHASH}", "created": "2026-11-24T12:00:00Z",
        "files": {
            "uki": {"name": "sonix_2.efi", "size": 10, "sha256": H},
            "usr": {"name": "sonix_2.usr", "size": 10, "sha256": H, "slot_size": 4096,
                    "partition_uuid": "5bb68a18-cc5b-c82a-5c7a-ff2f678701bd",
                    "label": "sonix_2"},
            "verity": {"name": "sonix_2.verity", "size": 10, "sha256": H, "slot_size": 4096,
                       "partition_uuid": "01234567-89ab-cdef-0123-456789abcdef",
                       "label": "sonix_2_verity"},
        },
        "boot": {"linux_sha256": H, "initrd_sha256": H},
    }


def changed(path: str, value: Any) -> dict[str, Any]:
    """The good manifest with the value at the dotted path replaced (`...` deletes it)."""
    data = copy.deepcopy(good_manifest())
    *parents, key = path.split(".")
    target: Any = data
    for part in parents:
        target = target[part]
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return data


# (case, the manifest, the expected error (a regular expression), or None: read)
MANIFESTS: list[tuple[str, Any, str | None]] = [
    ("good", good_manifest(), None),
    ("not an object", [], "the document must be a JSON object"),
    ("format 2", changed("format", 2), "format is 2"),
    ("format as text", changed("format", "1"), "format must be an integer"),
    ("format true", changed("format", True), "format must be an integer"),
    ("no name", changed("name", ...), "name is missing"),
    ("name with a slash", changed("name", "a/b"), "name 'a/b' does not match"),
    ("name upper case", changed("name", "Sonix"), "does not match"),
    ("version with _", changed("version", "x_1"), "version 'x_1' does not match"),
    ("version with +", changed("version", "1+2"), "does not match"),
    ("version with a newline", changed("version", "2\n"), "does not match"),
    ("version empty", changed("version", ""), "does not match"),
    ("version a number", changed("version", 2), "version must be a string"),
    ("usrhash short", changed("usrhash", "ab"), "usrhash 'ab' does not match"),
    ("usrhash upper case", changed("usrhash", USRHASH.upper()), "does not match"),
    ("files a list", changed("files", []), "files must be a JSON object"),
    ("no uki", changed("files.uki", ...), "files.uki is missing"),
    ("uki size text", changed("files.uki.size", "10"), "files.uki.size must be an integer"),
    ("uki size negative", changed("files.uki.size", -1), "files.uki.size must be at least 0"),
    ("uki size float", changed("files.uki.size", 1.5), "must be an integer"),
    ("uki sha bad", changed("files.uki.sha256", "x" * 64), "files.uki.sha256"),
    ("uki other file", changed("files.uki.name", "sonix_3.efi"),
     r"files.uki.name is 'sonix_3.efi', not 'sonix_2.efi'"),
    ("uki path", changed("files.uki.name", "../../etc/passwd"), "files.uki.name"),
    ("usr bigger than slot", changed("files.usr.size", 5000),
     "files.usr.size 5000 is larger than its slot_size 4096"),
    ("usr slot zero", changed("files.usr.slot_size", 0), "slot_size must be at least 1"),
    ("usr uuid bad", changed("files.usr.partition_uuid", "nope"),
     "files.usr.partition_uuid 'nope' is not a UUID"),
    ("usr uuid not from usrhash", changed("files.usr.partition_uuid", "0" * 32),
     "files.usr.partition_uuid is not the first half of usrhash"),
    ("verity uuid not from usrhash", changed("files.verity.partition_uuid", "0" * 32),
     "files.verity.partition_uuid is not the second half of usrhash"),
    ("label too long", changed("files.usr.label", "x" * 37), "files.usr.label"),
    ("label with a newline", changed("files.usr.label", "a\nb"), "files.usr.label"),
    ("no boot", changed("boot", ...), "boot is missing"),
    ("boot digest bad", changed("boot.linux_sha256", 5), "boot.linux_sha256 must be a string"),
    ("extra keys are fine", {**good_manifest(), "future": 1}, None),
]


@pytest.mark.parametrize(("case", "data", "expected"), MANIFESTS, ids=[m[0] for m in MANIFESTS])
def test_manifest_corpus(case: str, data: Any, expected: str | None) -> None:
    raw = json.dumps(data).encode()
    if expected is None:
        manifest = records.Manifest.from_bytes(raw, "sonix_2.json")
        assert manifest.to_json() == {k: v for k, v in data.items() if k != "future"}
        return
    with pytest.raises(records.RecordError, match=expected) as error:
        records.Manifest.from_bytes(raw, "sonix_2.json")
    assert str(error.value).startswith("sonix_2.json: ")


@pytest.mark.parametrize("raw", [b"{", b"\xff", b"[" * 50000, b"null", b'"x"', b"1e999"])
def test_manifests_that_are_not_json_objects_are_refused(raw: bytes) -> None:
    with pytest.raises(records.RecordError, match=r"sonix_2\.json: "):
        records.Manifest.from_bytes(raw, "sonix_2.json")


SERIAL = "# sonix-channel-serial: 5\n"
EXPIRES = "# sonix-channel-expires: 2026-12-13T00:00:00Z\n"
LINE = f"{H}  sonix_2.json\n"

# (case, SHA256SUMS text, expected error or None)
INDEXES: list[tuple[str, str, str | None]] = [
    ("with serial and expiry", SERIAL + EXPIRES + LINE, None),
    ("old: no header", LINE, None),
    ("binary marker", f"{H} *sonix_2.json\n", None),
    ("serial only", SERIAL + LINE, "a serial without an expiry"),
    ("expiry only", EXPIRES + LINE, "a serial without an expiry"),
    ("two serials", SERIAL + SERIAL + EXPIRES, "a bad or second serial"),
    ("serial not a number", "# sonix-channel-serial: 5x\n" + EXPIRES, "a bad or second serial"),
    ("serial negative", "# sonix-channel-serial: -5\n" + EXPIRES, "a bad or second serial"),
    ("serial huge", "# sonix-channel-serial: " + "9" * 40 + "\n" + EXPIRES,
     "a bad or second serial"),
    ("expiry not a time", SERIAL + "# sonix-channel-expires: soon\n", "is not a UTC time"),
    ("two expiries", SERIAL + EXPIRES + EXPIRES, "a second expiry"),
    ("a file twice", LINE + LINE, "listed twice"),
    ("another comment", "# hello\n" + LINE, "is not `<sha256>  <file>`"),
    ("short digest", "abc  x\n", "is not `<sha256>  <file>`"),
]


@pytest.mark.parametrize(("case", "text", "expected"), INDEXES, ids=[i[0] for i in INDEXES])
def test_signed_index_corpus(case: str, text: str, expected: str | None) -> None:
    if expected is None:
        index = records.SignedIndex.from_text(text)
        assert index.files == {"sonix_2.json": H}
        assert records.SignedIndex.from_text(index.to_text()) == index
        return
    with pytest.raises(records.RecordError, match=expected):
        records.SignedIndex.from_text(text)


# ---- serial and expiry as sonix release and sonix channel renew write them -----------------------


def publish(directory: Path, tmp: Path, version: str) -> None:
    manifest, disk, uki = fake_image(tmp, version=version)
    directory.mkdir(exist_ok=True)
    with channel.locked(directory):
        staged = channel.stage(channel.image_from_build(manifest, disk, uki), directory)
        try:
            channel.publish(directory, staged, 3, FakeSigner(directory))
        finally:
            staged.discard()


def index_of(directory: Path) -> records.SignedIndex:
    return records.SignedIndex.from_text((directory / "SHA256SUMS").read_text())


def test_release_writes_a_growing_serial_and_a_seven_day_expiry(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    publish(out, tmp_path, "1")
    first = index_of(out)
    expiry = first.expiry()
    assert expiry is not None
    left = expiry - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=6, hours=23) < left <= dt.timedelta(days=7)
    publish(out, tmp_path, "2")
    assert index_of(out).serial > first.serial
    # The clearsigned file holds exactly SHA256SUMS.
    signed = (out / "SHA256SUMS.signed").read_bytes()
    text = signed.rpartition(b"--signed:")[0]
    assert text == (out / "SHA256SUMS").read_bytes()
    assert hashlib.sha256(text).hexdigest().encode() == signed.rpartition(b"--signed:")[2]


def test_renew_changes_serial_and_expiry_only(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    publish(out, tmp_path, "1")
    before = index_of(out)
    files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*")
             if p.is_file() and not p.name.startswith("SHA")}  # the chunk store's too
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    with channel.locked(out):
        renewed = channel.renew(out, FakeSigner(out), valid_days=30, now=later)
    assert renewed == index_of(out)
    assert renewed.files == before.files
    assert renewed.serial > before.serial
    assert renewed.expires == records.format_time(later + dt.timedelta(days=30))
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and not p.name.startswith("SHA")} == files
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_rebuilt_channel_still_has_a_higher_serial(tmp_path: Path) -> None:
    """The serial is at least the clock's seconds: a channel made again from nothing (its old
    SHA256SUMS lost) still goes above what machines saw from the old one."""
    out = tmp_path / "channel"
    publish(out, tmp_path, "1")
    old = index_of(out).serial
    earlier = dt.datetime.fromtimestamp(old - 100, dt.UTC)
    assert channel.next_index(out, {}, 7, earlier).serial == old + 1
    later = dt.datetime.fromtimestamp(old + 100, dt.UTC)
    assert channel.next_index(tmp_path / "empty", {}, 7, later).serial == old + 100


def test_renew_refuses_a_directory_that_is_no_channel(tmp_path: Path) -> None:
    with pytest.raises(ui.SonixError, match="has no SHA256SUMS: not a channel"):
        channel.renew(tmp_path, FakeSigner(tmp_path))


def test_a_damaged_manifest_in_the_channel_stops_the_release(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    publish(out, tmp_path, "1")
    data = json.loads((out / "sonix_1.json").read_text())
    data["files"]["usr"]["size"] = "big"
    (out / "sonix_1.json").write_text(json.dumps(data))
    with pytest.raises(ui.SonixError, match=r"files.usr.size must be an integer"):
        publish(out, tmp_path, "2")


@pytest.mark.parametrize("days", ["0", "-1", "x", "4000"])
def test_valid_days_must_be_sensible(days: str) -> None:
    from sonix.commands.release import positive_days

    with pytest.raises(Exception, match=r"must be|not a number"):
        positive_days(days)


def test_renew_upgrades_a_channel_from_before_issue_14(tmp_path: Path) -> None:
    """A channel with the old SHA256SUMS (no header) and no SHA256SUMS.signed gets both."""
    out = tmp_path / "channel"
    publish(out, tmp_path, "1")
    old_text = "".join(line + "\n" for line in (out / "SHA256SUMS").read_text().splitlines()
                       if not line.startswith("#"))
    (out / "SHA256SUMS").write_text(old_text)
    (out / "SHA256SUMS.signed").unlink()
    with channel.locked(out):
        renewed = channel.renew(out, FakeSigner(out))
    assert renewed.serial > 0 and renewed.expires
    assert renewed.files == records.SignedIndex.from_text(old_text).files
    assert (out / "SHA256SUMS.signed").read_bytes().startswith(renewed.to_text().encode())
