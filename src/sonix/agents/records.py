"""The records that `sonix release` (host) and the update agent (machine) exchange or keep, as
frozen dataclasses, each with its one reader and writer (standard library only):

- `Manifest`: a release manifest `<name>_<version>.json` (docs/updates.md);
- `SignedIndex`: the channel's signed `SHA256SUMS`, with the serial and the expiry that
  protect machines from a replayed or frozen channel;
- `State`: the agent's `/var/lib/sonix-update/state.json`.

A reader never trusts its input: every field is checked for its type and form, and a wrong one
raises `RecordError` naming the JSON path (`files.usr.size`), so a hostile or damaged file
becomes a clear error, never a KeyError or a TypeError deep inside the agent.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

FORMAT = 1  # of the manifest

# image.name and image.version as they may appear in channel file names and boot entries.
# A version holds no `_` (the separator after the name, which may hold one) and no `+` (the
# boot counter after it, `<name>_<version>+3-1.efi`), so every file name splits one way only.
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
GPT_LABEL_MAX = 36  # UTF-16 code units in a GPT partition name
ROLES = ("uki", "usr", "verity")
SUFFIXES = {"uki": "efi", "usr": "usr", "verity": "verity"}


class RecordError(ValueError):
    """A record that does not have the form it must have; the message names the field."""


# ---- small readers -------------------------------------------------------------------------


def _get(data: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in data:
        raise RecordError(f"{path}{key} is missing")
    return data[key]


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(f"{path or 'the document'} must be a JSON object, not "
                          f"{type(value).__name__}")
    return value


def _str(data: Mapping[str, Any], key: str, path: str, pattern: re.Pattern[str] | None = None,
         max_len: int = 4096) -> str:
    value = _get(data, key, path)
    if not isinstance(value, str):
        raise RecordError(f"{path}{key} must be a string, not {type(value).__name__}")
    if len(value) > max_len:
        raise RecordError(f"{path}{key} is longer than {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise RecordError(f"{path}{key} {value[:80]!r} does not match {pattern.pattern}")
    return value


def _int(data: Mapping[str, Any], key: str, path: str, minimum: int = 0) -> int:
    value = _get(data, key, path)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{path}{key} must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise RecordError(f"{path}{key} must be at least {minimum}, not {value}")
    return value


def _opt_str(data: Mapping[str, Any], key: str, path: str) -> str:
    return _str(data, key, path) if key in data else ""


def parse_time(text: str, what: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise RecordError(f"{what} {text[:40]!r} is not a UTC time like "
                          "2026-12-01T12:00:00Z") from None


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(TIME_FORMAT)


def parse_json(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise RecordError(f"{what} is not valid JSON: {error}") from None


def file_names(name: str, version: str) -> dict[str, str]:
    """Role (uki, usr, verity, manifest) → file name, in publishing order."""
    names = {role: f"{name}_{version}.{suffix}" for role, suffix in SUFFIXES.items()}
    names["manifest"] = f"{name}_{version}.json"
    return names


# ---- the release manifest ------------------------------------------------------------------


@dataclass(frozen=True)
class FileSpec:
    """A file of a release: its name in the channel, size and sha256."""

    name: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}

    @staticmethod
    def from_json(value: Any, path: str) -> FileSpec:
        data = _object(value, path)
        return FileSpec(_str(data, "name", path), _int(data, "size", path),
                        _str(data, "sha256", path, SHA256_RE))


@dataclass(frozen=True)
class SlotSpec:
    """A release file that fills a partition: zeros after it up to `slot_size`, and the
    partition's UUID and label once it is written."""

    file: FileSpec
    slot_size: int
    partition_uuid: str
    label: str

    def to_json(self) -> dict[str, Any]:
        return {**self.file.to_json(), "slot_size": self.slot_size,
                "partition_uuid": self.partition_uuid, "label": self.label}

    @staticmethod
    def from_json(value: Any, path: str) -> SlotSpec:
        data = _object(value, path)
        spec = SlotSpec(FileSpec.from_json(data, path), _int(data, "slot_size", path, 1),
                        _str(data, "partition_uuid", path), _str(data, "label", path))
        try:
            uuid.UUID(spec.partition_uuid)
        except ValueError:
            raise RecordError(f"{path}partition_uuid {spec.partition_uuid[:60]!r} is not a "
                              "UUID") from None
        if len(spec.label) > GPT_LABEL_MAX or not spec.label.isprintable():
            raise RecordError(f"{path}label {spec.label[:60]!r} is not a partition label "
                              f"(printable, at most {GPT_LABEL_MAX} characters)")
        if spec.file.size > spec.slot_size:
            raise RecordError(f"{path}size {spec.file.size} is larger than its slot_size "
                              f"{spec.slot_size}")
        return spec


