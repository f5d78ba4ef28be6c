"""sonix-update: the update agent on the machine (standard library only).

    sonix update run            check the channel, install a newer release into the inactive
                                usr slot, activate it as the strategy allows (timer)
    sonix update check          say what the channel offers, change nothing
    sonix update assess         at every boot: notice a rollback, record the failed release
    sonix update steady-state   after boot-complete.target: the booted release is good
    sonix update release-lock   give back the FleetLock slot that a rollback kept (operator)
    sonix update reboot-if-allowed [--reason WHY]
                                something else needs a reboot (firmware): reboot now if the
                                strategy allows it (the same decision as for a release)
    sonix status [--json]       booted release, other slot, channel, last check, rollbacks

The channel layout and the order of checks are in docs/updates.md. Nothing is written before
the signature of the channel's index, its serial and expiry, and the hash of the manifest are
good; the slot is written and checked before the partition table and the boot entry change,
and the boot entry appears last (atomic rename), so a power cut at any point leaves a machine
that boots a good release. Every download has a byte cap and a deadline (common.http_get).
On an image built with Secure Boot the new UKI is downloaded first, into the agent's state
directory, and checked against the image's db certificate (sbverify) before anything else is
written: a UKI that the firmware would refuse is never installed (docs/secure-boot.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from . import chunks, common, gpt, uki
from .chunks import ChunkError, ChunkIndex
from .common import Deadline, FetchError
from .records import (
    VERSION_RE,
    Activation,
    Boot,
    ChannelSeen,
    Check,
    Failure,
    FileSpec,
    LockHold,
    Manifest,
    Pending,
    RebootRequest,
    RecordError,
    SignedIndex,
    SlotSpec,
    State,
)
from .versions import compare_versions, version_key

VERSION_PATTERN = VERSION_RE.pattern

CONFIG = Path("/usr/lib/sonix/update.json")  # from the configuration (modules/services/updates.nix)
CONFIG_OVERRIDE = Path("/etc/sonix/update.json")  # machine-local (provisioning, the admin)
STATE = Path("/var/lib/sonix-update/state.json")
HEALTH_FAILURES = Path("/var/lib/sonix/health")  # failed-<version>: the check (health.nix)
CHUNK = 1 << 20
EMPTY_LABEL = "_empty"

# What the channel serves, and how much of it the agent reads at most (checked while
# reading, before gpgv or json see a byte): a hostile or broken server cannot fill memory.
SIGNED_INDEX = "SHA256SUMS.signed"
INDEX_MAX = 1 << 20
MANIFEST_MAX = 64 << 10
SMALL_FILE_SECONDS = 60.0  # the deadline of the index and of a manifest, retries included
GPGV_SECONDS = 60.0

# Secure Boot (boot.secureBoot, modules/system/secure-boot.nix): sbsigntool's sbverify, and
# where a new UKI waits (in the state directory, on disk: a UKI is tens of MiB, more than a
# small machine's /run may hold) until its signature is checked.
SBVERIFY = Path("/usr/bin/sbverify")
SBVERIFY_SECONDS = 120.0
INCOMING = "incoming"

# Delta updates (issue 17): the chunk index of every release this machine holds, kept in the
# state directory (its seeds' indexes for the next update).
CHUNK_INDEXES = "chunks"

log = common.Logger("sonix-update")


def warn(message: str) -> None:
    log(message, common.WARNING)


def error(message: str) -> None:
    log(message, common.ERR)


class UpdateError(Exception):
    """A failure the agent reports and recovers from (the next run tries again)."""


class StateError(UpdateError):
    """The state file cannot be read or written: the agent stops rather than forget."""


# ------------------------------------------------------------------------------------------
# Configuration and state


@dataclass(frozen=True)
class Window:
    days: tuple[str, ...]  # Mon … Sun; empty = every day
    start: str  # HH:MM
    minutes: int
    time_zone: str


@dataclass(frozen=True)
class Config:
    name: str
    channel: str
    keyrings: tuple[Path, ...]
    tries: int
    strategy: str  # immediate | maintenance-window | fleet-lock | off
    activation: str  # auto | kexec | reboot
    window: Window | None
    fleet_lock_url: str
    fleet_lock_group: str
    fleet_lock_token_file: str = ""  # a file holding the Bearer token ("": none)
    timeout: float = 3600.0  # seconds a run may take (TimeoutStartSec= of sonix-update)
    # The image's db certificate: set when the image was built with Secure Boot, and then
    # every new UKI must verify against it ("": an unsigned image, no check).
    secure_boot_certificate: str = ""


# What only the image may say: a machine-local override cannot switch the check off.
IMAGE_ONLY = ("secureBoot",)


def load_config(paths: tuple[Path, ...] = (CONFIG, CONFIG_OVERRIDE)) -> Config:
    """The image's configuration (the first path), then the machine-local overrides."""
    raw: dict[str, Any] = {}
    for number, path in enumerate(paths):
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (ValueError, OSError) as e:
                raise UpdateError(f"{path} is not valid JSON: {e}") from e
            if not isinstance(data, dict):
                raise UpdateError(f"{path} must hold a JSON object")
            for key in IMAGE_ONLY if number > 0 else ():
                if data.pop(key, None) is not None:
                    warn(f"{path}: {key} is ignored: it comes from the image only")
            raw.update(data)
    try:
        return _config(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UpdateError(f"{' + '.join(map(str, paths))}: a missing or wrong value ({e!r}); "
                          "see docs/updates.md") from None


def _config(raw: dict[str, Any]) -> Config:
    window = raw.get("window")
    fleet_lock = raw.get("fleetLock", {})
    return Config(
        name=str(raw["name"]),
        channel=str(raw.get("channel", "")).rstrip("/") + "/",
        keyrings=tuple(Path(k) for k in raw.get("keyrings", [])),
        tries=int(raw.get("tries", 3)),
        strategy=str(raw.get("strategy", "immediate")),
        activation=str(raw.get("activation", "auto")),
        window=Window(
            tuple(window.get("days", [])), window.get("start", "00:00"),
            int(window.get("minutes", 60)), window.get("timeZone", "UTC"),
        ) if window else None,
        fleet_lock_url=str(fleet_lock.get("url", "")).rstrip("/"),
        fleet_lock_group=str(fleet_lock.get("group", "default")),
        fleet_lock_token_file=str(fleet_lock.get("tokenFile", "")),
        timeout=float(raw.get("timeout", 3600)),
        secure_boot_certificate=str(raw.get("secureBoot", {}).get("certificate", "")),
    )


def damaged_copies(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".damaged-*"))


def load_state(path: Path = STATE) -> State:
    """The state, every field checked. A damaged file is moved aside (kept, never reset) and
    the agent stops, saying so: an empty state would forget which releases failed here and
    install them again. While a damaged copy lies there and no state file, it stops too."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        kept = damaged_copies(path)
        if kept:
            raise StateError(
                f"{path} is missing and {kept[-1]} holds a damaged earlier state; the agent "
                "stops so that the failed releases it lists are not forgotten. Repair it and "
                f"move it back to {path}, or delete it to start with an empty state "
                "(docs/updates.md, \"State\")") from None
        return State()
    except OSError as e:
        raise StateError(f"cannot read {path}: {common.reason(e)}") from None
    try:
        return State.from_bytes(data, str(path))
    except RecordError as e:
        aside = path.with_name(f"{path.name}.damaged-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}")
        try:
            os.replace(path, aside)
            common.fsync_directory(path.parent)
        except OSError as move:
            raise StateError(f"{e}; it could not be moved aside ({common.reason(move)}); "
                             "the agent stops until it is repaired") from None
        raise StateError(
            f"{e}. Kept it as {aside} and stopped: an empty state would forget the releases "
            f"that failed here. Repair it and move it back to {path}, or delete it to start "
            "with an empty state (docs/updates.md, \"State\")") from None


def save_state(state: State, path: Path = STATE) -> None:
    """Atomically and durably (common.write_atomic): a power cut leaves the old or the new
    state, never half of one; a failure (ENOSPC on /var) is a StateError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        common.write_atomic(path, state.to_bytes())
    except OSError as e:
        raise StateError(f"cannot save {path}: {common.reason(e)}") from None


