"""Ignition v3 configs (specs 3.0.0 to 3.5.0): parse and validate (standard library only).

    config = parse(data)        # a frozen Config, or ConfigError with every problem
    problems = validate(data)   # the same checks; [] means the config would be applied

sonix reads the part of Ignition that describes files and accounts: `storage.files`,
`storage.directories`, `storage.links`, `systemd.units`, `passwd.users`, `passwd.groups` and
`ignition.timeouts`. Everything else the spec defines (disks, RAID, file systems, LUKS, config
merging, proxies, TLS, kernel arguments, HTTP headers) is rejected at its JSON path unless it is
absent or empty, and keys the spec does not define are errors, not warnings. A config is
rejected as a whole: nothing is applied unless every problem is fixed. Problems carry JSON
paths as ignition-validate prints them (`$.storage.files.0.mode`).

One table (`CONFIG` below) describes every spec: 3.x releases only ever added fields, so each
field records the version that introduced it, and a field newer than the config's declared
version is an error at its path. The table decides types, unknown keys, version gates and what
sonix does not support; the functions after it check meaning (paths, modes, names, hashes).

`data:` URLs are decoded here, decompressed when `compression` is `gzip`, limited to
MAX_FILE_SIZE per file and checked against `verification.hash`. `http(s):` sources stay URLs
(`RemoteSource`, listed by `Config.http_sources`) for the apply stage to fetch; it checks them
with `RemoteSource.decode`, so remote and inline contents obey the same rules.

docs/ignition.md lists what is supported per spec version and every difference from
ignition-validate. This file runs on the machine (trixie's python3) and on the host.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import posixpath
import re
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

SPEC_VERSIONS = ("3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0")
LATEST = SPEC_VERSIONS[-1]

# Decoded (and decompressed) contents of one file, its appended fragments included. Provisioning
# runs in the initrd, so everything is held in memory: configs carry small files, and large
# payloads belong in the image or behind an https URL.
MAX_FILE_SIZE = 16 * 1024 * 1024
# All inline (`data:`) contents of one config together.
MAX_INLINE_SIZE = 64 * 1024 * 1024

# Where the apply stage puts units (files, masks and drop-ins) and the enablement links that
# `enabled: true` stands for: sonix does not read [Install] sections (docs/architecture.md).
UNIT_DIR = "/etc/systemd/system"
WANTED_BY = "multi-user.target"

Version = tuple[int, int, int]
T = TypeVar("T")


# ------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class Problem:
    """One reason a config is rejected."""

    path: str  # JSON path as ignition-validate prints it, e.g. `$.storage.files.0.mode`
    message: str  # what is wrong, for a person

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(ValueError):
    """The config is malformed or invalid; `problems` lists every reason, sorted by path."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


# ------------------------------------------------------------------------------------------
# The result: what the apply stage writes


@dataclass(frozen=True)
class RemoteSource:
    """Contents the apply stage fetches over HTTP(S) and checks with `decode`."""

    url: str  # http:// or https:// URL
    hash: str | None  # `sha256-<hex>` or `sha512-<hex>` (lower case) of the decompressed data
    compression: str | None  # "gzip" or None: how the fetched bytes are compressed

    def decode(self, fetched: bytes) -> bytes:
        """The file contents from the fetched bytes: decompressed, size-limited and checked
        against the hash. Raises ValueError with a message for a person."""
        data, error = _decode(fetched, self.compression)
        error = error or _hash_error(data, self.hash)
        if error is not None:
            raise ValueError(f"{self.url}: {error}")
        return data


Contents = bytes | RemoteSource
Owner = int | str | None  # a user or group by id or by name; None: root (or unchanged)


@dataclass(frozen=True)
class File:
    """A regular file (`storage.files`)."""

    path: str  # absolute, normalised, not / and not below /usr
    contents: Contents | None  # None: no source (create empty if missing, keep if present)
    append: tuple[Contents, ...]  # fragments appended in order, after `contents`
    mode: int | None  # permission bits (0 to 0o7777); None: 0o644, or keep an existing file's
    user: Owner  # owner
    group: Owner  # group
    overwrite: bool  # replace whatever is at the path (only with a source)


@dataclass(frozen=True)
class Directory:
    """A directory (`storage.directories`)."""

    path: str  # absolute, normalised, not / and not below /usr
    mode: int | None  # permission bits; None: 0o755, or keep an existing directory's
    user: Owner  # owner
    group: Owner  # group
    overwrite: bool  # replace a non-directory at the path


@dataclass(frozen=True)
class Link:
    """A symbolic or hard link (`storage.links`)."""

    path: str  # absolute, normalised, not / and not below /usr
    target: str  # symlink: any non-empty text; hard link: an absolute path outside /usr
    hard: bool  # a hard link instead of a symlink
    user: Owner  # owner of a symlink (hard links take none)
    group: Owner  # group of a symlink
    overwrite: bool  # replace whatever is at the path


@dataclass(frozen=True)
class Dropin:
    """A drop-in of a unit: `UNIT_DIR/<unit>.d/<name>`."""

    name: str  # file name ending in .conf
    contents: str  # unit file syntax; may be empty


@dataclass(frozen=True)
class Unit:
    """A systemd unit (`systemd.units`)."""

    name: str  # valid unit name with a known type suffix, e.g. `web.service`, `getty@tty2.service`
    contents: str | None  # the unit file `UNIT_DIR/<name>`; None: the unit comes from the image
    enabled: bool  # True: a `UNIT_DIR/multi-user.target.wants/<name>` link; False: no link
    mask: bool  # True: `UNIT_DIR/<name>` is a link to /dev/null (no contents, drop-ins, enabled)
    dropins: tuple[Dropin, ...]  # drop-ins, names unique


