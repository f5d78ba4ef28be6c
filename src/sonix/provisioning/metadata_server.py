"""A fake instance metadata server for tests and local use: EC2, GCE and matchbox on one port.

    with MetadataServer(ec2=Ec2Instance(user_data=b"{...}")) as server:   # 127.0.0.1, free port
        server.url                       # "http://127.0.0.1:41234"
        ...                              # a VM reaches it through QEMU guestfwd
        server.requests                  # [Recorded(method, path, headers), ...]

Each role answers only when it is configured, so a machine sees one platform (or, on purpose,
several at once: the sources' order then decides):

    /latest/...           EC2's IMDS: IMDSv2 tokens (PUT /latest/api/token with a TTL header,
                          then X-aws-ec2-metadata-token), 401 without a valid token unless
                          imdsv1=True; meta-data/ listings, user-data (404 when there is none)
    /computeMetadata/v1/  GCE: requests need `Metadata-Flavor: Google` (403 otherwise), every
                          answer carries it
    /ignition, /metadata  matchbox: groups select a profile by `mac` / `uuid` query labels (the
                          group with most selectors first); /ignition serves the profile's
                          Ignition file as is, /metadata KEY=value lines like matchbox's

What the real services do and what the machine's side reads: docs/metadata-sources.md.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import sys
import threading
import time
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

IMDS_TOKEN_HEADER = "x-aws-ec2-metadata-token"
IMDS_TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
MAX_TOKEN_TTL = 21600


class ConfigError(ValueError):
    """A server configuration (file, matchbox directory) that cannot be used."""


def log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# What the server plays


@dataclass(frozen=True)
class Ec2Instance:
    """One EC2 instance as its IMDS describes it (values shaped like AWS's)."""

    user_data: bytes | None = None
    instance_id: str = "i-0a1b2c3d4e5f67890"
    instance_type: str = "t3.small"
    hostname: str = "ip-10-0-2-15.eu-central-1.compute.internal"
    public_hostname: str | None = None
    local_ipv4: str = "10.0.2.15"
    public_ipv4: str | None = None
    availability_zone: str = "eu-central-1a"
    region: str = "eu-central-1"
    ssh_keys: tuple[str, ...] = ()
    imdsv1: bool = False  # also answer GETs without a token (the instance's HttpTokens=optional)

    def meta_data(self) -> dict[str, str]:
        """meta-data/<path> → value (listings are derived from the paths)."""
        values = {
            "ami-id": "ami-0123456789abcdef0",
            "instance-id": self.instance_id,
            "instance-type": self.instance_type,
            "hostname": self.hostname,
            "local-hostname": self.hostname,
            "local-ipv4": self.local_ipv4,
            "placement/availability-zone": self.availability_zone,
            "placement/region": self.region,
        }
        if self.public_hostname:
            values["public-hostname"] = self.public_hostname
        if self.public_ipv4:
            values["public-ipv4"] = self.public_ipv4
        for index, key in enumerate(self.ssh_keys):
            values[f"public-keys/{index}/openssh-key"] = key
        return values

    def public_keys_listing(self) -> str:
        """`public-keys/` lists INDEX=NAME, the key pair's name (here: the key's comment)."""
        return "\n".join(f"{i}={_key_name(key, i)}" for i, key in enumerate(self.ssh_keys))


def _key_name(key: str, index: int) -> str:
    parts = key.split(None, 2)
    return parts[2] if len(parts) == 3 else f"key-{index}"


@dataclass(frozen=True)
class GceInstance:
    """One GCE instance as its metadata server describes it."""

    user_data: bytes | None = None
    instance_id: str = "4520031799277581759"
    name: str = "sonix-1"
    hostname: str = "sonix-1.europe-west3-a.c.sonix-test.internal"
    machine_type: str = "projects/123456789012/machineTypes/e2-small"
    zone: str = "projects/123456789012/zones/europe-west3-a"
    ip: str = "10.0.2.15"
    external_ip: str | None = None
    ssh_keys: tuple[str, ...] = ()  # "user:key" lines, or bare keys (given to user "sonix")
    project_ssh_keys: tuple[str, ...] = ()
    block_project_ssh_keys: bool = False
    project_id: str = "sonix-test"

    def values(self) -> dict[str, bytes]:
        """computeMetadata/v1/<path> → value."""
        text = {
            "instance/id": self.instance_id,
            "instance/name": self.name,
            "instance/hostname": self.hostname,
            "instance/machine-type": self.machine_type,
            "instance/zone": self.zone,
            "instance/network-interfaces/0/ip": self.ip,
            "project/project-id": self.project_id,
            "project/numeric-project-id": "123456789012",
        }
        if self.external_ip:
            text["instance/network-interfaces/0/access-configs/0/external-ip"] = self.external_ip
        if self.ssh_keys:
            text["instance/attributes/ssh-keys"] = _gce_key_lines(self.ssh_keys)
        if self.project_ssh_keys:
            text["project/attributes/ssh-keys"] = _gce_key_lines(self.project_ssh_keys)
        if self.block_project_ssh_keys:
            text["instance/attributes/block-project-ssh-keys"] = "true"
        values = {path: value.encode() for path, value in text.items()}
        if self.user_data is not None:
            values["instance/attributes/user-data"] = self.user_data
        return values


def _gce_key_lines(keys: tuple[str, ...]) -> str:
    return "\n".join(key if ":" in key.split(None, 1)[0] else f"sonix:{key}" for key in keys)


@dataclass(frozen=True)
class MatchboxProfile:
    """A matchbox profile: here only its Ignition config (`ignition_id` in matchbox's JSON)."""

    id: str
    ignition: bytes | None = None


@dataclass(frozen=True)
class MatchboxGroup:
    """A matchbox group: machines whose labels include all of `selector` get `profile`, and
    `metadata` on /metadata."""

    id: str
    profile: str
    selector: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.selector.items())