class Ledger:
    """The state while a command runs: replaced record by record (`set`), saved on purpose."""

    def __init__(self, state: State, path: Path = STATE) -> None:
        self.state = state
        self.path = path

    def set(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def save(self) -> None:
        save_state(self.state, self.path)

    def saved(self) -> bool:
        """save(), for the end of a command: False (the error logged) when it cannot."""
        try:
            self.save()
        except StateError as e:
            error(str(e))
            return False
        return True


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------
# Versions: systemd's order (versions.py, shared with `sonix release`)


def newer(a: str, b: str) -> bool:
    return compare_versions(a, b) > 0


# ------------------------------------------------------------------------------------------
# The running system: booted release, disk and slots, ESP and boot entries


def booted_version(os_release: Path = Path("/usr/lib/os-release")) -> str:
    for line in os_release.read_text().splitlines():
        if line.startswith("IMAGE_VERSION="):
            return line.split("=", 1)[1].strip().strip('"')
    raise UpdateError(f"{os_release} has no IMAGE_VERSION")


def usr_partitions(usr: Path = Path("/usr"), sys: Path = Path("/sys")) -> set[tuple[str, int]]:
    """(disk, partition number) of the partitions behind the mounted /usr: the dm-verity
    device's data and hash partitions. Read from the mount, not from `usrhash=`, because after
    a soft-reboot the kernel command line still names the release booted before."""
    st = os.stat(usr)
    device = (sys / "dev/block" / f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}").resolve()
    below = sorted((device / "slaves").iterdir()) if (device / "slaves").is_dir() else [device]
    found = set()
    for part in below:
        part = part.resolve()
        if (part / "partition").is_file():
            found.add((part.parent.name, int((part / "partition").read_text())))
    if not found:
        raise UpdateError(f"cannot tell which partition /usr is mounted from ({device})")
    return found


@dataclass(frozen=True)
class Slots:
    disk: Path
    booted_usr: gpt.Partition
    booted_verity: gpt.Partition
    other_usr: gpt.Partition
    other_verity: gpt.Partition

    def device(self, partition: gpt.Partition) -> Path:
        disk = str(self.disk)
        return Path(f"{disk}p{partition.number}" if disk[-1].isdigit() else
                    f"{disk}{partition.number}")


def find_slots(booted: set[tuple[str, int]], dev: Path = Path("/dev")) -> Slots:
    """The disk with the booted usr partition (`booted`: see usr_partitions) and its two usr
    slots; slots pair up in table order (usr A, verity A, usr B, verity B)."""
    for disk_name in sorted({name for name, _ in booted}):
        disk = dev / disk_name
        try:
            table = gpt.read(disk)
        except (OSError, gpt.GptError) as e:
            raise UpdateError(f"cannot read the partition table of {disk}: {e}") from e
        usr = [p for p in table if p.type == gpt.TYPE_USR]
        verity = [p for p in table if p.type == gpt.TYPE_USR_VERITY]
        index = next((i for i, p in enumerate(usr) if (disk_name, p.number) in booted), None)
        if index is None:
            continue
        if len(usr) != 2 or len(verity) != 2:
            raise UpdateError(f"{disk} has {len(usr)} usr and {len(verity)} usr-verity "
                              "partitions; A/B updates need two of each")
        return Slots(disk, usr[index], verity[index], usr[1 - index], verity[1 - index])
    raise UpdateError(f"none of {sorted(booted)} is a usr partition")


def find_esp() -> Path:
    for candidate in (Path("/efi"), Path("/boot")):
        if (candidate / "EFI").is_dir():  # is_dir() also triggers the automount
            return candidate
    raise UpdateError("the ESP is not mounted at /efi or /boot")


@dataclass(frozen=True)
class Entry:
    path: Path
    version: str
    left: int | None  # tries left; None: no counter (blessed, or never counted)
    done: int

    @property
    def bad(self) -> bool:
        return self.left == 0


def boot_entries(esp: Path, name: str) -> list[Entry]:
    # Versions hold no `+` and no `_` (records.VERSION_RE): the counter and another image's
    # entries (`<name>_x_1.efi`) cannot pass for a version.
    pattern = re.compile(rf"^{re.escape(name)}_({VERSION_PATTERN})(?:\+(\d+)(?:-(\d+))?)?\.efi$")
    entries = []
    directory = esp / "EFI/Linux"
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        match = pattern.match(path.name)
        if match:
            left = int(match[2]) if match[2] is not None else None
            entries.append(Entry(path, match[1], left, int(match[3] or 0)))
    return entries


# ------------------------------------------------------------------------------------------
# The channel: the signed index (serial, expiry), manifests, release files


def fetch_small(url: str, max_bytes: int) -> bytes:
    """A small file of the channel, capped and with one deadline for all its tries."""
    try:
        return common.http_get_retrying(url, max_bytes=max_bytes,
                                        deadline=Deadline.after(SMALL_FILE_SECONDS))
    except common.HTTPStatusError as e:
        if e.status == 404 and url.endswith("/" + SIGNED_INDEX):
            raise UpdateError(
                f"{url} is missing: the channel was published by a sonix release older than "
                "issue 14 (no signed serial and expiry). Re-publish it with the current "
                "`sonix release` (or run `sonix channel renew` on it); nothing installed"
            ) from None
        raise UpdateError(f"cannot download {e}") from None
    except FetchError as e:
        raise UpdateError(f"cannot download {e}") from None


def verify_index(signed: bytes, keyrings: tuple[Path, ...], workdir: Path) -> bytes:
    """The text that gpgv found signed by a trusted key in the clearsigned index: only what
    gpgv writes out is used, never the file itself (text around the signed part is ignored)."""
    source, text = workdir / "index.signed", workdir / "index.txt"
    source.write_bytes(signed)
    text.unlink(missing_ok=True)
    keys = [arg for k in keyrings for arg in ("--keyring", str(k))]
    try:
        common.run(["gpgv", *keys, "--output", str(text), str(source)], timeout=GPGV_SECONDS)
        return text.read_bytes()
    except (common.CommandError, OSError) as e:
        names = ", ".join(map(str, keyrings))
        raise UpdateError(f"the channel's {SIGNED_INDEX} signature is not valid for the "
                          f"trusted keys ({names}); nothing installed:\n{e}") from None


def fetch_index(cfg: Config, ledger: Ledger) -> SignedIndex:
    """The channel's signed index, after gpgv, the serial and the expiry accepted it."""
    signed = fetch_small(cfg.channel + SIGNED_INDEX, INDEX_MAX)
    with tempfile.TemporaryDirectory(prefix="sonix-update.") as tmp:
        text = verify_index(signed, cfg.keyrings, Path(tmp))
    try:
        index = SignedIndex.from_text(text.decode("utf-8"))
    except (RecordError, UnicodeDecodeError) as e:
        raise UpdateError(f"the channel's signed index is malformed: {e}") from None
    return accept_index(ledger, index, dt.datetime.now(dt.UTC))


def accept_index(ledger: Ledger, index: SignedIndex, moment: dt.datetime) -> SignedIndex:
    """Refuse a replayed index (a serial below the highest this machine accepted) and an
    expired one (a frozen channel), recording what was seen; then record the accepted serial
    durably, before anything is taken from the channel."""
    if not index.serial:
        raise UpdateError(
            "the channel's signed index has no serial and expiry: it was published by a "
            "sonix release older than issue 14. Re-publish it with the current `sonix "
            "release` (or run `sonix channel renew` on it); nothing installed")
    seen = ledger.state.channel
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if seen is not None and index.serial < seen.serial:
        ledger.set(channel=replace(seen, checked=stamp, status="replayed"))
        raise UpdateError(
            f"replayed channel: its serial {index.serial} is lower than {seen.serial}, which "
            "this machine accepted before; the server (or someone between) serves an old "
            "copy of the channel. Nothing installed")
    expiry = index.expiry()
    if expiry is not None and expiry <= moment:
        ledger.set(channel=ChannelSeen(index.serial, index.expires, stamp, "expired"))
        raise UpdateError(
            f"the channel expired at {index.expires} (serial {index.serial}): its publisher "
            "has not renewed it (`sonix channel renew`), or someone serves a frozen copy. "
            "Nothing installed")
    ledger.set(channel=ChannelSeen(index.serial, index.expires, stamp, "current"))
    ledger.save()  # the highest serial is durable before anything is taken from it
    return index


def fetch_manifest(cfg: Config, index: SignedIndex, version: str) -> Manifest:
    """The manifest of `version`, hash-checked against the index and read into a Manifest
    (every field checked); its name and version must be the ones asked for."""
    file = f"{cfg.name}_{version}.json"
    data = fetch_small(cfg.channel + file, MANIFEST_MAX)
    if hashlib.sha256(data).hexdigest() != index.files.get(file):
        raise UpdateError(f"{file} does not match SHA256SUMS; nothing installed")
    try:
        manifest = Manifest.from_bytes(data, file)
    except RecordError as e:
        raise UpdateError(f"{e}; nothing installed") from None
    if (manifest.name, manifest.version) != (cfg.name, version):
        raise UpdateError(f"{file} describes {manifest.name} {manifest.version}, not "
                          f"{cfg.name} {version}; nothing installed")
    for spec in manifest.files.values():
        if index.files.get(spec.name) != spec.sha256:
            raise UpdateError(f"{spec.name} is not in SHA256SUMS with the manifest's hash")
    return manifest


class HashingWriter:
    """A file-like target that hashes and counts what goes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.digest, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:  # an unbuffered device may take part of it
            written = self.out.write(view)
            view = view[written if written is not None else len(view):]
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def stream(url: str, out: BinaryIO, expect_size: int, expect_sha256: str,
           deadline: Deadline) -> None:
    """Download url into out while hashing (at most expect_size bytes, within deadline);
    a size or hash mismatch and a cut connection are UpdateErrors, a failed write an OSError."""
    writer = HashingWriter(out)
    try:
        common.http_get(url, max_bytes=expect_size, deadline=deadline,
                        out=writer)  # type: ignore[arg-type]
    except FetchError as e:
        raise UpdateError(f"download failed: {e}; not installed") from None
    # An OSError of the target (ENOSPC) goes to the caller, which knows what it wrote to.
    if writer.size != expect_size or writer.digest.hexdigest() != expect_sha256:
        raise UpdateError(f"{url}: {writer.size} bytes with sha256 {writer.digest.hexdigest()}"
                          f", the manifest says {expect_size} bytes with {expect_sha256}; "
                          "not installed")


# ------------------------------------------------------------------------------------------
# Delta updates (issue 17): the release's files assembled from chunks this machine has


def usr_device(usr: Path = Path("/usr")) -> Path:
    """The block device mounted on /usr: the booted release's dm-verity device, so its bytes
    are checked by the kernel as they are read (a seed needs no trust, but no surprises)."""
    st = os.stat(usr)
    number = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    by_number = Path("/dev/block") / number
    if by_number.exists():  # udev's link
        return by_number
    try:
        name = (Path("/sys/dev/block") / number / "dm/name").read_text().strip()
        return Path("/dev/mapper") / name
    except OSError:
        return by_number  # planning notes that it cannot be opened


def fetch_chunk_index(cfg: Config, index: SignedIndex, version: str
                      ) -> tuple[ChunkIndex, int] | None:
    """`<name>_<version>.chunks` from the channel, checked against SHA256SUMS like every
    release file, and its size; None when the channel lists none for that release. A listed
    index that cannot be downloaded or read is a ChunkError."""
    file = chunks.index_name(cfg.name, version)
    listed = index.files.get(file)
    if listed is None:
        return None
    try:
        data = common.http_get_retrying(cfg.channel + file, max_bytes=chunks.MAX_INDEX_BYTES,
                                        deadline=Deadline.after(SMALL_FILE_SECONDS))
    except FetchError as e:
        raise ChunkError(f"cannot download {e}") from None
    if hashlib.sha256(data).hexdigest() != listed:
        raise ChunkError(f"{file} does not match SHA256SUMS")
    try:
        found = ChunkIndex.from_bytes(data, file)
    except RecordError as e:
        raise ChunkError(str(e)) from None
    if (found.name, found.version) != (cfg.name, version):
        raise ChunkError(f"{file} describes {found.name} {found.version}")
    return found, len(data)


class FullWriter:
    """`out` (an unbuffered file) for chunks.assemble: every write is written whole."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            written = self.out.write(view)
            view = view[written if written is not None else len(view):]
        return len(data)

    def flush(self) -> None:
        self.out.flush()

    def tell(self) -> int:
        return self.out.tell()

    def fileno(self) -> int:
        return self.out.fileno()


def ahead_of_writing(the_plan: chunks.Plan, destination: Path) -> chunks.Plan:
    """The plan, with chunks read from the file being written (the other slot, a seed of its
    own new content) downloaded instead when the sequential write has passed their place."""
    steps = []
    for (offset, _), step in zip(the_plan.part.extents(), the_plan.steps, strict=True):
        if (step.path is not None and step.offset is not None and step.offset < offset
                and step.path == destination):
            step = chunks.Step(step.chunk)
        steps.append(step)
    return replace(the_plan, steps=tuple(steps))


@dataclass
class Delta:
    """The target release's chunk index and the seeds this machine holds: writes each release
    file from them (chunks.plan, chunks.assemble), counting what it downloads."""

    cfg: Config
    target: ChunkIndex
    seeds: tuple[chunks.Seed, ...]
    directory: Path  # the kept chunk indexes
    keep: tuple[str, ...]  # versions whose indexes stay (the booted one)
    deadline: Deadline
    fetched: int = 0  # bytes of chunks and chunk indexes downloaded
    whole: int = 0  # bytes of files downloaded whole after all
    sizes: int = 0  # bytes of the release's files

    def fetch(self, path: str, cap: int) -> bytes:
        data = common.http_get_retrying(self.cfg.channel + path, max_bytes=cap,
                                        deadline=self.deadline)
        self.fetched += len(data)
        return data

    def write(self, role: str, out: BinaryIO, spec: FileSpec,
              destination: Path | None = None) -> bool:
        """Assemble the release file `spec` (chunks.PARTS `role`) into `out` from its start:
        True when its size and sha256 are the manifest's, False (the reason in the journal)
        when the caller is to download it whole. OSErrors of `out` go to the caller."""
        self.sizes += spec.size
        try:
            the_plan = chunks.plan(self.target.parts[role], self.seeds)
            if destination is not None:
                the_plan = ahead_of_writing(the_plan, destination)
            if the_plan.notes:
                log(f"{spec.name}: {'; '.join(the_plan.notes)}")
            chunks.assemble(the_plan, FullWriter(out), self.fetch,  # type: ignore[arg-type]
                            spec.size, spec.sha256, max_download=spec.size)
        except ChunkError as e:
            warn(f"{spec.name}: delta update failed ({e}); downloading the full file instead")
            self.whole += spec.size
            return False
        log(f"{spec.name}: assembled from chunks: {the_plan.download_bytes} bytes downloaded "
            f"in {len(the_plan.downloads)} chunks, {the_plan.seeded_bytes} of its {spec.size} "
            "bytes from this machine")
        return True

    def finish(self, manifest: Manifest) -> None:
        """After the install: the figures in the journal, the new release's index kept (a seed
        of the next update), the indexes of releases no longer on this machine deleted."""
        percent = 100 * (self.fetched + self.whole) / max(1, self.sizes)
        log(f"delta update of {self.cfg.name} {manifest.version}: downloaded "
            f"{self.fetched} bytes of chunks and chunk indexes and {self.whole} bytes of whole "
            f"files, for {self.sizes} bytes of release files ({percent:.2f} %)")
        keep = {chunks.index_name(self.cfg.name, v) for v in (*self.keep, manifest.version)}
        try:
            chunks.save_index(self.directory, self.target)
            for path in self.directory.iterdir():
                if path.name.endswith(".chunks") and path.name not in keep:
                    path.unlink()
        except OSError as e:
            warn(f"cannot keep the chunk index in {self.directory}: {common.reason(e)} (the "
                 "next update downloads more)")


def release_seeds(cfg: Config, slots: Slots, esp: Path, booted: str
                  ) -> dict[str, list[tuple[str, Path, str]]]:
    """The release files on this machine, by version: (role, path, what). The booted usr slot
    through its verity device, its verity partition; the other slot, whose label names its
    release (an emptied slot's content is unknown); the UKIs on the ESP."""
    found: dict[str, list[tuple[str, Path, str]]] = {booted: [
        ("usr", usr_device(), f"the booted usr slot ({booted})"),
        ("verity", slots.device(slots.booted_verity), f"the booted verity partition ({booted})"),
    ]}
    label = re.fullmatch(rf"{re.escape(cfg.name)}_({VERSION_PATTERN})", slots.other_usr.name)
    if label and label[1] != booted:
        found[label[1]] = [
            ("usr", slots.device(slots.other_usr), f"the other usr slot ({label[1]})"),
            ("verity", slots.device(slots.other_verity),
             f"the other verity partition ({label[1]})"),
        ]
    for entry in boot_entries(esp, cfg.name):
        found.setdefault(entry.version, []).append(("efi", entry.path, entry.path.name))
    return found


def prepare_delta(cfg: Config, state_directory: Path, index: SignedIndex | None,
                  manifest: Manifest, slots: Slots, esp: Path, deadline: Deadline
                  ) -> Delta | None:
    """A Delta when the channel has the release's chunk index and this machine has files of a
    release whose chunk index it knows (kept, or still in the channel); else None, and the
    journal says why the full files are downloaded."""
    name, version = cfg.name, manifest.version
    if index is None:
        return None
    directory = state_directory / CHUNK_INDEXES
    try:
        listed = fetch_chunk_index(cfg, index, version)
        if listed is None:
            log(f"no chunk index for {name} {version} in the channel: downloading the full "
                "files")
            return None
        target, fetched = listed
        booted = booted_version()
        seeds: list[chunks.Seed] = []
        missing = []
        for seed_version, files in release_seeds(cfg, slots, esp, booted).items():
            if seed_version == version:
                continue
            seed_index = chunks.load_index(directory, name, seed_version)
            if seed_index is None:
                published = fetch_chunk_index(cfg, index, seed_version)
                if published is not None:
                    seed_index, size = published
                    fetched += size
                    if seed_version == booted:  # kept for the next update (best effort)
                        with contextlib.suppress(OSError):
                            chunks.save_index(directory, seed_index)
            if seed_index is None:
                missing.append(seed_version)
                continue
            seeds.extend(chunks.Seed(path, seed_index.parts[role], what)
                         for role, path, what in files)
    except (ChunkError, OSError, UpdateError) as e:
        text = common.reason(e) if isinstance(e, OSError) else str(e)
        warn(f"delta update of {name} {version} not possible ({text}); downloading the full "
             "files")
        return None
    if not seeds:
        warn(f"delta update of {name} {version} not possible: no chunk index of the releases "
             f"on this machine ({', '.join(missing) or 'none'}), kept or in the channel; "
             "downloading the full files")
        return None
    if missing:
        log(f"no chunk index of {', '.join(missing)}: their files are no seeds")
    return Delta(cfg, target, tuple(seeds), directory, (booted,), deadline, fetched=fetched)


# ------------------------------------------------------------------------------------------
# Installing a release


def checkpoint(step: str) -> None:
    """Fault injection for the power-cut tests (tests/vm/test_updates.py): with
    SONIX_UPDATE_STOP_AT=<step> in its environment the agent says where it is in
    /run/sonix-update/stopped-at and waits there, to be killed with the whole machine."""
    if os.environ.get("SONIX_UPDATE_STOP_AT") == step:
        marker = Path("/run/sonix-update/stopped-at")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(step + "\n")
        log(f"stopped at {step} (SONIX_UPDATE_STOP_AT)", common.WARNING)
        while True:
            time.sleep(3600)


BLKZEROOUT = 0x127F  # _IO(0x12, 127): zero a byte range of a block device


def zero_fill(out: BinaryIO, start: int, end: int) -> None:
    """Zeros from start to end: BLKZEROOUT on a block device (the disk or hypervisor zeroes it
    without the data crossing the CPU: hundreds of MiB in a moment), written zeros otherwise."""
    if end <= start:
        return
    try:
        fcntl.ioctl(out.fileno(), BLKZEROOUT, struct.pack("QQ", start, end - start))
        return
    except OSError:
        pass  # not a block device, or no write-zeroes support
    out.seek(start)
    zeros, left = bytes(CHUNK), end - start
    while left > 0:
        left -= out.write(zeros[: min(left, CHUNK)])


def read_back_sha256(path: Path, size: int) -> str:
    """sha256 of the first `size` bytes as the disk holds them: the written pages are synced
    and then dropped from the page cache (POSIX_FADV_DONTNEED drops clean pages), so the read
    goes to the device rather than returning the bytes just written from memory."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        left = size
        while left > 0:
            chunk = os.read(fd, min(CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def write_slot(cfg: Config, device: Path, part: gpt.Partition, spec: SlotSpec,
               deadline: Deadline, delta: Delta | None = None, role: str = "usr") -> None:
    """The release file (from chunks when `delta` can, else downloaded whole), then zeros to
    the end of the slot (verity hashes all of it), then read back from the disk."""
    if spec.slot_size != part.size:
        raise UpdateError(
            f"{spec.file.name} needs a {spec.slot_size}-byte slot, {device} has {part.size} "
            "bytes: the release changed image.usrSlotSize/usrVeritySlotSize, which an "
            "installed machine cannot follow; reinstall or keep the slot sizes")
    try:
        with device.open("r+b", buffering=0) as out:
            if delta is None or not delta.write(role, out, spec.file, device):
                out.seek(0)
                stream(cfg.channel + spec.file.name, out, spec.file.size, spec.file.sha256,
                       deadline)
            zero_fill(out, spec.file.size, part.size)
            os.fsync(out.fileno())
        written = read_back_sha256(device, spec.file.size)
    except OSError as e:
        raise UpdateError(f"writing {device} failed: {common.reason(e)}; not installed") from None
    if written != spec.file.sha256:
        raise UpdateError(f"{device} does not read back what was written; not installed")


def write_uki(cfg: Config, partial: Path, spec: FileSpec, deadline: Deadline,
              verified: Path | None = None, delta: Delta | None = None) -> None:
    """The UKI into a temporary file on the ESP, synced and read back; on any failure (a full
    ESP) the temporary file is removed again and the ESP holds what it held before. Copied
    from `verified` (downloaded and checked by fetch_signed_uki) when given, else assembled
    from chunks (`delta`) or downloaded."""
    size, sha256 = spec.size, spec.sha256
    try:
        with partial.open("w+b") as out:
            if verified is None:
                fetch_file(cfg, out, spec, deadline, delta)
            else:
                with verified.open("rb") as source:
                    shutil.copyfileobj(source, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        if read_back_sha256(partial, size) != sha256:
            raise UpdateError(f"{partial} does not read back what was written; not installed")
    except OSError as e:
        partial.unlink(missing_ok=True)
        full = " (the ESP is full)" if e.errno == errno.ENOSPC else ""
        raise UpdateError(f"writing {partial}{full} failed: {common.reason(e)}; "
                          "not installed") from None
    except UpdateError:
        partial.unlink(missing_ok=True)
        raise


def check_signature(path: Path, certificate: Path, name: str) -> None:
    """sbverify: `path` carries an Authenticode signature made with the key of `certificate`
    (the image's db) over its present content, as the firmware will check it at boot."""
    if not SBVERIFY.exists():
        raise UpdateError(f"{SBVERIFY} (sbsigntool) is missing from this image, so {name}'s "
                          "Secure Boot signature cannot be checked; not installed")
    try:
        common.run([str(SBVERIFY), "--cert", str(certificate), str(path)],
                   timeout=SBVERIFY_SECONDS)
    except common.CommandError as e:
        said = " ".join(str(e).split())  # sbverify's lines, on one line of the status
        raise UpdateError(f"{name} is not signed by this machine's db certificate "
                          f"({certificate}): not installed ({said})") from None


def fetch_signed_uki(cfg: Config, spec: FileSpec, incoming: Path, deadline: Deadline,
                     delta: Delta | None = None) -> Path:
    """Secure Boot: the new UKI, downloaded (capped, within the deadline, hash-checked) into
    `incoming` and its signature checked against the image's db certificate, before anything
    on the ESP, the partition table or the slots changes. The ESP copy is made from it."""
    certificate = Path(cfg.secure_boot_certificate)
    if not certificate.is_file():
        raise UpdateError(
            f"this image was built with Secure Boot but its db certificate {certificate} is "
            "missing, so a new UKI's signature cannot be checked; nothing installed (the "
            "image is damaged: reinstall it, or build it again with boot.secureBoot)")
    path = incoming / spec.name
    try:
        with path.open("w+b") as out:
            fetch_file(cfg, out, spec, deadline, delta)
    except OSError as e:
        full = " (no space left for it)" if e.errno == errno.ENOSPC else ""
        raise UpdateError(f"writing {path}{full} failed: {common.reason(e)}; "
                          "nothing installed") from None
    check_signature(path, certificate, spec.name)
    log(f"{spec.name}: signed by the db certificate {certificate}")
    return path


@contextlib.contextmanager
def incoming_directory(state_directory: Path) -> Iterator[Path]:
    """<state directory>/incoming, private (0700) and empty: what a run interrupted by a power
    cut left there goes first, and what this run puts there goes at its end."""
    directory = state_directory / INCOMING
    shutil.rmtree(directory, ignore_errors=True)
    try:
        directory.mkdir(mode=0o700, parents=True)
    except OSError as e:
        raise UpdateError(f"cannot make {directory}: {common.reason(e)}; "
                          "nothing installed") from None
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def fetch_file(cfg: Config, out: BinaryIO, spec: FileSpec, deadline: Deadline,
               delta: Delta | None) -> None:
    """A release file into `out` (a new file, open for reading and writing): from chunks when
    `delta` can, else (or when that fails) the whole file from the channel."""
    if delta is None or not delta.write("efi", out, spec):
        out.seek(0)
        out.truncate()
        stream(cfg.channel + spec.name, out, spec.size, spec.sha256, deadline)


def install(cfg: Config, ledger: Ledger, manifest: Manifest, deadline: Deadline,
            index: SignedIndex | None = None) -> Entry:
    slots = find_slots(usr_partitions())
    esp = find_esp()
    delta = prepare_delta(cfg, ledger.path.parent, index, manifest, slots, esp, deadline)
    if not cfg.secure_boot_certificate:
        entry = write_release(cfg, ledger, manifest, deadline, delta=delta)
    else:
        # Secure Boot: the UKI first, checked before anything is written.
        with incoming_directory(ledger.path.parent) as incoming:
            verified = fetch_signed_uki(cfg, manifest.uki, incoming, deadline, delta)
            entry = write_release(cfg, ledger, manifest, deadline, verified, delta)
    if delta is not None:
        delta.finish(manifest)
    return entry


def write_release(cfg: Config, ledger: Ledger, manifest: Manifest, deadline: Deadline,
                  verified_uki: Path | None = None, delta: Delta | None = None) -> Entry:
    version = manifest.version
    slots = find_slots(usr_partitions())
    esp = find_esp()
    booted = booted_version()
    log(f"installing {cfg.name} {version} into {slots.device(slots.other_usr)}")

    # 1. Nothing may boot from the slot while it is rewritten: drop the boot entries of every
    #    release but the booted one, and mark the slot empty.
    for entry in boot_entries(esp, cfg.name):
        if entry.version != booted:
            entry.path.unlink()
            log(f"removed boot entry {entry.path.name} (its slot is about to be rewritten)")
    for partial in (esp / "EFI/Linux").glob(".*.efi.partial"):  # from an interrupted install
        partial.unlink()
    common.fsync_directory(esp / "EFI/Linux")
    gpt.update(slots.disk, {
        slots.other_usr.number: (slots.other_usr.uuid, EMPTY_LABEL),
        slots.other_verity.number: (slots.other_verity.uuid, EMPTY_LABEL),
    })

    # 2. The slot's data and hash tree, checked.
    checkpoint("slot-emptied")
    write_slot(cfg, slots.device(slots.other_usr), slots.other_usr, manifest.usr, deadline,
               delta, "usr")
    checkpoint("usr-written")
    write_slot(cfg, slots.device(slots.other_verity), slots.other_verity, manifest.verity,
               deadline, delta, "verity")

    # 3. The UKI next to its final place, checked (with Secure Boot: the copy of the one
    #    whose signature fetch_signed_uki checked).
    directory = esp / "EFI/Linux"
    partial = directory / f".{cfg.name}_{version}.efi.partial"
    write_uki(cfg, partial, manifest.uki, deadline, verified_uki, delta)

    # 4. The partition table: the UUIDs that the new usrhash= names, labels with the version.
    gpt.update(slots.disk, {
        slots.other_usr.number: (uuid.UUID(manifest.usr.partition_uuid), manifest.usr.label),
        slots.other_verity.number: (uuid.UUID(manifest.verity.partition_uuid),
                                    manifest.verity.label),
    })
    checkpoint("table-updated")

    # 5. Last, the boot entry, with a boot counter: from here on the new release boots.
    counter = f"+{cfg.tries}" if cfg.tries > 0 else ""
    final = directory / f"{cfg.name}_{version}{counter}.efi"
    durable_rename(partial, final)
    checkpoint("entry-installed")
    ledger.set(pending=Pending(version, now(), final.name))
    ledger.save()
    log(f"installed {cfg.name} {version} as {final.name}")
    return Entry(final, version, cfg.tries if cfg.tries > 0 else None, 0)


def durable_rename(source: Path, target: Path) -> None:
    """Rename on the ESP so that a power cut keeps the new name *and* the file's size. On vfat
    the size lives in the directory entry, and a rename makes a new entry that is written only
    with the file's inode: fsync the renamed file, then the directory (a test saw a 0-byte
    entry after a power cut with only the directory synced)."""
    os.replace(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    common.fsync_directory(target.parent)


# ------------------------------------------------------------------------------------------
# Reboot strategies and activation


def in_window(window: Window, moment: dt.datetime | None = None) -> tuple[bool, str]:
    """Whether `moment` (default now) is inside the maintenance window, and a description."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(window.time_zone)
    local = (moment or dt.datetime.now(dt.UTC)).astimezone(zone)
    hour, minute = (int(x) for x in window.start.split(":"))
    days = {d[:3].lower() for d in window.days}
    # The window that started today or yesterday (a window may cross midnight).
    for back in (0, 1):
        day = local.date() - dt.timedelta(days=back)
        start = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
        if days and start.strftime("%a").lower() not in days:
            continue
        if start <= local < start + dt.timedelta(minutes=window.minutes):
            return True, f"inside the maintenance window that started {start.isoformat()}"
    return False, (f"outside the maintenance window ({'/'.join(window.days) or 'daily'} "
                   f"{window.start} for {window.minutes} min, {window.time_zone})")


TOKEN_RE = re.compile(r"[\x21-\x7e]{1,4096}")  # printable, no spaces: one header value


def fleet_lock_headers(cfg: Config) -> dict[str, str]:
    """FleetLock's headers, with `Authorization: Bearer <token>` when updates.fleetLock
    .tokenFile names a file (read at each request, so a new token needs no restart)."""
    headers = {"fleet-lock-protocol": "true", "content-type": "application/json"}
    if cfg.fleet_lock_token_file:
        path = Path(cfg.fleet_lock_token_file)
        try:
            token = path.read_text()[:8192].strip()
        except (OSError, UnicodeDecodeError) as e:
            raise UpdateError(f"cannot read the FleetLock token file {path}: {e}") from None
        if not TOKEN_RE.fullmatch(token):
            raise UpdateError(f"the FleetLock token in {path} must be one line of printable "
                              "characters without spaces")
        headers["authorization"] = f"Bearer {token}"
    return headers


FLEET_LOCK_TIMEOUT = 30.0  # seconds for one FleetLock request, answer included
FLEET_LOCK_MAX_ANSWER = 64 * 1024  # bytes: a FleetLock answer is a small JSON object


def fleet_lock(cfg: Config, endpoint: str) -> bool:
    """POST a FleetLock request (as Zincati does); True when the server says yes."""
    try:
        machine_id = Path("/etc/machine-id").read_text().strip()
        headers = fleet_lock_headers(cfg)
    except (OSError, UpdateError) as e:
        warn(f"FleetLock {endpoint}: {e}")
        return False
    body = json.dumps({"client_params": {"id": machine_id, "group": cfg.fleet_lock_group}})
    url = f"{cfg.fleet_lock_url}/v1/{endpoint}"
    try:
        answer = common.http_request(
            "POST", url, body=body.encode(), max_bytes=FLEET_LOCK_MAX_ANSWER,
            deadline=common.Deadline.after(FLEET_LOCK_TIMEOUT), follow_redirects=False,
            headers=headers,
        )
    except common.FetchError as e:
        warn(f"FleetLock server {cfg.fleet_lock_url} unreachable: {e}")
        return False
    if answer.status != 200:
        log(f"FleetLock {endpoint}: {answer.status} {answer.body[:200].decode(errors='replace')}")
    return answer.status == 200


def may_reboot(cfg: Config) -> tuple[bool, str]:
    """Whether the strategy allows a reboot now, and the decision in words."""
    if cfg.strategy == "immediate":
        return True, "reboot now (strategy immediate)"
    if cfg.strategy == "off":
        log("strategy off: the new release starts at the next reboot")
        return False, "deferred (strategy off)"
    if cfg.strategy == "maintenance-window":
        if cfg.window is None:
            raise UpdateError("strategy maintenance-window without a window")
        inside, why = in_window(cfg.window)
        log(f"reboot {'now' if inside else 'deferred'}: {why}")
        return inside, f"reboot {'now' if inside else 'deferred'}: {why}"
    if cfg.strategy == "fleet-lock":
        granted = fleet_lock(cfg, "pre-reboot")
        log("FleetLock: reboot slot " + ("granted" if granted else "not granted; waiting"))
        return granted, "reboot slot " + ("granted" if granted else "refused")
    raise UpdateError(f"unknown strategy {cfg.strategy!r}")


TRIAL = Path("/var/lib/sonix-update/trial")  # a release activated without systemd-boot
KEXEC = Path("/usr/sbin/kexec")
KEXEC_LOADED = Path("/sys/kernel/kexec_loaded")  # the running kernel can kexec
# The UEFI global variable SecureBoot: 4 bytes of attributes, then 1 when the firmware
# enforces Secure Boot.
SECURE_BOOT = Path("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c")


def without_usrhash(cmdline: str) -> str:
    return re.sub(r"\s*\busrhash=\S+", "", cmdline).strip()


def secure_boot_on() -> bool:
    """Whether the firmware booted this machine with Secure Boot enforced."""
    try:
        data = SECURE_BOOT.read_bytes()
    except OSError:
        return False  # no EFI variables (a BIOS boot, a container): no Secure Boot
    return len(data) >= 5 and data[4] == 1


def emulated_cpu() -> bool:
    """True on a fully emulated CPU (QEMU without KVM: systemd-detect-virt says `qemu`; with
    KVM it says `kvm`). There a kexec'd kernel starts several times slower than one started by
    the firmware (measured: unpacking the initrd 54.7 s after kexec, 3.9 s after a firmware
    boot; docs/benchmarks/updates.md), while the firmware itself takes seconds."""
    try:
        detected = subprocess.run(["systemd-detect-virt", "--vm"], capture_output=True,
                                  text=True, check=False, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return False
    return detected == "qemu"


def activation_method(cfg: Config, esp: Path, booted: str, new: Entry) -> tuple[str, str]:
    """The cheapest activation that is correct, and why:
    - soft-reboot when the kernel, the initrd and the rest of the command line are the same
      (only /usr changed: userspace restarts on the running kernel with the new /usr);
    - kexec when they differ and kexec-tools is there (the firmware is skipped), except on an
      emulated CPU, where a firmware reboot is faster (updates.activation = kexec insists),
      and never under Secure Boot (below);
    - reboot otherwise, or when updates.activation = reboot, or when a UKI cannot be read
      (the firmware and systemd-boot judge it then, and boot counting rolls back)."""
    try:
        return choose_activation(cfg, esp, booted, new)
    except (uki.NotAUki, OSError) as e:
        return "reboot", f"cannot compare the UKIs ({e}): a plain reboot"


def choose_activation(cfg: Config, esp: Path, booted: str, new: Entry) -> tuple[str, str]:
    if cfg.activation == "reboot":
        return "reboot", "configured (updates.activation = reboot)"
    current = next((e for e in boot_entries(esp, cfg.name) if e.version == booted), None)
    if current is None:
        return "reboot", "the booted release has no boot entry to compare with"
    if (uki.boot_digests(current.path) == uki.boot_digests(new.path)
            and without_usrhash(uki.cmdline(current.path)) == without_usrhash(
                uki.cmdline(new.path))):
        return "soft-reboot", "kernel, initrd and command line unchanged: only /usr changed"
    if secure_boot_on():
        # Measured (docs/updates.md, "Activation"): the kernel, locked down by Secure Boot,
        # takes only kexec_file_load and checks the new kernel's signature against its own
        # keyrings and db (.platform). Debian's kernel is signed by Debian's Secure Boot CA,
        # which is in neither when db holds the owner's certificate only:
        # "kexec_file_load failed: Required key not available" (ENOKEY).
        insisted = " (updates.activation = kexec cannot apply)" if cfg.activation == "kexec" else ""
        return "reboot", ("the kernel or initrd changed; under Secure Boot the locked-down "
                          "kernel refuses to kexec Debian's kernel (not signed by a key in "
                          f"db), so the firmware boots it{insisted}")
    if not KEXEC.exists():
        return "reboot", "the kernel or initrd changed (no kexec-tools in the image)"
    if not KEXEC_LOADED.exists():
        return "reboot", "the kernel or initrd changed (the running kernel cannot kexec)"
    if cfg.activation == "kexec":
        return "kexec", "the kernel or initrd changed (updates.activation = kexec)"
    if emulated_cpu():
        return "reboot", ("the kernel or initrd changed; on an emulated CPU a kexec'd kernel "
                          "starts slower than the firmware boots one")
    return "kexec", "the kernel or initrd changed; kexec skips the firmware"


def prepare_soft_reboot(entry: Entry) -> None:
    """/run/nextroot: the root file system with the new release's /usr (its dm-verity device,
    opened with the root hash from the new UKI) mounted on it. systemctl soft-reboot switches
    into it; the kernel and its command line stay (the next full boot reads the new UKI)."""
    usrhash = re.search(r"\busrhash=([0-9a-f]{64})\b", uki.cmdline(entry.path))
    if not usrhash:
        raise UpdateError(f"{entry.path} has no usrhash= on its command line")
    slots = find_slots(usr_partitions())
    name = f"usr-{entry.version}"
    nextroot = Path("/run/nextroot")
    common.run(["/usr/lib/systemd/systemd-veritysetup", "attach", name,
                str(slots.device(slots.other_usr)), str(slots.device(slots.other_verity)),
                usrhash[1]], timeout=120)
    nextroot.mkdir(parents=True, exist_ok=True)
    common.run(["mount", "--bind", "/", str(nextroot)], timeout=60)
    common.run(["mount", "-t", "erofs", "-o", "ro", f"/dev/mapper/{name}",
                str(nextroot / "usr")], timeout=120)


def prepare_kexec(entry: Entry) -> None:
    """Load the new UKI's kernel, initrd and command line for `systemctl kexec`."""
    work = Path("/run/sonix-update/kexec")
    work.mkdir(parents=True, exist_ok=True)
    (work / "linux").write_bytes(uki.section_bytes(entry.path, ".linux"))
    (work / "initrd").write_bytes(uki.section_bytes(entry.path, ".initrd"))
    # --kexec-file-syscall: the kernel checks the new kernel's signature under lockdown.
    common.run([str(KEXEC), "--kexec-file-syscall", "--load", str(work / "linux"),
                f"--initrd={work / 'initrd'}", f"--command-line={uki.cmdline(entry.path)}"],
               timeout=120)


def activate(cfg: Config, ledger: Ledger, entry: Entry) -> None:
    esp = find_esp()
    method, why = activation_method(cfg, esp, booted_version(), entry)
    log(f"activating {cfg.name} {entry.version} by {method}: {why}")
    pending = ledger.state.pending
    if pending is None or pending.version != entry.version:
        pending = Pending(entry.version, "?", entry.path.name)
    if method != "reboot":
        # systemd-boot does not count this boot: the agent assesses it (cmd_steady_state
        # blesses the entry; a failed health check reboots into systemd-boot's own trial).
        try:
            TRIAL.parent.mkdir(parents=True, exist_ok=True)
            common.write_atomic(TRIAL, (entry.version + "\n").encode())
            (prepare_soft_reboot if method == "soft-reboot" else prepare_kexec)(entry)
        except (common.CommandError, OSError, uki.NotAUki, UpdateError) as e:
            TRIAL.unlink(missing_ok=True)
            warn(f"{method} preparation failed ({e}); activating by reboot instead")
            method = "reboot"
    ledger.set(pending=replace(pending, activation=Activation(method, why, now())))
    ledger.save()
    try:
        common.run(["systemctl", "--no-block", method], timeout=60)
    except common.CommandError as e:
        raise UpdateError(f"cannot activate: {e}") from None


# ------------------------------------------------------------------------------------------
# Commands


def run_deadline(cfg: Config) -> Deadline:
    """The deadline of every release download in one run: a little before systemd stops the
    unit (TimeoutStartSec= is updates.timeout too), so the agent ends with its own error."""
    return Deadline.after(max(60.0, cfg.timeout - 60.0))


def check_channel(cfg: Config, ledger: Ledger, booted: str, install_allowed: bool) -> str:
    """One check: the result in words. Installs and activates as allowed."""
    esp = find_esp()
    pending = next((e for e in boot_entries(esp, cfg.name)
                    if newer(e.version, booted) and not e.bad), None)
    if pending is None:
        index = fetch_index(cfg, ledger)
        failed = ledger.state.failed
        published = sorted(index.versions(cfg.name), key=version_key)
        candidates = [v for v in published if newer(v, booted) and v not in failed]
        skipped = [v for v in published if v in failed]
        if skipped:
            log(f"not installing release(s) that failed here before: {', '.join(skipped)}")
        if not candidates:
            log(f"up to date: {cfg.name} {booted} is the newest usable release")
            return f"up to date ({booted})"
        version = candidates[-1]
        log(f"found {cfg.name} {version} (booted {booted})")
        if not install_allowed:
            return f"found {version}"
        manifest = fetch_manifest(cfg, index, version)
        pending = install(cfg, ledger, manifest, run_deadline(cfg), index)
        result = f"installed {version}"
    else:
        result = f"{pending.version} installed, not yet active"
    if install_allowed:
        allowed, decision = may_reboot(cfg)
        record_check(ledger, booted, result, decision)
        if allowed:
            ledger.save()
            activate(cfg, ledger, pending)
    return result


def record_check(ledger: Ledger, booted: str, result: str, decision: str = "") -> None:
    at = ledger.state.last_check.at if ledger.state.last_check else now()
    ledger.set(last_check=Check(at, booted, result, decision))


def cmd_run(cfg: Config, ledger: Ledger, install_allowed: bool = True) -> int:
    """Every check, "up to date" included, ends with its time and result in the state."""
    booted = booted_version()
    ledger.set(last_check=Check(now(), booted, "running"))
    code = 0
    try:
        result = check_channel(cfg, ledger, booted, install_allowed)
    except StateError as e:
        error(f"{e}; stopped here (nothing is installed without its record)")
        return 1  # the state cannot be written: nothing more to record it in
    except (UpdateError, OSError, gpt.GptError, uki.NotAUki, RecordError) as e:
        text = str(e) if isinstance(e, UpdateError) else f"{type(e).__name__}: {e}"
        result, code = f"error: {text}", 1
        error(text)
    check = ledger.state.last_check
    ledger.set(last_check=Check(check.at if check else now(), booted, result,
                                check.decision if check else ""))
    if not ledger.saved():
        return 1
    return code


def cmd_assess(cfg: Config, ledger: Ledger) -> int:
    """At boot: a newer release whose tries are used up was rolled back from. The failure is
    saved durably *before* its boot entry goes: if the save fails (a full /var), the entry
    stays (with no tries left it does not boot) and the next boot records it again."""
    booted = booted_version()
    esp = find_esp()
    for entry in boot_entries(esp, cfg.name):
        if not (entry.bad and newer(entry.version, booted)):
            continue
        failure = HEALTH_FAILURES / f"failed-{entry.version}"
        try:
            reason = f"health check {failure.read_text()[:200].strip()} failed"
        except OSError:
            reason = f"it did not reach boot-complete.target in {entry.done} tries"
        record = Failure(entry.version, now(), reason, booted)
        pending = ledger.state.pending
        ledger.set(failed={**ledger.state.failed, entry.version: record}, last_rollback=record,
                   pending=None if pending and pending.version == entry.version else pending)
        if cfg.strategy == "fleet-lock":
            ledger.set(lock_hold=LockHold(entry.version, record.at,
                                          f"rolled back from {entry.version}: {reason}"))
        try:
            ledger.save()
        except StateError as e:
            error(f"{e}: the rollback from {entry.version} is not recorded yet, so its boot "
                  f"entry {entry.path.name} stays (no tries left: it does not boot) until a "
                  "boot can record it")
            return 1
        entry.path.unlink(missing_ok=True)
        common.fsync_directory(entry.path.parent)
        log(f"rolled back from {cfg.name} {entry.version} to {booted}: {reason}; "
            f"{entry.version} will not be installed again", common.ERR)
        if cfg.strategy == "fleet-lock":
            log("FleetLock: the reboot slot stays held, so the group's rollout stops; "
                "`sonix update release-lock` gives it back", common.ERR)
    ledger.set(booted=Boot(booted, now()))
    return 0 if ledger.saved() else 1


def cmd_steady_state(cfg: Config, ledger: Ledger) -> int:
    """After boot-complete.target: the booted release is good (and blessed). The FleetLock
    slot is released, unless a rollback holds it (then the fleet waits for an operator)."""
    booted = booted_version()
    if TRIAL.is_file() and TRIAL.read_text().strip() == booted:
        # Activated by soft-reboot or kexec: systemd-boot did not count this boot, so the
        # entry is blessed here, as systemd-bless-boot would have (its counter dropped).
        for entry in boot_entries(find_esp(), cfg.name):
            if entry.version == booted and entry.left is not None:
                blessed = entry.path.with_name(f"{cfg.name}_{booted}.efi")
                durable_rename(entry.path, blessed)
                log(f"blessed {blessed.name} (activated without a firmware boot)")
        TRIAL.unlink()
    pending = ledger.state.pending
    if pending is not None and pending.version == booted:
        log(f"{cfg.name} {booted} is good: update complete")
        ledger.set(pending=None)
    ledger.set(good=Boot(booted, now()))
    if not ledger.saved():
        return 1
    if cfg.strategy == "fleet-lock":
        hold = ledger.state.lock_hold
        if hold is not None:
            log(f"FleetLock: keeping the reboot slot ({hold.reason}, {hold.at}): the group "
                "stops here until an operator runs `sonix update release-lock`", common.WARNING)
            return 0
        # Until the server confirms, fail: the unit retries (Restart=on-failure).
        if not fleet_lock(cfg, "steady-state"):
            return 1
        log("FleetLock: reboot slot released")
    return 0


def cmd_release_lock(cfg: Config, ledger: Ledger) -> int:
    """The operator's decision after a rollback: give the FleetLock slot back, so the next
    machine of the group may update (after the release was withdrawn or replaced)."""
    if cfg.strategy != "fleet-lock":
        error(f"updates.strategy is {cfg.strategy}, not fleet-lock: no slot to release")
        return 1
    hold = ledger.state.lock_hold
    if not fleet_lock(cfg, "steady-state"):
        error(f"FleetLock: the server {cfg.fleet_lock_url} did not release the slot; "
              "try again")
        return 1
    ledger.set(lock_hold=None)
    try:
        ledger.save()
    except StateError as e:
        error(f"the slot was released, but {e}")
        return 1
    log("FleetLock: reboot slot released by the operator"
        + (f" (it was kept after: {hold.reason})" if hold else ""))
    return 0


def cmd_reboot_if_allowed(cfg: Config, ledger: Ledger, reason: str) -> int:
    """Another component needs a reboot (fwupd after a firmware update: hardware.fwupd): reboot
    through the firmware if updates.strategy allows it now, else leave it for later (the
    caller asks again, e.g. at the next window). A release that is installed and waiting is
    activated by the same reboot, which is what its strategy would have done too."""
    at = now()
    try:
        allowed, decision = may_reboot(cfg)
    except UpdateError as e:
        ledger.set(reboot_request=RebootRequest(at, reason, f"error: {e}"))
        error(f"reboot for {reason}: {e}")
        ledger.saved()
        return 1
    if not allowed:
        ledger.set(reboot_request=RebootRequest(at, reason, decision))
        log(f"{reason} needs a reboot; not now: {decision}")
        return 0 if ledger.saved() else 1
    ledger.set(reboot_request=RebootRequest(at, reason, f"reboot now (strategy {cfg.strategy})"))
    if not ledger.saved():
        return 1
    log(f"rebooting for {reason} (strategy {cfg.strategy})")
    # Always through the firmware: what a firmware update waits for happens there (a
    # soft-reboot or kexec would skip it).
    try:
        common.run(["systemctl", "--no-block", "reboot"], timeout=60)
    except common.CommandError as e:
        error(str(e))
        return 1
    return 0


def channel_report(seen: ChannelSeen, moment: dt.datetime) -> str:
    """The channel's signed index as last seen: serial, validity, or what was wrong."""
    if seen.status == "replayed":
        return (f"REPLAYED at {seen.checked}: an older index than serial {seen.serial} was "
                "served; nothing installed")
    expired = seen.status == "expired"
    if not expired and seen.expires:
        with_expiry = dt.datetime.strptime(seen.expires, "%Y-%m-%dT%H:%M:%SZ")
        expired = with_expiry.replace(tzinfo=dt.UTC) <= moment
    if expired:
        return (f"EXPIRED since {seen.expires} (serial {seen.serial}): nothing is installed "
                "until the publisher renews it (sonix channel renew)")
    return f"serial {seen.serial}, valid until {seen.expires} (checked {seen.checked})"


def status(cfg: Config, state: State) -> dict[str, Any]:
    booted = booted_version()
    report: dict[str, Any] = {"booted": booted, "channel": cfg.channel,
                              "strategy": cfg.strategy}
    try:
        slots = find_slots(usr_partitions())
        report["booted_slot"] = {"device": str(slots.device(slots.booted_usr)),
                                 "label": slots.booted_usr.name}
        report["other_slot"] = {"device": str(slots.device(slots.other_usr)),
                                "label": slots.other_usr.name}
        report["entries"] = [e.path.name for e in boot_entries(find_esp(), cfg.name)]
    except (UpdateError, OSError) as e:
        report["slots_error"] = str(e)
    recorded = state.to_json()
    for key in ("last_check", "pending", "good", "last_rollback", "failed", "reboot_request",
                "lock_hold"):
        if key in recorded:
            report[key] = recorded[key]
    if state.channel is not None:
        # The signed index as last seen (the key `channel` is the URL).
        report["channel_index"] = {**state.channel.to_json(), "report": channel_report(
            state.channel, dt.datetime.now(dt.UTC))}
    return report


def print_status(report: dict[str, Any]) -> None:
    rows = [("booted", f"{report['booted']}"
                       + (f" ({report['booted_slot']['device']})" if "booted_slot" in report
                          else ""))]
    if "other_slot" in report:
        rows.append(("other slot", f"{report['other_slot']['label']} "
                                   f"({report['other_slot']['device']})"))
    rows.append(("channel", f"{report['channel']} (strategy {report['strategy']})"))
    if "channel_index" in report:
        rows.append(("signed index", report["channel_index"]["report"]))
    check = report.get("last_check")
    rows.append(("last check", f"{check['at']}: {check.get('result', '?')}" if check
                 else "never"))
    if "pending" in report:
        rows.append(("pending", f"{report['pending']['version']} (installed "
                                f"{report['pending']['installed']})"))
    rollback = report.get("last_rollback")
    rows.append(("last rollback", f"{rollback['at']}: from {rollback['version']} to "
                                  f"{rollback['rolled_back_to']}: {rollback['reason']}"
                 if rollback else "none"))
    if report.get("failed"):
        rows.append(("never again", ", ".join(sorted(report["failed"], key=version_key))))
    if "lock_hold" in report:
        rows.append(("FleetLock", f"slot HELD since {report['lock_hold']['at']} "
                                  f"({report['lock_hold']['reason']}); "
                                  "`sonix update release-lock` gives it back"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key + ':':<{width + 1}} {common.escape(str(value))}")


COMMANDS = {"run", "check", "assess", "steady-state", "release-lock", "reboot-if-allowed"}


def main(argv: list[str]) -> int:
    if argv[:1] == ["status"]:
        try:
            cfg, state = load_config(), load_state()
        except UpdateError as e:
            error(str(e))
            return 1
        report = status(cfg, state)
        if "--json" in argv:
            print(json.dumps(report, indent=2, sort_keys=True))
        else:
            print_status(report)
        return 0
    if argv[:1] != ["update"] or len(argv) < 2 or argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    verb, options = argv[1], argv[2:]
    if options and not (verb == "reboot-if-allowed" and len(options) == 2
                        and options[0] == "--reason"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        cfg, state = load_config(), load_state()
    except UpdateError as e:
        error(f"{e}" if isinstance(e, StateError) else f"configuration: {e}")
        return 1
    ledger = Ledger(state)
    if verb == "run":
        return cmd_run(cfg, ledger)
    if verb == "check":
        return cmd_run(cfg, ledger, install_allowed=False)
    if verb == "assess":
        return cmd_assess(cfg, ledger)
    if verb == "steady-state":
        return cmd_steady_state(cfg, ledger)
    if verb == "release-lock":
        return cmd_release_lock(cfg, ledger)
    return cmd_reboot_if_allowed(cfg, ledger, options[1] if options else "unspecified")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