@dataclass(frozen=True)
class Manifest:
    """A release manifest (docs/updates.md, "Release manifest")."""

    name: str
    version: str
    usrhash: str
    kernel: str
    cmdline: str
    created: str
    uki: FileSpec
    usr: SlotSpec
    verity: SlotSpec
    linux_sha256: str
    initrd_sha256: str
    format: int = FORMAT

    @property
    def files(self) -> dict[str, FileSpec]:
        return {"uki": self.uki, "usr": self.usr.file, "verity": self.verity.file}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "name": self.name,
            "version": self.version,
            "usrhash": self.usrhash,
            "kernel": self.kernel,
            "cmdline": self.cmdline,
            "created": self.created,
            "files": {"uki": self.uki.to_json(), "usr": self.usr.to_json(),
                      "verity": self.verity.to_json()},
            "boot": {"linux_sha256": self.linux_sha256, "initrd_sha256": self.initrd_sha256},
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2) + "\n").encode()

    @staticmethod
    def from_json(value: Any) -> Manifest:
        """The manifest in `value` (parsed JSON), every field checked: types, forms, that its
        files are named after its name and version, and that the partition UUIDs are the
        halves of usrhash (the initrd finds the partitions by them)."""
        data = _object(value, "")
        version = _int(data, "format", "")
        if version != FORMAT:
            raise RecordError(f"format is {version}; this sonix reads manifest format {FORMAT}")
        files = _object(_get(data, "files", ""), "files")
        boot = _object(_get(data, "boot", ""), "boot")
        manifest = Manifest(
            name=_str(data, "name", "", NAME_RE, 64),
            version=_str(data, "version", "", VERSION_RE, 128),
            usrhash=_str(data, "usrhash", "", SHA256_RE),
            kernel=_str(data, "kernel", ""),
            cmdline=_str(data, "cmdline", ""),
            created=_str(data, "created", ""),
            uki=FileSpec.from_json(_get(files, "uki", "files."), "files.uki."),
            usr=SlotSpec.from_json(_get(files, "usr", "files."), "files.usr."),
            verity=SlotSpec.from_json(_get(files, "verity", "files."), "files.verity."),
            linux_sha256=_str(boot, "linux_sha256", "boot.", SHA256_RE),
            initrd_sha256=_str(boot, "initrd_sha256", "boot.", SHA256_RE),
        )
        names = file_names(manifest.name, manifest.version)
        for role, spec in manifest.files.items():
            if spec.name != names[role]:
                raise RecordError(f"files.{role}.name is {spec.name[:80]!r}, not "
                                  f"{names[role]!r} (the release's name and version)")
        halves = (manifest.usrhash[:32], manifest.usrhash[32:])
        for role, half, slot in (("usr", halves[0], manifest.usr),
                                 ("verity", halves[1], manifest.verity)):
            if uuid.UUID(slot.partition_uuid) != uuid.UUID(half):
                raise RecordError(f"files.{role}.partition_uuid is not the "
                                  f"{'first' if role == 'usr' else 'second'} half of usrhash")
        return manifest

    @staticmethod
    def from_bytes(data: bytes, what: str) -> Manifest:
        try:
            return Manifest.from_json(parse_json(data, what))
        except RecordError as error:
            raise RecordError(f"{what}: {error}") from None