@dataclass(frozen=True)
class User:
    """A user account (`passwd.users`): created if missing, else updated."""

    name: str  # login name (systemd's strict user name rules)
    should_exist: bool  # False: delete the account (then only `name` may be given; spec 3.2.0+)
    password_hash: str | None  # crypt(3) hash for /etc/shadow; None: unchanged (locked if new)
    ssh_authorized_keys: tuple[str, ...]  # one key per entry, unique
    uid: int | None  # None: allocated
    gecos: str | None  # comment field
    home_dir: str | None  # absolute; None: /home/<name>
    no_create_home: bool  # do not create the home directory
    primary_group: str | None  # group name; None: a group named like the user
    groups: tuple[str, ...]  # supplementary group names, unique
    no_user_group: bool  # do not create a group named like the user
    no_log_init: bool  # do not add the user to lastlog/faillog (useradd --no-log-init)
    shell: str | None  # absolute path of the login shell
    system: bool  # allocate the uid from the system range


@dataclass(frozen=True)
class Group:
    """A group (`passwd.groups`): created if missing."""

    name: str  # group name (systemd's strict rules)
    should_exist: bool  # False: delete the group (then only `name` may be given; spec 3.2.0+)
    gid: int | None  # None: allocated
    password_hash: str | None  # crypt(3) hash for /etc/gshadow
    system: bool  # allocate the gid from the system range


@dataclass(frozen=True)
class Timeouts:
    """`ignition.timeouts`, for the apply stage's HTTP fetches."""

    http_response_headers: int | None  # seconds to wait for response headers; None: 10; 0: none
    http_total: int | None  # seconds for a whole fetch with retries; None or 0: no limit


@dataclass(frozen=True)
class Config:
    """A valid config: everything the apply stage needs, nothing it must not do."""

    version: str  # the declared spec version, one of SPEC_VERSIONS
    files: tuple[File, ...]  # in config order
    directories: tuple[Directory, ...]  # in config order
    links: tuple[Link, ...]  # in config order
    units: tuple[Unit, ...]  # in config order
    users: tuple[User, ...]  # in config order
    groups: tuple[Group, ...]  # in config order
    timeouts: Timeouts = field(default_factory=lambda: Timeouts(None, None))

    @property
    def http_sources(self) -> tuple[RemoteSource, ...]:
        """Every remote source, file by file (contents before appended fragments): what the
        apply stage fetches before it writes anything."""
        return tuple(c for f in self.files for c in (f.contents, *f.append)
                     if isinstance(c, RemoteSource))


# ------------------------------------------------------------------------------------------
# The schema: one table for specs 3.0.0 to 3.5.0


STRING, INTEGER, BOOLEAN = "string", "integer", "boolean"


@dataclass(frozen=True)
class Field:
    type: Type  # STRING, INTEGER, BOOLEAN, an Object or a ListOf
    since: Version = (3, 0, 0)  # the spec that introduced the field
    supported: bool = True  # False: rejected unless absent or empty (null, [], {} of empties)


@dataclass(frozen=True)
class Object:
    fields: dict[str, Field]


@dataclass(frozen=True)
class ListOf:
    item: Type


Type = str | Object | ListOf


def _obj(**fields: Field | Type) -> Object:
    return Object({k: v if isinstance(v, Field) else Field(v) for k, v in fields.items()})


def _unsupported(type_: Type, since: Version = (3, 0, 0)) -> Field:
    return Field(type_, since, supported=False)


V3_1, V3_2, V3_3, V3_4, V3_5 = (3, 1, 0), (3, 2, 0), (3, 3, 0), (3, 4, 0), (3, 5, 0)

_HEADERS = ListOf(_obj(name=STRING, value=STRING))
_VERIFICATION = _obj(hash=STRING)
# File contents and appended fragments.
_RESOURCE = _obj(source=STRING, compression=STRING, verification=_VERIFICATION,
                 httpHeaders=_unsupported(_HEADERS, V3_1))
# Configs to merge or replace, CA bundles, key files (all unsupported): compression and
# headers came with 3.1.0.
_REFERENCE = _obj(source=STRING, verification=_VERIFICATION,
                  compression=Field(STRING, V3_1), httpHeaders=Field(_HEADERS, V3_1))
_OWNER = _obj(id=INTEGER, name=STRING)
_NODE = {"path": Field(STRING), "overwrite": Field(BOOLEAN), "user": Field(_OWNER),
         "group": Field(_OWNER)}
_STRINGS = ListOf(STRING)