@dataclass(frozen=True)
class Matchbox:
    """Profiles and groups, as in a matchbox data directory (`Matchbox.load(DIR)`)."""

    profiles: dict[str, MatchboxProfile]
    groups: tuple[MatchboxGroup, ...]

    @classmethod
    def load(cls, directory: Path) -> Matchbox:
        """DIR/profiles/*.json ({"id", "ignition_id"}), DIR/groups/*.json ({"id", "profile",
        "selector", "metadata"}) and DIR/ignition/<ignition_id>, as matchbox reads them."""
        if not directory.is_dir():
            raise ConfigError(f"matchbox: {directory} is not a directory")
        profiles: dict[str, MatchboxProfile] = {}
        for path in sorted((directory / "profiles").glob("*.json")):
            data = _json_object(path)
            profile_id = str(data.get("id") or path.stem)
            ignition_id = data.get("ignition_id")
            ignition = None
            if ignition_id:
                ignition_path = directory / "ignition" / str(ignition_id)
                if not ignition_path.is_file():
                    raise ConfigError(f"matchbox: {path} names ignition_id {ignition_id!r}, "
                                      f"but {ignition_path} does not exist")
                ignition = ignition_path.read_bytes()
            profiles[profile_id] = MatchboxProfile(profile_id, ignition)
        groups: list[MatchboxGroup] = []
        for path in sorted((directory / "groups").glob("*.json")):
            data = _json_object(path)
            profile = data.get("profile")
            if profile not in profiles:
                raise ConfigError(f"matchbox: {path} selects profile {profile!r}, which is not "
                                  f"in {directory / 'profiles'} ({', '.join(profiles) or 'none'})")
            selector = data.get("selector") or {}
            metadata = data.get("metadata") or {}
            if not isinstance(selector, dict) or not isinstance(metadata, dict):
                raise ConfigError(f"matchbox: {path}: selector and metadata must be objects")
            groups.append(MatchboxGroup(
                id=str(data.get("id") or path.stem), profile=str(profile),
                selector=normalize_labels({str(k): str(v) for k, v in selector.items()}),
                metadata=metadata,
            ))
        if not groups:
            raise ConfigError(f"matchbox: {directory / 'groups'} has no groups (*.json)")
        return cls(profiles, tuple(groups))

    def select(self, labels: Mapping[str, str]) -> MatchboxGroup | None:
        """The group for a machine's labels: the most specific (most selectors) that matches,
        as matchbox picks; among equals the first by id."""
        ordered = sorted(self.groups, key=lambda g: (-len(g.selector), g.id))
        return next((group for group in ordered if group.matches(labels)), None)


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def normalize_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Label names in lower case; `mac` as 52:54:00:a1:9c:ae (matchbox parses MACs, so dashes
    and colons both match; an unparsable MAC is dropped, as matchbox does); `uuid` in lower
    case (matchbox compares it as given: machines report it in either case)."""
    result: dict[str, str] = {}
    for key, value in labels.items():
        key = key.lower()
        if key == "mac":
            digits = re.sub(r"[-:.]", "", value).lower()
            if not re.fullmatch(r"[0-9a-f]{12}", digits):
                continue
            value = ":".join(digits[i:i + 2] for i in range(0, 12, 2))
        elif key == "uuid":
            value = value.lower()
        result[key] = value
    return result


def env_file_lines(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """matchbox's /metadata format: KEY=value, nested objects joined with `_`, names in upper
    case; lists are left out (matchbox does not render them)."""
    lines: list[str] = []
    for key, value in data.items():
        name = prefix + key
        if isinstance(value, dict):
            lines += env_file_lines(value, name + "_")
        elif isinstance(value, bool):
            lines.append(f"{name.upper()}={'true' if value else 'false'}")
        elif isinstance(value, int | float):
            lines.append(f"{name.upper()}={value:g}" if isinstance(value, float)
                         else f"{name.upper()}={value}")
        elif isinstance(value, str):
            lines.append(f"{name.upper()}={value}")
    return lines


# ------------------------------------------------------------------------------------------
# Configuration from a file (JSON or TOML) for `sonix serve-metadata --config FILE`


@dataclass(frozen=True)
class ServerConfig:
    ec2: Ec2Instance | None = None
    gce: GceInstance | None = None
    matchbox: Matchbox | None = None


def load_config(path: Path) -> ServerConfig:
    """A file with optional tables `ec2`, `gce` (the fields of Ec2Instance / GceInstance,
    `user-data` a file name relative to the file) and `matchbox` (`directory`)."""
    try:
        text = path.read_text()
        raw: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a table / an object")
    unknown = set(raw) - {"ec2", "gce", "matchbox"}
    if unknown:
        raise ConfigError(f"{path}: unknown sections {', '.join(sorted(unknown))} "
                          "(known: ec2, gce, matchbox)")
    ec2 = _instance(Ec2Instance, raw["ec2"], path, "ec2") if "ec2" in raw else None
    gce = _instance(GceInstance, raw["gce"], path, "gce") if "gce" in raw else None
    matchbox = None
    if "matchbox" in raw:
        section = raw["matchbox"]
        if not isinstance(section, dict) or set(section) != {"directory"}:
            raise ConfigError(f"{path}: matchbox takes one key, directory")
        matchbox = Matchbox.load(path.parent / str(section["directory"]))
    return ServerConfig(ec2, gce, matchbox)


def _instance(kind: Any, section: object, path: Path, name: str) -> Any:
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {name} must be a table / an object")
    known = {f.name: f for f in fields(kind)}
    values: dict[str, Any] = {}
    for key, value in section.items():
        attr = key.replace("-", "_")
        if attr not in known:
            raise ConfigError(f"{path}: {name}.{key} is not known (known: "
                              f"{', '.join(k.replace('_', '-') for k in known)})")
        if attr == "user_data":
            try:
                value = (path.parent / str(value)).read_bytes()
            except OSError as error:
                raise ConfigError(f"{path}: {name}.{key}: {error}") from None
        elif isinstance(value, list):
            value = tuple(str(v) for v in value)
        values[attr] = value
    return kind(**values)


# ------------------------------------------------------------------------------------------
# The server


class Recorded(NamedTuple):
    """A request the server got: method, path with query, headers (names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]