# ---- the signed channel index (SHA256SUMS) --------------------------------------------------

SERIAL_KEY = "# sonix-channel-serial: "
EXPIRES_KEY = "# sonix-channel-expires: "
SUMS_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


@dataclass(frozen=True)
class SignedIndex:
    """What SHA256SUMS says: file name → sha256, and (from `sonix release` of issue 14 on)
    the channel's serial, which only ever grows, and the time after which it must not be
    trusted any more (TUF's timestamp role). Both are lines of the signed text, so the
    signature covers them. serial 0 / expires "": a channel from an older sonix."""

    files: Mapping[str, str]
    serial: int = 0
    expires: str = ""

    def to_text(self) -> str:
        """sha256sum's format, sorted by file name, after the two header lines (comments to
        sha256sum: `sha256sum -c` warns about them and checks the rest)."""
        head = ""
        if self.serial:
            head = f"{SERIAL_KEY}{self.serial}\n{EXPIRES_KEY}{self.expires}\n"
        return head + "".join(f"{self.files[name]}  {name}\n" for name in sorted(self.files))

    @staticmethod
    def from_text(text: str) -> SignedIndex:
        files: dict[str, str] = {}
        serial, expires = 0, ""
        for number, line in enumerate(text.splitlines(), 1):
            if line.startswith(SERIAL_KEY):
                value = line[len(SERIAL_KEY):]
                if not value.isdigit() or len(value) > 19 or serial:
                    raise RecordError(f"SHA256SUMS line {number}: a bad or second serial")
                serial = int(value)
            elif line.startswith(EXPIRES_KEY):
                if expires:
                    raise RecordError(f"SHA256SUMS line {number}: a second expiry")
                expires = line[len(EXPIRES_KEY):]
                parse_time(expires, f"SHA256SUMS line {number}: the expiry")
            elif match := SUMS_LINE.fullmatch(line):
                if match[2] in files:
                    raise RecordError(f"SHA256SUMS line {number}: {match[2]!r} listed twice")
                files[match[2]] = match[1].lower()
            else:
                raise RecordError(f"SHA256SUMS line {number} is not `<sha256>  <file>`: "
                                  f"{line[:80]!r}")
        if bool(serial) != bool(expires):
            raise RecordError("SHA256SUMS has a serial without an expiry or the other way")
        return SignedIndex(files, serial, expires)

    def expiry(self) -> dt.datetime | None:
        return parse_time(self.expires, "the channel's expiry") if self.expires else None

    def versions(self, name: str) -> list[str]:
        """The versions of image `name` whose manifest is listed (unordered). A file name
        that another image's name or a version outside VERSION_RE would also explain is no
        release of `name` (`sonix_x_1.json` is image `sonix_x`, not `sonix` version `x_1`)."""
        found = []
        for file in self.files:
            stem, dot, suffix = file.rpartition(".")
            if not dot or suffix != "json" or not stem.startswith(name + "_"):
                continue
            version = stem[len(name) + 1:]
            if VERSION_RE.fullmatch(version):
                found.append(version)
        return found


# ---- the agent's state ---------------------------------------------------------------------