CONFIG = _obj(
    ignition=_obj(
        version=STRING,
        timeouts=_obj(httpResponseHeaders=INTEGER, httpTotal=INTEGER),
        config=_unsupported(_obj(merge=ListOf(_REFERENCE), replace=_REFERENCE)),
        security=_unsupported(_obj(tls=_obj(certificateAuthorities=ListOf(_REFERENCE)))),
        proxy=_unsupported(_obj(httpProxy=STRING, httpsProxy=STRING, noProxy=_STRINGS), V3_1),
    ),
    storage=_obj(
        files=ListOf(Object({**_NODE, "contents": Field(_RESOURCE),
                             "append": Field(ListOf(_RESOURCE)), "mode": Field(INTEGER)})),
        directories=ListOf(Object({**_NODE, "mode": Field(INTEGER)})),
        links=ListOf(Object({**_NODE, "target": Field(STRING), "hard": Field(BOOLEAN)})),
        disks=_unsupported(ListOf(_obj(
            device=STRING, wipeTable=BOOLEAN,
            partitions=ListOf(_obj(
                label=STRING, number=INTEGER, sizeMiB=INTEGER, startMiB=INTEGER,
                typeGuid=STRING, guid=STRING, wipePartitionEntry=BOOLEAN, shouldExist=BOOLEAN,
                resize=Field(BOOLEAN, V3_2),
            )),
        ))),
        raid=_unsupported(ListOf(_obj(name=STRING, level=STRING, devices=_STRINGS,
                                      spares=INTEGER, options=_STRINGS))),
        filesystems=_unsupported(ListOf(_obj(
            device=STRING, format=STRING, path=STRING, wipeFilesystem=BOOLEAN, label=STRING,
            uuid=STRING, options=_STRINGS, mountOptions=Field(_STRINGS, V3_1),
        ))),
        luks=_unsupported(ListOf(_obj(
            name=STRING, device=STRING, keyFile=_REFERENCE, label=STRING, uuid=STRING,
            options=_STRINGS, wipeVolume=BOOLEAN,
            discard=Field(BOOLEAN, V3_4), openOptions=Field(_STRINGS, V3_4),
            clevis=_obj(
                tang=ListOf(_obj(url=STRING, thumbprint=STRING,
                                 advertisement=Field(STRING, V3_4))),
                tpm2=BOOLEAN, threshold=INTEGER,
                custom=_obj(pin=STRING, config=STRING, needsNetwork=BOOLEAN),
            ),
            cex=Field(_obj(enabled=BOOLEAN), V3_5),
        )), V3_2),
    ),
    systemd=_obj(units=ListOf(_obj(
        name=STRING, enabled=BOOLEAN, mask=BOOLEAN, contents=STRING,
        dropins=ListOf(_obj(name=STRING, contents=STRING)),
    ))),
    passwd=_obj(
        users=ListOf(_obj(
            name=STRING, passwordHash=STRING, sshAuthorizedKeys=_STRINGS, uid=INTEGER,
            gecos=STRING, homeDir=STRING, noCreateHome=BOOLEAN, primaryGroup=STRING,
            groups=_STRINGS, noUserGroup=BOOLEAN, noLogInit=BOOLEAN, shell=STRING,
            system=BOOLEAN, shouldExist=Field(BOOLEAN, V3_2),
        )),
        groups=ListOf(_obj(name=STRING, gid=INTEGER, passwordHash=STRING, system=BOOLEAN,
                           shouldExist=Field(BOOLEAN, V3_2))),
    ),
    kernelArguments=_unsupported(_obj(shouldExist=_STRINGS, shouldNotExist=_STRINGS), V3_3),
)


# ------------------------------------------------------------------------------------------
# Entry points


def parse(data: bytes) -> Config:
    """The config in `data` (JSON, UTF-8). Raises ConfigError listing every problem."""
    checker = _Checker()
    config = checker.config(data)
    if checker.problems or config is None:
        raise ConfigError(sorted(checker.problems, key=_path_order))
    return config


def validate(data: bytes) -> list[Problem]:
    """Every problem of the config in `data`, sorted by path; [] means it would be applied.
    Exactly the checks of `parse`."""
    try:
        parse(data)
    except ConfigError as error:
        return error.problems
    return []


def _path_order(problem: Problem) -> list[tuple[int, int | str]]:
    """Sort key: keys by name, list indices as numbers (`files.2` before `files.10`)."""
    return [(0, int(part)) if part.isdigit() else (1, part)
            for part in problem.path.split(".")]


# ------------------------------------------------------------------------------------------
# Checking


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number"}
_TYPE_NAMES = {STRING: "a string", INTEGER: "an integer", BOOLEAN: "a boolean"}


class _JsonObject(dict[str, Any]):
    """A JSON object that remembers keys given twice (JSON allows it, the last one wins)."""

    duplicates: list[str]