class MetadataServer(ThreadingHTTPServer):
    """The fake metadata server. Used as a context manager it serves from a background thread
    (tests); the command calls serve_forever itself."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int] = ("127.0.0.1", 0),
        *,
        ec2: Ec2Instance | None = None,
        gce: GceInstance | None = None,
        matchbox: Matchbox | None = None,
        log: Callable[[str], None] = log_to_stderr,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.ec2 = ec2
        self.gce = gce
        self.matchbox = matchbox
        self.log = log
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # IMDSv2 token → expiry (time.monotonic)
        self._failures: list[list[Any]] = []  # [path prefix, status, times left]
        self._thread: threading.Thread | None = None
        super().__init__(address, MetadataHandler)

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def roles(self) -> list[str]:
        return [name for name, role in
                (("ec2", self.ec2), ("gce", self.gce), ("matchbox", self.matchbox)) if role]

    def requests_to(self, prefix: str) -> list[Recorded]:
        """The recorded requests whose path starts with `prefix`."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def fail(self, prefix: str, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` requests below `prefix` with `status` (fault injection)."""
        with self._lock:
            self._failures.append([prefix, status, times])

    def start(self) -> MetadataServer:
        """Serve from a background thread until stop()."""
        # A short poll interval: stop() (shutdown) waits for it, once per test.
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="metadata-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __enter__(self) -> MetadataServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # ---- used by the handler

    def record(self, request: Recorded) -> int | None:
        """Note a request; the status of an injected failure that applies to it, if any."""
        with self._lock:
            self.requests.append(request)
            for failure in self._failures:
                if request.path.startswith(failure[0]) and failure[2] > 0:
                    failure[2] -= 1
                    return int(failure[1])
        return None

    def new_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        return token

    def token_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry


class MetadataHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer has a Content-Length
    server_version = "sonix-serve-metadata"
    timeout = 60
    server: MetadataServer

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self.send_error(400, "bad Content-Length")
            return
        if int(length):
            self.rfile.read(min(int(length), 1 << 20))
        headers = {name.lower(): value for name, value in self.headers.items()}
        failure = self.server.record(Recorded(self.command, self.path, headers))
        if failure is not None:
            self._send(failure, b"injected failure\n")
            return
        path = urllib.parse.urlsplit(self.path).path
        if path == "/latest" or path.startswith("/latest/"):
            self._ec2(path, headers)
        elif path.startswith("/computeMetadata/"):
            self._gce(path, headers)
        elif path in ("/ignition", "/metadata"):
            self._matchbox(path)
        else:
            self._send(404, b"not found\n")

    # ---- EC2

    def _ec2(self, path: str, headers: dict[str, str]) -> None:
        ec2 = self.server.ec2
        if ec2 is None:
            self._send(404, b"not found\n")
            return
        if path == "/latest/api/token":
            if self.command != "PUT":
                self._send(405, b"method not allowed\n", {"Allow": "PUT"})
                return
            ttl = headers.get(IMDS_TTL_HEADER, "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TOKEN_TTL:
                self._send(400, b"missing or invalid X-aws-ec2-metadata-token-ttl-seconds\n")
                return
            new_token = self.server.new_token(int(ttl))
            self._send(200, new_token.encode(), {"X-aws-ec2-metadata-token-ttl-seconds": ttl})
            return
        if self.command not in ("GET", "HEAD"):
            self._send(405, b"method not allowed\n", {"Allow": "GET, HEAD"})
            return
        token = headers.get(IMDS_TOKEN_HEADER)
        if (token is not None and not self.server.token_valid(token)) or (
                token is None and not ec2.imdsv1):
            self._send(401, b"unauthorized\n")
            return
        relative = path.removeprefix("/latest").strip("/")
        if relative == "":
            self._send(200, b"dynamic\nmeta-data\nuser-data")
        elif relative == "user-data":
            if ec2.user_data is None:
                self._send(404, b"not found\n")
            else:
                self._send(200, ec2.user_data, content_type="application/octet-stream")
        elif relative == "meta-data" or relative.startswith("meta-data/"):
            item = path.removeprefix("/latest/meta-data").lstrip("/")
            listings = {"public-keys/": ec2.public_keys_listing()} if ec2.ssh_keys else {}
            value = lookup(ec2.meta_data(), item, listings)
            if value is None:
                self._send(404, b"not found\n")
            else:
                self._send(200, value)
        else:
            self._send(404, b"not found\n")

    # ---- GCE

    def _gce(self, path: str, headers: dict[str, str]) -> None:
        gce = self.server.gce
        if gce is None or not path.startswith("/computeMetadata/v1/"):
            self._send(404, b"not found\n")
            return
        flavor = {"Metadata-Flavor": "Google"}
        if headers.get("metadata-flavor") != "Google":
            self._send(403, b"Missing required header: Metadata-Flavor\n", flavor)
            return
        if self.command not in ("GET", "HEAD"):
            self._send(405, b"method not allowed\n", flavor)
            return
        item = path.removeprefix("/computeMetadata/v1/")
        value = lookup(gce.values(), item)
        if value is None:
            self._send(404, b"not found\n", flavor)
        else:
            self._send(200, value, flavor, content_type="application/text")

    # ---- matchbox

    def _matchbox(self, path: str) -> None:
        matchbox = self.server.matchbox
        if matchbox is None:
            self._send(404, b"not found\n")
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        labels = normalize_labels({key: values[0] for key, values in query.items()})
        group = matchbox.select(labels)
        if group is None:
            self._send(404, b"404 page not found\n")
            return
        if path == "/ignition":
            profile = matchbox.profiles[group.profile]
            if profile.ignition is None:
                self._send(404, b"404 page not found\n")
            else:
                self._send(200, profile.ignition, content_type="application/json")
            return
        data: dict[str, Any] = dict(group.metadata)
        data.update(group.selector)
        data["request"] = {"query": labels, "raw_query": urllib.parse.urlsplit(self.path).query}
        body = "".join(line + "\n" for line in env_file_lines(data))
        self._send(200, body.encode(), content_type="plain/text")  # matchbox's own type

    # ---- answering

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None, *,
              content_type: str = "text/plain") -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        self.server.log(f"{self.address_string()} {format % args}")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = code.value if isinstance(code, HTTPStatus) else code
        self.log_message("%s %s %s", self.command, self.path, status)


def lookup(values: Mapping[str, Any], path: str, listings: Mapping[str, str] | None = None
           ) -> bytes | None:
    """A value by path, or the listing of a directory (its entries, subdirectories with a
    trailing slash, one a line), as IMDS and GCE's metadata server answer."""
    if path in values:
        value = values[path]
        return value if isinstance(value, bytes) else str(value).encode()
    prefix = path.rstrip("/") + "/" if path.strip("/") else ""
    if listings and prefix in listings:
        return listings[prefix].encode()
    entries: list[str] = []
    for key in values:
        if key.startswith(prefix):
            head, sep, _ = key[len(prefix):].partition("/")
            entry = head + sep
            if entry not in entries:
                entries.append(entry)
    return "\n".join(sorted(entries)).encode() if entries else None
