"""A channel directory: versioned release files, one SHA256SUMS over them, its signature.

The layout, the file names and the release manifest are the contract with the update agent
(docs/updates.md, "Channel layout"); this module writes exactly that and nothing else, so any
static web server can serve a channel. Signing is passed in as a function (see
`sonix.release.signing`), so everything here works on plain files and is tested without gpg.

Publishing is atomic per file: every file is written under a temporary name in the channel
(same file system), flushed, and renamed into place; the release's data files first, its
manifest after them, the signed index last, and the files of dropped releases are deleted only
after the new index is in place. Machines read the index from one file, `SHA256SUMS.signed`
(SHA256SUMS clearsigned: text and signature in one rename, never a mismatched pair); it
carries the channel's serial and expiry (`records.SignedIndex`). `SHA256SUMS` and its detached
`SHA256SUMS.gpg` are written too, for people, `sha256sum -c` and agents before issue 14.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import struct
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from sonix import ui
from sonix.agents import chunks, records, uki
from sonix.agents.records import FORMAT, NAME_RE, VERSION_RE, Manifest, SignedIndex
from sonix.agents.versions import compare_versions, version_key
from sonix.release import chunking

SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.gpg"
SIGNED = "SHA256SUMS.signed"  # SHA256SUMS clearsigned: what machines read
DEFAULT_KEEP = 3
DEFAULT_VALID_DAYS = 7
SUFFIXES = records.SUFFIXES

# The roles of a release's files are published in the order of SUFFIXES (the manifest comes
# after them: a manifest in the channel means its files are complete).

BLOCK = 4096  # dm-verity data and hash block size of sonix images (docs/image.md)
CHUNK = 1 << 20
TEMP_PREFIX = ".sonix-"
TEMP_SUFFIX = ".tmp"

# https://docs.kernel.org/filesystems/erofs.html: the superblock sits 1024 bytes into the
# device; `blocks` counts the file system's blocks of 2**blkszbits bytes.
EROFS_MAGIC = 0xE0F5E1E2
EROFS_SUPERBLOCK = 1024

# repart's names for the partition types (the build manifest's `partitions[].type`).
USR_TYPE = "usr-x86-64"
VERITY_TYPE = "usr-x86-64-verity"

class Signer(Protocol):
    """Signs a file (and checks the signature) in the two forms a channel publishes."""

    def detached(self, data: Path, signature: Path) -> None:
        """A detached binary signature of data."""

    def clear(self, data: Path, signed: Path) -> None:
        """data clearsigned: its text and the signature in one file."""


# ---- versions: compared as systemd does (sonix.agents.versions, shared with the agent) ----



def release_stem(name: str, version: str) -> str:
    return f"{name}_{version}"


file_names = records.file_names


# ---- reading a built image -----------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A partition of the built image, as repart reported it (the build manifest)."""

    offset: int
    size: int
    uuid: str
    label: str


@dataclass(frozen=True)
class Image:
    """A built image, as far as a release needs it (validated by `image_from_build`)."""

    name: str
    version: str
    usrhash: str
    kernel: str
    cmdline: str
    disk: Path
    uki: Path
    usr: Slot
    verity: Slot