def _object_pairs(pairs: list[tuple[str, Any]]) -> _JsonObject:
    result = _JsonObject()
    result.duplicates = []
    for key, value in pairs:
        if key in result:
            result.duplicates.append(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Checker:
    """One pass over one config: collects problems, builds the Config."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.version: Version = (3, 5, 0)
        self.mistyped: set[str] = set()  # paths of values dropped for a wrong type
        self.nodes: list[tuple[str, str, str]] = []  # (JSON path, kind, path) of good paths
        self.inline_size = 0

    def error(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def missing(self, path: str, message: str) -> None:
        """A required value is absent (unless it was there with a wrong type: reported)."""
        if path not in self.mistyped:
            self.error(path, message)

    # ---- whole config

    def config(self, data: bytes) -> Config | None:
        raw = self.load(data)
        if raw is None:
            return None
        version = self.declared_version(raw)
        tree = self.walk(raw, CONFIG, "$")
        if not isinstance(tree, dict):
            return None
        ignition = tree.get("ignition", {})
        storage = tree.get("storage", {})
        systemd = tree.get("systemd", {})
        passwd = tree.get("passwd", {})
        directories = self.each(storage, "directories", "$.storage", self.directory)
        files = self.each(storage, "files", "$.storage", self.file)
        links = self.each(storage, "links", "$.storage", self.link)
        units = self.each(systemd, "units", "$.systemd", self.unit)
        users = self.each(passwd, "users", "$.passwd", self.user)
        groups = self.each(passwd, "groups", "$.passwd", self.group)
        self.check_nodes(directories, links)
        self.check_unit_paths(units)
        self.check_unique([u.name for _, u in units], "$.systemd.units", "unit")
        self.check_unique([u.name for _, u in users], "$.passwd.users", "user")
        self.check_unique([g.name for _, g in groups], "$.passwd.groups", "group")
        timeouts = ignition.get("timeouts", {})
        for key in ("httpResponseHeaders", "httpTotal"):
            if timeouts.get(key, 0) < 0:
                self.error(f"$.ignition.timeouts.{key}", "must not be negative")
        if version is None:
            return None
        return Config(
            version=version,
            files=tuple(f for _, f in files),
            directories=tuple(d for _, d in directories),
            links=tuple(k for _, k in links),
            units=tuple(u for _, u in units),
            users=tuple(u for _, u in users),
            groups=tuple(g for _, g in groups),
            timeouts=Timeouts(timeouts.get("httpResponseHeaders"), timeouts.get("httpTotal")),
        )

    def load(self, data: bytes) -> dict[str, Any] | None:
        if not data.strip():
            self.error("$", "empty config")
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            self.error("$", f"not UTF-8 (byte {e.start})")
            return None
        try:
            raw = json.loads(text, object_pairs_hook=_object_pairs,
                             parse_constant=_reject_constant)
        except json.JSONDecodeError as e:
            self.error("$", f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")
            return None
        except ValueError as e:  # NaN, Infinity
            self.error("$", f"invalid JSON: {e}")
            return None
        except RecursionError:
            self.error("$", "invalid JSON: nested too deeply")
            return None
        if not isinstance(raw, dict):
            self.error("$", f"expected an object, not {_json_type(raw)}")
            return None
        return raw

    def declared_version(self, raw: dict[str, Any]) -> str | None:
        """`ignition.version` if sonix reads that spec; checks everything else against the
        newest spec otherwise, so that the other problems are reported too."""
        ignition = raw.get("ignition")
        version = ignition.get("version") if isinstance(ignition, dict) else None
        path = "$.ignition.version"
        if version is None or version == "":
            self.error(path, "the spec version is required (e.g. \"3.5.0\")")
            return None
        if not isinstance(version, str):
            return None  # reported by the type check
        number = r"(0|[1-9][0-9]*)"  # semantic versioning: no leading zeros
        match = re.fullmatch(rf"{number}\.{number}\.{number}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?",
                             version)
        if match is None:
            self.error(path, f"invalid spec version {version!r} (expected e.g. \"3.5.0\")")
        elif match[1] != "3":
            self.error(path, f"unsupported spec version {version}: sonix reads Ignition "
                             f"3.0.0 to {LATEST} (translate older configs with Butane)")
        elif match[4] or match[5]:
            self.error(path, f"unsupported spec version {version}: sonix reads the released "
                             f"specs 3.0.0 to {LATEST} only")
        elif version not in SPEC_VERSIONS:
            self.error(path, f"unsupported spec version {version}: sonix reads 3.0.0 to "
                             f"{LATEST}")
        else:
            self.version = _version(version)
            return version
        return None

    # ---- structure: types, unknown keys, version gates, unsupported sections

    def walk(self, value: Any, type_: Type, path: str) -> Any:
        """`value` checked against `type_`: returns it with null, unknown, too new, mistyped
        and unsupported entries left out (None: leave the value out). As in Ignition (Go),
        null means absent, and a null list item is an empty object (or "")."""
        if value is None:
            return None
        if isinstance(type_, str):
            ok = (isinstance(value, str) if type_ == STRING else
                  isinstance(value, int) and not isinstance(value, bool) if type_ == INTEGER
                  else isinstance(value, bool))
            if ok and isinstance(value, str) and re.search("[\ud800-\udfff]", value):
                self.mistyped.add(path)
                self.error(path, "invalid Unicode: an unpaired surrogate (\\ud800 to \\udfff)")
                return None
            if ok:
                return value
            self.mistyped.add(path)
            self.error(path, f"expected {_TYPE_NAMES[type_]}, not {_json_type(value)}")
            return None
        if isinstance(type_, ListOf):
            if not isinstance(value, list):
                self.mistyped.add(path)
                self.error(path, f"expected a list, not {_json_type(value)}")
                return None
            empty = {} if isinstance(type_.item, Object) else ""
            items = [self.walk(item, type_.item, f"{path}.{i}") for i, item in enumerate(value)]
            return [empty if item is None and value[i] is None else item
                    for i, item in enumerate(items)]
        if not isinstance(value, dict):
            self.mistyped.add(path)
            self.error(path, f"expected an object, not {_json_type(value)}")
            return None
        for key in getattr(value, "duplicates", ()):
            self.error(f"{path}.{key}", "key given more than once")
        result = {}
        for key, item in value.items():
            where = f"{path}.{key}"
            spec = type_.fields.get(key)
            if spec is None:
                self.error(where, f"unknown key {key!r} (not in Ignition spec "
                                  f"{_text(self.version)})")
            elif spec.since > self.version:
                self.error(where, f"{key!r} is not in spec {_text(self.version)} (it came "
                                  f"with {_text(spec.since)}: raise ignition.version)")
            elif not spec.supported and not _empty(item):
                self.error(where, f"sonix does not support {_schema_path(where)} "
                                  "(see docs/ignition.md)")
            else:
                checked = self.walk(item, spec.type, where)
                if checked is not None and spec.supported:
                    result[key] = checked
        return result

    # ---- meaning

    def each(self, section: dict[str, Any], key: str, path: str,
             build: Callable[[dict[str, Any], str], T | None]) -> list[tuple[str, T]]:
        """[(path of the entry, built entry)] for the entries of a list that built cleanly."""
        built = []
        for i, raw in enumerate(section.get(key, [])):
            where = f"{path}.{key}.{i}"
            if raw is not None and where not in self.mistyped:
                entry = build(raw, where)
                if entry is not None:
                    built.append((where, entry))
        return built

    def node(self, raw: dict[str, Any], path: str,
             kind: str) -> tuple[str, Owner, Owner, bool] | None:
        """path, user, group and overwrite of a file, directory or link; a good path is
        checked against the others (check_nodes) even if the rest of the entry is not."""
        node_path = self.abs_path(raw.get("path"), f"{path}.path", "path")
        user = self.owner(raw.get("user", {}), f"{path}.user")
        group = self.owner(raw.get("group", {}), f"{path}.group")
        if node_path is None:
            return None
        if node_path == "/":
            self.error(f"{path}.path", "cannot replace the root directory")
            return None
        if _below(node_path, "/usr"):
            self.error(f"{path}.path", "/usr is the read-only, verity-protected image: write "
                                       "below /etc or /var")
            return None
        self.nodes.append((path, kind, node_path))
        return node_path, user, group, raw.get("overwrite", False)

    def file(self, raw: dict[str, Any], path: str) -> File | None:
        node = self.node(raw, path, "file")
        mode = self.mode(raw.get("mode"), f"{path}.mode")
        contents = self.resource(raw.get("contents", {}), f"{path}.contents")
        appended = [self.resource(item, f"{path}.append.{i}", required=True)
                    for i, item in enumerate(raw.get("append", []))]
        if raw.get("overwrite") and raw.get("contents", {}).get("source") is None:
            self.error(f"{path}.overwrite", "overwrite must be false if source is unspecified")
        fragments = [a for a in appended if isinstance(a, (bytes, RemoteSource))]
        if isinstance(contents, _Invalid) or len(fragments) < len(appended) or node is None:
            return None
        size = sum(len(c) for c in (contents, *fragments) if isinstance(c, bytes))
        if size > MAX_FILE_SIZE:
            self.error(path, f"the inline contents are {size} bytes, more than sonix's limit "
                             f"of {_mib(MAX_FILE_SIZE)} per file")
            return None
        self.inline_size += size
        if self.inline_size > MAX_INLINE_SIZE:
            self.error(path, f"the inline contents of all files exceed sonix's limit of "
                             f"{_mib(MAX_INLINE_SIZE)} per config")
            return None
        node_path, user, group, overwrite = node
        return File(node_path, contents, tuple(fragments), mode, user, group, overwrite)

    def directory(self, raw: dict[str, Any], path: str) -> Directory | None:
        node = self.node(raw, path, "directory")
        mode = self.mode(raw.get("mode"), f"{path}.mode")
        if node is None:
            return None
        node_path, user, group, overwrite = node
        return Directory(node_path, mode, user, group, overwrite)

    def link(self, raw: dict[str, Any], path: str) -> Link | None:
        node = self.node(raw, path, "link")
        target = raw.get("target")
        hard = raw.get("hard", False)
        if not target:
            self.missing(f"{path}.target", "link target is required")
            target = None
        elif _CONTROL.search(target):
            self.error(f"{path}.target", f"target contains a control character "
                                         f"({_control_name(target)}); sonix refuses those")
            target = None
        elif hard:
            target = self.abs_path(target, f"{path}.target", "a hard link's target")
            if target is not None and _below(target, "/usr"):
                self.error(f"{path}.target", "cannot hard-link into /usr (another, read-only "
                                             "file system)")
                target = None
        if hard:
            for key in ("user", "group"):
                if raw.get(key):
                    self.error(f"{path}.{key}", f"a hard link has no {key} of its own (it "
                                                "shares the target's)")
        if node is None or target is None:
            return None
        node_path, user, group, overwrite = node
        return Link(node_path, target, hard, user, group, overwrite)

    def owner(self, raw: dict[str, Any], path: str) -> Owner:
        id_, name = raw.get("id"), raw.get("name") or None
        if id_ is not None and name is not None:
            self.error(path, "cannot set both id and name")
            return None
        if id_ is not None:
            return id_ if self.check_id(id_, f"{path}.id") else None
        if name is not None:
            return name if self.check_name(name, f"{path}.name") else None
        return None

    def mode(self, mode: int | None, path: str) -> int | None:
        if mode is None:
            return None
        if not 0 <= mode <= 0o7777:
            self.error(path, f"illegal file mode {mode}: modes are decimal numbers from 0 to "
                             "4095 (0o7777), e.g. 420 for 0644")
            return None
        if mode & 0o7000 and self.version < V3_4:
            self.error(path, f"mode {mode} is {oct(mode)}: setuid/setgid/sticky bits need "
                             "spec 3.4.0 or newer (modes are decimal: 0644 is 420)")
            return None
        return mode

    def resource(self, raw: dict[str, Any], path: str,
                 required: bool = False) -> Contents | _Invalid | None:
        """The contents a `contents` or `append` entry stands for; _INVALID after a problem."""
        source = raw.get("source")
        compression = raw.get("compression") or None
        hash_ = raw.get("verification", {}).get("hash")
        problems = len(self.problems)
        if compression not in (None, "gzip"):
            self.error(f"{path}.compression", f"invalid compression method {compression!r} "
                                              "(only gzip)")
        if hash_ is not None:
            hash_ = self.hash_spec(hash_, f"{path}.verification.hash")
        if source is None:
            if required:
                self.error(f"{path}.source", "an appended fragment needs a source")
            if raw.get("verification", {}).get("hash") is not None:
                self.error(f"{path}.verification.hash",
                           "source must be specified if verification is specified")
            if compression is not None:
                self.error(f"{path}.compression",
                           "source must be specified if compression is specified")
            return None if len(self.problems) == problems else _INVALID
        where = f"{path}.source"
        scheme = source.partition(":")[0].lower() if ":" in source else ""
        if source == "":
            data: bytes | None = b""  # Ignition's "empty file" source
        elif scheme == "data":
            data = self.data_url(source, where)
        elif scheme in ("http", "https"):
            url = self.http_url(source, where)
            if url is not None and scheme == "http" and raw.get("verification", {}).get(
                    "hash") is None:
                self.error(f"{path}.verification.hash", "an http:// source needs a hash "
                                                        "(or use https://)")
            if len(self.problems) > problems or url is None:
                return _INVALID
            return RemoteSource(url, hash_, compression)
        elif scheme in ("tftp", "s3", "gs", "arn"):
            self.error(where, f"sonix does not support {scheme}: sources (only data:, http: "
                              "and https:)")
            return _INVALID
        else:
            self.error(where, "invalid url scheme (sonix reads data:, http: and https:)")
            return _INVALID
        if data is None or len(self.problems) > problems:
            return _INVALID
        contents, error = _decode(data, compression)
        if error is not None:
            self.error(where, error)
            return _INVALID
        error = _hash_error(contents, hash_)
        if error is not None:
            self.error(f"{path}.verification.hash", error)
            return _INVALID
        return contents

    def data_url(self, url: str, path: str) -> bytes | None:
        """RFC 2397 as strictly as Ignition reads it."""
        header, comma, payload = url[len("data:"):].partition(",")
        if not comma:
            self.error(path, "malformed data URL: no comma before the data")
            return None
        params = header.split(";")
        encoded = params[-1] == "base64" and len(params) > 1
        if encoded:
            params.pop()
        media_type, *parameters = params
        if media_type and not re.fullmatch(f"{_TOKEN}/{_TOKEN}", media_type):
            self.error(path, f"malformed data URL: invalid media type {media_type!r}")
            return None
        for parameter in parameters:
            if not re.fullmatch(f"{_TOKEN}=(?:{_TOKEN}|\"[^\"]*\")", parameter):
                self.error(path, f"malformed data URL: invalid parameter {parameter!r}")
                return None
        if encoded:
            if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", payload):
                self.error(path, "malformed data URL: invalid base64 character")
                return None
            try:
                return base64.b64decode(payload, validate=True)
            except binascii.Error as e:
                self.error(path, f"malformed data URL: invalid base64 ({e})")
                return None
        bad = re.search(r"%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9;/?:@&=+$,\-_.!~*'()%]", payload)
        if bad:
            self.error(path, f"malformed data URL: invalid character {bad[0]!r} at "
                             f"{len('data:') + len(header) + 1 + bad.start()} (percent-encode "
                             "it or use base64)")
            return None
        return urllib.parse.unquote_to_bytes(payload)

    def http_url(self, url: str, path: str) -> str | None:
        if re.search(r"[\x00-\x20\x7f]", url):
            self.error(path, "unable to parse url: it contains spaces or control characters")
            return None
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError for a bad port)
        except ValueError as e:
            self.error(path, f"unable to parse url: {e}")
            return None
        if not parts.hostname:
            self.error(path, "unable to parse url: no host")
            return None
        return url

    def hash_spec(self, spec: str, path: str) -> str | None:
        function, dash, digest = spec.partition("-")
        sizes = {"sha512": 128, "sha256": 64}
        if not dash or not digest:
            self.error(path, "malformed hash specifier (expected sha512-<hex> or sha256-<hex>)")
        elif function not in sizes:
            self.error(path, f"unrecognized hash function {function!r} (sha512 or sha256)")
        elif function == "sha256" and self.version < V3_1:
            self.error(path, "unrecognized hash function: sha256 needs spec 3.1.0 or newer")
        elif len(digest) != sizes[function]:
            self.error(path, f"incorrect size for hash sum: {function} takes "
                             f"{sizes[function]} hex digits, not {len(digest)}")
        elif not re.fullmatch(r"[0-9a-fA-F]+", digest):
            self.error(path, "malformed hash specifier: the sum is not hexadecimal")
        else:
            return f"{function}-{digest.lower()}"
        return None

    def unit(self, raw: dict[str, Any], path: str) -> Unit | None:
        name = raw.get("name", "")
        contents = raw.get("contents")
        enabled = raw.get("enabled", False)
        mask = raw.get("mask", False)
        name_error = _unit_name_error(name)
        if name_error:
            self.missing(f"{path}.name", name_error)
        if contents is not None:
            if contents == "":
                self.error(f"{path}.contents", "empty unit contents (systemd would treat the "
                                               "unit as masked: use mask)")
            elif (error := _unit_syntax_error(contents)) is not None:
                self.error(f"{path}.contents", f"invalid unit content: {error}")
        if mask:
            for key in ("contents", "dropins"):
                if raw.get(key):
                    self.error(f"{path}.{key}", f"a masked unit cannot have {key}")
            if enabled:
                self.error(f"{path}.enabled", "a masked unit cannot be enabled")
        if enabled and not name_error and re.search(r"@\.[a-z]+$", name):
            self.error(f"{path}.enabled", "a template cannot be enabled: enable an instance "
                                          "(e.g. name@instance.service)")
        dropins = []
        for i, dropin in enumerate(raw.get("dropins", [])):
            where = f"{path}.dropins.{i}"
            dropin_name = dropin.get("name", "")
            dropin_contents = dropin.get("contents", "")
            if not dropin_name.endswith(".conf") or dropin_name == ".conf":
                self.missing(f"{where}.name", "invalid systemd drop-in extension (a drop-in's "
                                            "name ends in .conf)")
            elif ("/" in dropin_name or _CONTROL.search(dropin_name)
                  or dropin_name.startswith(".")):
                self.error(f"{where}.name", "a drop-in's name is a plain file name")
            if dropin_contents and (error := _unit_syntax_error(dropin_contents)) is not None:
                self.error(f"{where}.contents", f"invalid unit content: {error}")
            dropins.append(Dropin(dropin_name, dropin_contents))
        self.check_unique([d.name for d in dropins], f"{path}.dropins", "drop-in")
        if name_error:
            return None
        return Unit(name, contents, enabled, mask, tuple(dropins))

    def user(self, raw: dict[str, Any], path: str) -> User | None:
        name = self.account(raw, path)
        uid = raw.get("uid")
        if uid is not None and not self.check_id(uid, f"{path}.uid"):
            uid = None
        for key in ("passwordHash", "gecos"):
            self.check_field_text(raw.get(key), f"{path}.{key}")
        home_dir, shell, primary_group = (raw.get(key) or None  # "": unset, as in Ignition
                                          for key in ("homeDir", "shell", "primaryGroup"))
        if home_dir is not None:
            home_dir = (self.abs_path(home_dir, f"{path}.homeDir", "homeDir")
                        if self.check_field_text(home_dir, f"{path}.homeDir") else None)
        if shell is not None:
            shell = (self.abs_path(shell, f"{path}.shell", "shell")
                     if self.check_field_text(shell, f"{path}.shell") else None)
        if primary_group is not None and not self.check_name(primary_group,
                                                             f"{path}.primaryGroup"):
            primary_group = None
        # Items of a wrong type are None here (and reported).
        groups = raw.get("groups", [])
        for i, group in enumerate(groups):
            if group is not None:
                self.check_name(group, f"{path}.groups.{i}")
        self.check_unique(groups, f"{path}.groups", "group")
        keys = raw.get("sshAuthorizedKeys", [])
        for i, key in enumerate(keys):
            if key is None:
                continue
            if not key.strip():
                self.error(f"{path}.sshAuthorizedKeys.{i}", "empty SSH key")
            elif "\n" in key or "\r" in key:
                self.error(f"{path}.sshAuthorizedKeys.{i}", "one SSH key per entry (no line "
                                                            "breaks)")
            elif _KEY_CONTROL.search(key):
                self.error(f"{path}.sshAuthorizedKeys.{i}", "an SSH key must not contain "
                                                            f"{_control_name(key)}")
        self.check_unique(keys, f"{path}.sshAuthorizedKeys", "SSH key")
        if name is None:
            return None
        return User(
            name=name, should_exist=raw.get("shouldExist", True),
            password_hash=raw.get("passwordHash"), ssh_authorized_keys=tuple(keys), uid=uid,
            gecos=raw.get("gecos"), home_dir=home_dir,
            no_create_home=raw.get("noCreateHome", False),
            primary_group=primary_group, groups=tuple(groups),
            no_user_group=raw.get("noUserGroup", False),
            no_log_init=raw.get("noLogInit", False), shell=shell,
            system=raw.get("system", False),
        )

    def group(self, raw: dict[str, Any], path: str) -> Group | None:
        name = self.account(raw, path)
        gid = raw.get("gid")
        if gid is not None and not self.check_id(gid, f"{path}.gid"):
            gid = None
        self.check_field_text(raw.get("passwordHash"), f"{path}.passwordHash")
        if name is None:
            return None
        return Group(name, raw.get("shouldExist", True), gid, raw.get("passwordHash"),
                     raw.get("system", False))

    def account(self, raw: dict[str, Any], path: str) -> str | None:
        """The name of a user or group; with shouldExist false nothing else may be given."""
        name = raw.get("name")
        if not name:
            self.missing(f"{path}.name", "name is required")
            name = None
        elif not self.check_name(name, f"{path}.name"):
            name = None
        if raw.get("shouldExist") is False:
            others = sorted(k for k in raw if k not in ("name", "shouldExist"))
            if others:
                self.error(f"{path}.shouldExist", f"shouldExist is false (delete the account) "
                                                  f"but {', '.join(others)} given")
        return name

    # ---- small checks

    def abs_path(self, value: str | None, path: str, what: str) -> str | None:
        if not value:
            self.missing(path, f"{what} not specified")
            return None
        if _CONTROL.search(value):
            self.error(path, f"{what} contains a control character "
                             f"({_control_name(value)}); sonix refuses those in paths")
        elif not value.startswith("/"):
            self.error(path, f"{what} not absolute")
        elif posixpath.normpath(value) != value or value.startswith("//"):
            self.error(path, f"{what} is not fully simplified (no ., .., // or trailing /): "
                             f"write {posixpath.normpath('/' + value.lstrip('/'))}")
        else:
            return value
        return None

    def check_id(self, value: int, path: str) -> bool:
        if not 0 <= value <= 0xFFFFFFFE or value == 0xFFFF:
            self.error(path, f"invalid id {value} (0 to 4294967294, not 65535)")
            return False
        return True

    def check_name(self, name: str, path: str) -> bool:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,30}", name):
            self.error(path, f"invalid user or group name {name!r} (a letter or _, then "
                             "letters, digits, _ or -; at most 31 characters)")
            return False
        return True

    def check_field_text(self, value: str | None, path: str) -> bool:
        """A field of /etc/passwd, shadow, group or gshadow: one line, fields split by ':'."""
        if value is not None and (":" in value or _CONTROL.search(value)):
            what = "':'" if ":" in value else _control_name(value)
            self.error(path, f"must not contain {what}: it goes into a colon-separated, "
                             "line-oriented database (':', line breaks, NUL and other control "
                             "characters are refused)")
            return False
        return True

    def check_unique(self, keys: list[str | None], path: str, what: str) -> None:
        seen: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key is None:
                continue
            if key in seen:
                self.error(f"{path}.{i}", f"duplicate entry defined: {what} {key!r} is also "
                                          f"{path}.{seen[key]}")
            else:
                seen[key] = i

    def check_nodes(self, directories: list[tuple[str, Directory]],
                    links: list[tuple[str, Link]]) -> None:
        """Every path once, no path below a link or a file. Nodes are in Ignition's order
        (directories, files, links), so a duplicate is reported where ignition-validate
        reports it."""
        seen: dict[str, str] = {}
        for where, _, path in self.nodes:
            if path in seen:
                self.error(where, f"duplicate entry defined: {path} is also {seen[path]}")
            else:
                seen.setdefault(path, where)
        kinds = {path: kind for _, kind, path in self.nodes}
        for where, kind, path in self.nodes:
            for parent in _parents(path):
                if kinds.get(parent) == "link":
                    self.error(where, f"{kind} path includes link in config ({parent})")
                elif kinds.get(parent) == "file":
                    self.error(where, f"{kind} path is below the file {parent} in config")
        directory_paths = {d.path for _, d in directories}
        for where, link in links:
            if link.hard and link.target in directory_paths:
                self.error(f"{where}.target", "cannot hard-link a directory")

    def check_unit_paths(self, units: list[tuple[str, Unit]]) -> None:
        """Files, directories and links must not stand where the units go (Ignition 2.15+
        fails such configs too)."""
        owners: dict[str, str] = {}
        for where, unit in units:
            if unit.contents is not None or unit.mask:
                owners[f"{UNIT_DIR}/{unit.name}"] = where
            if unit.enabled:
                owners[f"{UNIT_DIR}/{WANTED_BY}.wants/{unit.name}"] = where
            for i, dropin in enumerate(unit.dropins):
                owners[f"{UNIT_DIR}/{unit.name}.d/{dropin.name}"] = f"{where}.dropins.{i}"
        nodes = {path: (where, kind) for where, kind, path in self.nodes}
        for owned, owner in owners.items():
            for path in (owned, *_parents(owned)):
                where, kind = nodes.get(path, ("", ""))
                # A directory may stand above a unit's file, nothing else may.
                if where and (path == owned or kind != "directory"):
                    self.error(where, f"conflicts with {owned}, written for {owner}")


class _Invalid:
    """A resource that has problems (reported already)."""


_INVALID = _Invalid()

# RFC 2045 token (media types and their parameters).
_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"


def _decode(data: bytes, compression: str | None) -> tuple[bytes, str | None]:
    """(contents, None) or (b"", problem): decompressed, at most MAX_FILE_SIZE bytes."""
    if compression == "gzip":
        try:
            data = _gunzip(data, MAX_FILE_SIZE)
        except (zlib.error, EOFError) as e:
            return b"", f"the contents are not valid gzip data ({e})"
    if len(data) > MAX_FILE_SIZE:
        return b"", (f"the contents are larger than sonix's limit of {_mib(MAX_FILE_SIZE)} "
                     "per file")
    return data, None


def _hash_error(data: bytes, hash_: str | None) -> str | None:
    """Why `data` does not match `hash_` (`sha512-<hex>`), or None."""
    if hash_ is None:
        return None
    function, _, digest = hash_.partition("-")
    actual = hashlib.new(function, data).hexdigest()
    if actual == digest:
        return None
    return f"{function} hash does not match the contents (they have {function}-{actual})"


def _gunzip(data: bytes, limit: int) -> bytes:
    """gzip members one after another, stopping a little past `limit` bytes of output."""
    out = bytearray()
    while data:
        stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += stream.decompress(data, limit + 1 - len(out))
        if len(out) > limit:
            break
        if not stream.eof:
            raise EOFError("truncated")
        data = stream.unused_data
    return bytes(out)


_UNIT_TYPES = ("service", "socket", "device", "mount", "automount", "swap", "target", "path",
               "timer", "slice", "scope")


# Control characters: a line break in a text that lands in a line-oriented file (passwd,
# authorized_keys, a log line) would add a line of the writer's choosing.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KEY_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab may separate a key's fields


def _control_name(text: str) -> str:
    """`a line break`, `NUL`, `the control character \\x1b`: the first one in `text`."""
    found = _CONTROL.search(text)
    char = found[0] if found else ""
    names = {"\n": "a line break", "\r": "a carriage return", "\0": "NUL", "\t": "a tab"}
    return names.get(char, f"the control character {char!r}".replace("'", ""))


def _unit_name_error(name: str) -> str | None:
    """systemd's unit name rules (unit_name_is_valid) with a known type."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or suffix not in _UNIT_TYPES:
        return ("invalid systemd unit extension: a unit's name ends in ." +
                ", .".join(_UNIT_TYPES))
    if len(name) > 255:
        return "unit name longer than 255 characters"
    prefix, _, instance = stem.partition("@")
    if not prefix:
        return "unit name without a prefix"
    if not re.fullmatch(r"[A-Za-z0-9:_.\\-]+", prefix) or (
            instance and not re.fullmatch(r"[A-Za-z0-9:_.\\@-]+", instance)):
        return ("invalid unit name: letters, digits and :-_.\\ only (escape others with "
                "systemd-escape); no /")
    return None


def _unit_syntax_error(text: str) -> str | None:
    """Why `text` is not in unit file syntax (sections of KEY=VALUE lines), or None."""
    section = None
    continued = False
    for number, line in enumerate(text.splitlines(), 1):
        if "\0" in line:
            return f"line {number}: NUL character"
        stripped = line.strip()
        if continued:
            continued = stripped.endswith("\\")
            continue
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            if not stripped.endswith("]") or len(stripped) < 3:
                return f"line {number}: unable to find end of section in {stripped!r}"
            section = stripped[1:-1]
        elif section is None:
            return f"line {number}: {stripped!r} is outside of a [Section]"
        elif not stripped.partition("=")[1] or not stripped.partition("=")[0].strip():
            return f"line {number}: expected KEY=VALUE, not {stripped!r}"
        else:
            continued = stripped.endswith("\\")
    return None


def _version(text: str) -> Version:
    major, minor, patch = (int(part) for part in text.split("."))
    return major, minor, patch


def _text(version: Version) -> str:
    return ".".join(str(part) for part in version)


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (bool before int: bool is an int)."""
    if value is None:
        return "null"
    return next(name for type_, name in _JSON_TYPES.items() if isinstance(value, type_))


def _empty(value: Any) -> bool:
    """null, [] and objects of empty values: what an unsupported section may be."""
    if isinstance(value, dict):
        return all(_empty(v) for v in value.values())
    return value is None or value == []


def _schema_path(path: str) -> str:
    """`$.storage.disks` → `storage.disks` (list indices left out)."""
    return ".".join(p for p in path.split(".")[1:] if not p.isdigit())


def _below(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + "/")


def _parents(path: str) -> Iterator[str]:
    """/a/b/c → /a/b, /a."""
    while (path := posixpath.dirname(path)) != "/":
        yield path


def _mib(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB"