def _record(cls: Any, data: Mapping[str, Any], path: str, ints: tuple[str, ...] = (),
            nested: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of a record of strings (and the integer fields `ints`; `nested` ones are
    read by the caller) from `data`; unknown keys are ignored (a newer agent may have written
    them), missing ones are empty."""
    values: dict[str, Any] = {}
    for name in cls.__dataclass_fields__:
        if name in nested:
            continue
        if name in ints:
            values[name] = _int(data, name, path) if name in data else 0
        else:
            values[name] = _opt_str(data, name, path)
    return values


class _FlatRecord:
    """A state record of plain fields: its JSON is its fields, read back by `_record` (strings,
    and the integer fields named in `_ints`)."""

    _ints: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, value: Any, path: str) -> Self:
        return cls(**_record(cls, _object(value, path), path + ".", ints=cls._ints))


@dataclass(frozen=True)
class Check(_FlatRecord):
    """The last check of the channel: when, on which booted release, and what came of it."""

    at: str
    booted: str = ""
    result: str = ""
    decision: str = ""  # the reboot strategy's, when it was asked

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class Activation(_FlatRecord):
    method: str
    why: str
    at: str


@dataclass(frozen=True)
class Pending:
    """A release installed and not yet assessed good."""

    version: str
    installed: str
    entry: str
    activation: Activation | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "installed": self.installed,
                               "entry": self.entry}
        if self.activation:
            out["activation"] = self.activation.to_json()
        return out

    @staticmethod
    def from_json(value: Any, path: str) -> Pending:
        data = _object(value, path)
        activation = (Activation.from_json(data["activation"], path + ".activation")
                      if "activation" in data else None)
        return Pending(**_record(Pending, data, path + ".", nested=("activation",)),
                       activation=activation)


@dataclass(frozen=True)
class Failure(_FlatRecord):
    """A release that was rolled back from here: never installed again."""

    version: str
    at: str
    reason: str
    rolled_back_to: str


@dataclass(frozen=True)
class Boot(_FlatRecord):
    """A release booted (`booted`) or assessed good (`good`)."""

    version: str
    at: str


@dataclass(frozen=True)
class ChannelSeen(_FlatRecord):
    """The newest signed channel index this machine accepted: a lower serial later is a
    replay. `status` is `current` or `expired` (as of `checked`)."""

    serial: int
    expires: str
    checked: str
    status: str = "current"

    _ints = ("serial",)


@dataclass(frozen=True)
class RebootRequest(_FlatRecord):
    at: str
    reason: str
    decision: str = ""


@dataclass(frozen=True)
class LockHold(_FlatRecord):
    """The FleetLock slot is kept after a rollback, until `sonix update release-lock`."""

    version: str
    at: str
    reason: str


@dataclass(frozen=True)
class State:
    """/var/lib/sonix-update/state.json. `failed` is the list that must never be lost."""

    last_check: Check | None = None
    pending: Pending | None = None
    booted: Boot | None = None
    good: Boot | None = None
    failed: Mapping[str, Failure] = field(default_factory=dict)
    last_rollback: Failure | None = None
    reboot_request: RebootRequest | None = None
    channel: ChannelSeen | None = None
    lock_hold: LockHold | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.__dataclass_fields__:
            value = getattr(self, key)
            if key == "failed":
                if value:
                    out[key] = {v: f.to_json() for v, f in value.items()}
            elif value is not None:
                out[key] = value.to_json()
        return out

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode()

    @staticmethod
    def from_json(value: Any) -> State:
        data = _object(value, "")
        readers: dict[str, Any] = {
            "last_check": Check, "pending": Pending, "booted": Boot, "good": Boot,
            "last_rollback": Failure, "reboot_request": RebootRequest,
            "channel": ChannelSeen, "lock_hold": LockHold,
        }
        values: dict[str, Any] = {key: reader.from_json(data[key], key)
                                  for key, reader in readers.items() if key in data}
        failed = _object(data.get("failed", {}), "failed")
        values["failed"] = {str(v): Failure.from_json(f, f"failed.{v}")
                            for v, f in failed.items()}
        return State(**values)

    @staticmethod
    def from_bytes(data: bytes, what: str) -> State:
        try:
            return State.from_json(parse_json(data, what))
        except RecordError as error:
            raise RecordError(f"{what}: {error}") from None