def image_from_build(manifest: dict[str, Any], disk: Path, uki_path: Path) -> Image:
    """The parts of a build (its manifest.json, disk image and UKI) that make a release, with
    the checks that keep a broken image out of a channel."""
    name, version = str(manifest["name"]), str(manifest["version"])
    if not NAME_RE.fullmatch(name):
        raise ui.die(f"image name {name!r} cannot name channel files", hint="see image.name")
    if not VERSION_RE.fullmatch(version):
        raise ui.die(
            f"image version {version!r} cannot name channel files: a channel allows only "
            "letters, digits, . and - in versions, starting with a letter or digit (no _ "
            "or +: they would make file and boot entry names ambiguous; docs/updates.md)",
            hint="choose another image.version, e.g. 2026.11.24.1",
        )
    usrhash = str(manifest["usrhash"]).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", usrhash):
        raise ui.die(f"the build manifest's usrhash {usrhash!r} is not a sha256 root hash")
    # The initrd finds both partitions from usrhash= alone: their UUIDs are its two halves.
    usr = _slot(manifest, USR_TYPE, str(uuid.UUID(usrhash[:32])))
    verity = _slot(manifest, VERITY_TYPE, str(uuid.UUID(usrhash[32:])))
    cmdline = uki.cmdline(uki_path)
    if f"usrhash={usrhash}" not in cmdline.split():
        raise ui.die(f"the UKI {uki_path} does not boot usrhash={usrhash} (its command line: "
                     f"{cmdline!r})", hint="rebuild the image")
    return Image(name, version, usrhash, str(manifest["kernel"]), cmdline, disk, uki_path,
                 usr, verity)


def _slot(manifest: dict[str, Any], kind: str, want_uuid: str) -> Slot:
    found = [p for p in manifest.get("partitions", [])
             if str(p.get("uuid", "")).lower() == want_uuid]
    if len(found) != 1 or found[0].get("type") != kind:
        raise ui.die(
            f"the image has no {kind} partition with UUID {want_uuid} (a half of usrhash)",
            hint="the build manifest and the partition table disagree; rebuild the image",
        )
    part = found[0]
    return Slot(int(part["offset"]), int(part["raw_size"]), want_uuid, str(part["label"]))


def erofs_size(disk: BinaryIO, offset: int) -> int:
    """Bytes used by the erofs file system that starts at offset (its superblock says)."""
    disk.seek(offset + EROFS_SUPERBLOCK)
    superblock = disk.read(64)
    if len(superblock) < 64 or struct.unpack_from("<I", superblock, 0)[0] != EROFS_MAGIC:
        raise ui.die("the usr partition does not start with an erofs file system")
    blkszbits = superblock[12]
    (blocks,) = struct.unpack_from("<I", superblock, 36)
    return int(blocks) << int(blkszbits)


def _data_ranges(disk: BinaryIO, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The parts of [start, end) that may hold data: holes of a sparse file are skipped
    (SEEK_DATA/SEEK_HOLE; where a file system lacks them everything counts as data)."""
    fd = disk.fileno()
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after pos
            return
        if data >= end:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield data, hole
        pos = hole


def _data_chunks(disk: BinaryIO, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of what [start, end) holds, in CHUNK pieces, skipping holes."""
    fd = disk.fileno()
    for begin, stop in _data_ranges(disk, start, end):
        pos = begin
        while pos < stop:
            chunk = os.pread(fd, min(CHUNK, stop - pos), pos)
            if not chunk:
                break
            yield pos, chunk
            pos += len(chunk)


def first_nonzero(disk: BinaryIO, start: int, end: int) -> int | None:
    """The offset of the first non-zero byte in [start, end), or None."""
    for pos, chunk in _data_chunks(disk, start, end):
        if chunk.count(0) != len(chunk):
            return pos + len(chunk) - len(chunk.lstrip(b"\0"))
    return None


def used_blocks_end(disk: BinaryIO, start: int, end: int) -> int:
    """Bytes from start to the end of the last 4 KiB block in [start, end) that is not all
    zeros (0 if there is none)."""
    last = 0
    for pos, chunk in _data_chunks(disk, start, end):
        used = len(chunk.rstrip(b"\0"))
        if used:
            last = pos + used - start
    return -(-last // BLOCK) * BLOCK


# ---- writing a release ---------------------------------------------------------------------


@dataclass
class Staged:
    """A release written under temporary names in the channel, not yet published."""

    manifest: Manifest | None
    temp: dict[str, Path] = field(default_factory=dict)  # final name → temporary file
    chunks: list[Path] = field(default_factory=list)  # chunk files new in the store

    def discard(self) -> None:
        """Remove what was staged and not published (the new chunks too: a failed release
        leaves the channel as it was)."""
        for path in [*self.temp.values(), *self.chunks]:
            path.unlink(missing_ok=True)
        self.temp.clear()
        self.chunks.clear()


def stage(image: Image, channel: Path, created: datetime.datetime | None = None) -> Staged:
    """Write the release's files into the channel under temporary names and make its manifest.
    The usr slot must be empty after the erofs file system (the agent writes zeros there)."""
    names = file_names(image.name, image.version)
    staged = Staged(manifest=None)
    try:
        with image.disk.open("rb") as disk:
            usr_size = erofs_size(disk, image.usr.offset)
            if usr_size > image.usr.size:
                raise ui.die(f"the usr file system ({usr_size} bytes) is larger than its slot "
                             f"({image.usr.size} bytes)", hint="rebuild the image")
            stray = first_nonzero(disk, image.usr.offset + usr_size,
                                  image.usr.offset + image.usr.size)
            if stray is not None:
                raise ui.die(
                    f"the usr slot of {image.disk} is not empty after its erofs file system "
                    f"(a non-zero byte at {stray - image.usr.offset} of {image.usr.size}): a "
                    "release carries the file system only and machines pad it with zeros, so "
                    "the verity hash would not match",
                    hint="the image builder must leave the rest of the usr slot zero",
                )
            verity_size = used_blocks_end(disk, image.verity.offset,
                                          image.verity.offset + image.verity.size)
            if verity_size == 0:
                raise ui.die("the usr-verity partition is empty", hint="rebuild the image")
            usr = _write_temp(channel, names["usr"], _read_range(disk, image.usr.offset,
                                                                usr_size), staged)
            verity = _write_temp(channel, names["verity"], _read_range(
                disk, image.verity.offset, verity_size), staged)
        with image.uki.open("rb") as f:
            efi = _write_temp(channel, names["uki"], _read_range(f, 0, os.fstat(f.fileno())
                                                                 .st_size), staged)
        stage_chunks(channel, image, staged, {"usr": usr, "verity": verity, "efi": efi})
        staged.manifest = make_manifest(image, efi, usr, verity, uki.boot_digests(image.uki),
                                        created)
        _write_temp(channel, names["manifest"], iter([staged.manifest.to_bytes()]), staged)
    except BaseException:
        staged.discard()
        raise
    return staged


def stage_chunks(channel: Path, image: Image, staged: Staged,
                 written: dict[str, tuple[int, str]]) -> None:
    """The release's chunk index under a temporary name, its chunks in the store (a chunk no
    published index names is harmless, and pruned by the next publication)."""
    names = file_names(image.name, image.version)
    files = {"usr": staged.temp[names["usr"]], "verity": staged.temp[names["verity"]],
             "efi": staged.temp[names["uki"]]}
    index = chunking.make_index(channel, image.name, image.version, files, staged.chunks)
    for role, (size, sha256) in written.items():
        if (index.parts[role].size, index.parts[role].sha256) != (size, sha256):
            raise ui.die(f"the {role} file changed while it was cut into chunks")
    _write_temp(channel, chunks.index_name(image.name, image.version),
                iter([index.to_bytes()]), staged)


def make_manifest(
    image: Image,
    efi: tuple[int, str],
    usr: tuple[int, str],
    verity: tuple[int, str],
    boot: dict[str, str],
    created: datetime.datetime | None = None,
) -> Manifest:
    """The release manifest of docs/updates.md; efi, usr and verity are (size, sha256).
    Read back through `Manifest.from_json`, so the channel never carries a manifest that a
    machine would refuse."""
    names = file_names(image.name, image.version)
    when = created or datetime.datetime.now(datetime.UTC)
    manifest = Manifest(
        name=image.name,
        version=image.version,
        usrhash=image.usrhash,
        kernel=image.kernel,
        cmdline=image.cmdline,
        created=records.format_time(when),
        uki=records.FileSpec(names["uki"], efi[0], efi[1]),
        usr=records.SlotSpec(records.FileSpec(names["usr"], usr[0], usr[1]), image.usr.size,
                             image.usr.uuid, image.usr.label),
        verity=records.SlotSpec(records.FileSpec(names["verity"], verity[0], verity[1]),
                                image.verity.size, image.verity.uuid, image.verity.label),
        linux_sha256=boot["linux_sha256"],
        initrd_sha256=boot["initrd_sha256"],
    )
    try:
        return Manifest.from_json(manifest.to_json())
    except records.RecordError as error:
        raise ui.die(f"the release manifest would be refused by machines: {error}",
                     hint="rebuild the image") from None


def _read_range(f: BinaryIO, offset: int, length: int) -> Iterator[bytes]:
    fd = f.fileno()
    pos, end = offset, offset + length
    while pos < end:
        chunk = os.pread(fd, min(CHUNK, end - pos), pos)
        if not chunk:
            raise ui.die(f"{getattr(f, 'name', 'a file')} ends at {pos}, before {end}")
        yield chunk
        pos += len(chunk)


def _write_temp(channel: Path, final: str, chunks: Iterator[bytes], staged: Staged
                ) -> tuple[int, str]:
    """Write chunks to a new temporary file in the channel: (size, sha256)."""
    fd, name = tempfile.mkstemp(dir=channel, prefix=f"{TEMP_PREFIX}{final}.", suffix=TEMP_SUFFIX)
    staged.temp[final] = Path(name)
    digest, size = hashlib.sha256(), 0
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        out.flush()
        os.fchmod(out.fileno(), 0o644)  # web servers read channels as another user
        os.fsync(out.fileno())
    return size, digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- the channel ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """A release in the channel: its manifest, read from `<name>_<version>.json`."""

    name: str
    version: str
    manifest: Manifest

    @property
    def files(self) -> list[str]:
        """The release's files in the channel (its chunk index too: it may have none)."""
        return [*file_names(self.name, self.version).values(),
                chunks.index_name(self.name, self.version)]


@contextlib.contextmanager
def locked(channel: Path) -> Iterator[None]:
    """Hold the channel for one writer (flock on the directory itself: no lock file for web
    servers to serve), and clear what an interrupted writer left behind."""
    fd = os.open(channel, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ui.die(f"another sonix release is writing to {channel}",
                         hint="wait for it to finish") from None
        for leftover in channel.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)
        for leftover in channel.glob(f"{chunks.STORE}/*/{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)


def read_releases(channel: Path) -> list[Release]:
    """The releases in a channel, from their manifests. Other JSON files are left alone."""
    releases = []
    for path in sorted(channel.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            name, version = data["name"], data["version"]
        except (ValueError, KeyError, TypeError):
            ui.info(f"warning: {path.name} is not a release manifest; leaving it alone")
            continue
        if path.name != f"{release_stem(str(name), str(version))}.json":
            ui.info(f"warning: {path.name} names release {name} {version}; leaving it alone")
            continue
        if data.get("format") != FORMAT:
            raise ui.die(f"{path} has manifest format {data.get('format')!r}, this sonix "
                         f"writes format {FORMAT}", hint="publish with a newer sonix")
        try:
            manifest = Manifest.from_json(data)
        except records.RecordError as error:
            raise ui.die(f"{path} is not a valid release manifest: {error}",
                         hint="restore the published file; never edit a channel by hand") from None
        releases.append(Release(manifest.name, manifest.version, manifest))
    return releases


def select(releases: list[Release], name: str, keep: int) -> tuple[list[Release], list[Release]]:
    """(kept, dropped): the newest `keep` releases of `name`, and every release of other
    names (a channel may carry several images; --keep trims the one being released)."""
    if keep < 1:
        raise ui.die(f"--keep must be at least 1 (got {keep})")
    mine = sorted((r for r in releases if r.name == name),
                  key=lambda r: version_key(r.version), reverse=True)
    others = [r for r in releases if r.name != name]
    return others + mine[:keep], mine[keep:]


def format_sums(digests: dict[str, str]) -> str:
    """sha256sum's format, sorted by file name: `<hex>  <file>` (two spaces: text mode)."""
    return SignedIndex(digests).to_text()


def parse_sums(text: str) -> dict[str, str]:
    """File name → sha256 of a SHA256SUMS file (sha256sum's text or binary `*` marker; the
    serial and expiry lines are read by `records.SignedIndex`)."""
    return dict(SignedIndex.from_text(text).files)


def next_index(channel: Path, digests: dict[str, str], valid_days: float,
               now: datetime.datetime | None = None) -> SignedIndex:
    """The new signed index: a serial above the channel's current one and above the clock
    (seconds since 1970), so it also grows when a channel is rebuilt from nothing; the expiry
    `valid_days` from now."""
    moment = now or datetime.datetime.now(datetime.UTC)
    previous = 0
    with contextlib.suppress(FileNotFoundError, ValueError):
        previous = SignedIndex.from_text((channel / SUMS).read_text()).serial
    serial = max(previous + 1, int(moment.timestamp()))
    expires = records.format_time(moment + datetime.timedelta(days=valid_days))
    return SignedIndex(digests, serial, expires)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _comparable(manifest: Manifest) -> dict[str, Any]:
    return {key: value for key, value in manifest.to_json().items() if key != "created"}


@dataclass(frozen=True)
class Published:
    """What `publish` did."""

    release: Release
    new: bool  # False: the same release was in the channel already
    kept: list[Release]
    dropped: list[Release]


def publish(channel: Path, staged: Staged, keep: int, sign: Signer,
            valid_days: float = DEFAULT_VALID_DAYS) -> Published:
    """Put a staged release into the channel (call under `locked`). The signed index of every
    kept release is written and signed first, under temporary names; then the release's files
    are renamed into place (data files, then the manifest), then the index files, and only
    then are dropped releases deleted. A failure before the renames (a signing error) leaves
    the channel as it was."""
    if staged.manifest is None:
        raise ValueError("nothing staged")
    name, version = staged.manifest.name, staged.manifest.version
    releases = read_releases(channel)
    existing = next((r for r in releases if (r.name, r.version) == (name, version)), None)
    if existing is not None:
        if _comparable(existing.manifest) != _comparable(staged.manifest):
            raise ui.die(
                f"{name} {version} is already published in {channel} with different content",
                hint="a published version never changes: bump image.version and release again",
            )
        staged.discard()  # identical: keep the published files (and their creation time)
        release = existing
    else:
        check_newer(channel, releases, name, version)
        release = Release(name, version, staged.manifest)
        releases.append(release)
    kept, dropped = select(releases, name, keep)
    signed = Staged(manifest=None)
    try:
        index = next_index(channel, checksums(channel, kept, staged.temp), valid_days)
        sign_sums(channel, index, sign, signed)
        for final, temp in list(staged.temp.items()):  # data files first, manifest last
            os.replace(temp, channel / final)
            del staged.temp[final]
        _rename_index(channel, signed)
        staged.chunks.clear()  # published: the new index names them
    finally:
        signed.discard()
    for old in dropped:
        for file in old.files:
            (channel / file).unlink(missing_ok=True)
    prune_chunks(channel, kept)
    _fsync_dir(channel)
    return Published(release, existing is None, kept, dropped)


def prune_chunks(channel: Path, kept: list[Release]) -> int:
    """Delete the stored chunks that no kept release's chunk index names (after the new
    signed index is in place, like the files of dropped releases)."""
    indexes = [chunking.read_index(channel, r.name, r.version) for r in kept]
    return chunking.prune(channel, chunking.used_chunks([i for i in indexes if i is not None]))


def check_newer(channel: Path, releases: list[Release], name: str, version: str) -> None:
    """A new version must be newer than the image's newest release in the channel (a version
    that is there already is not new: `publish` compares its content instead)."""
    if any((r.name, r.version) == (name, version) for r in releases):
        return
    newest = max((r for r in releases if r.name == name),
                 key=lambda r: version_key(r.version), default=None)
    if newest is not None and compare_versions(version, newest.version) <= 0:
        raise ui.die(
            f"{name} {version} is not newer than {newest.version}, the newest release in "
            f"{channel}: machines only move to newer versions",
            hint=f"set image.version above {newest.version} and release again",
        )


def checksums(channel: Path, kept: list[Release], pending: dict[str, Path]) -> dict[str, str]:
    """File name → sha256 of every file of the kept releases (`pending`: files not yet renamed
    into place). Every file is hashed again and must match its manifest, and every manifest
    the previous SHA256SUMS: a file changed on disk is never signed."""
    previous: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        previous = parse_sums((channel / SUMS).read_text())
    digests = {}
    for release in kept:
        names = file_names(release.name, release.version)
        for role, entry in release.manifest.files.items():
            if entry.name != names[role]:
                raise ui.die(f"the manifest of {release.name} {release.version} names "
                             f"{entry.name!r} for its {role} file, not {names[role]!r}")
            path = pending.get(names[role], channel / names[role])
            digests[names[role]] = _checked_hash(path, names[role], entry.sha256,
                                                 "its manifest")
        manifest = names["manifest"]
        path = pending.get(manifest, channel / manifest)
        digests[manifest] = _checked_hash(path, manifest, previous.get(manifest), SUMS)
        index = chunks.index_name(release.name, release.version)
        path = pending.get(index, channel / index)
        if path.is_file():  # releases published before issue 17 have none
            digests[index] = _checked_hash(path, index, previous.get(index), SUMS)
    return digests


def sign_sums(channel: Path, index: SignedIndex, sign: Signer, staged: Staged) -> None:
    """SHA256SUMS, its detached signature and its clearsigned form under temporary names (in
    staged.temp)."""
    _write_temp(channel, SUMS, iter([index.to_text().encode()]), staged)
    for final, how in ((SIGNATURE, sign.detached), (SIGNED, sign.clear)):
        fd, name = tempfile.mkstemp(dir=channel, prefix=f"{TEMP_PREFIX}{final}.",
                                    suffix=TEMP_SUFFIX)
        os.close(fd)
        staged.temp[final] = Path(name)
        how(staged.temp[SUMS], staged.temp[final])
        os.chmod(staged.temp[final], 0o644)


def _rename_index(channel: Path, signed: Staged) -> None:
    """The index files into place: SHA256SUMS.signed, the machines' one file, first."""
    for final in (SIGNED, SUMS, SIGNATURE):
        os.replace(signed.temp.pop(final), channel / final)


def renew(channel: Path, sign: Signer, valid_days: float = DEFAULT_VALID_DAYS,
          now: datetime.datetime | None = None) -> SignedIndex:
    """Sign the channel's index again with a new serial and expiry, releases unchanged (call
    under `locked`): what keeps machines trusting a channel that has no new release within
    its validity. Every file is hashed again, as for a release."""
    if not (channel / SUMS).is_file():
        raise ui.die(f"{channel} has no {SUMS}: not a channel",
                     hint="publish a release into it with sonix release")
    releases = read_releases(channel)
    index = next_index(channel, checksums(channel, releases, {}), valid_days, now)
    signed = Staged(manifest=None)
    try:
        sign_sums(channel, index, sign, signed)
        _rename_index(channel, signed)
    finally:
        signed.discard()
    _fsync_dir(channel)
    return index


def _checked_hash(path: Path, name: str, expected: str | None, source: str) -> str:
    if not path.is_file():
        raise ui.die(f"{name} is missing from the channel",
                     hint="restore it, or delete the release's other files too")
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise ui.die(f"{name} does not match {source} (sha256 {actual}, expected {expected}): "
                     "it changed after it was published",
                     hint="restore the published file; never edit a channel by hand")
    return actual
