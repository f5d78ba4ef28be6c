"""Where a machine's provisioning configuration comes from (standard library only).

Runs on the machine, in the initrd before switch-root, for the provisioning apply stage: each
*source* is a small plug-in that looks for the configuration (user data / Ignition config) and
the platform's metadata (instance id, hostname, SSH keys ...) in one place:

    cmdline       sonix.config.url=URL on the kernel command line (http, https, data:)
    credentials   systemd credentials sonix.provision.* (SMBIOS type 11, fw_cfg, ...)
    openstack     an OpenStack config drive (file system label config-2)
    ec2           the EC2 instance metadata service (IMDSv2) at 169.254.169.254
    gce           the Google Compute Engine metadata server at 169.254.169.254
    matchbox      a matchbox server (sonix.matchbox.url= or the configuration)

`discover(env, order, timeout)` asks them in that order and returns the first that is there.
Every source reads the machine only through `Environment` (paths, base URLs, clock), all HTTP
goes through `http_request` and every command through `run`, so tests replace exactly those.
The sources, endpoints, attribute names and timeouts are documented in docs/metadata-sources.md.

    python3 -m agents.metadata [--sources ec2,gce] [--timeout 120] [--json]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import common

DEFAULT_TIMEOUT = 120.0  # seconds for the whole discovery (all sources together)
PROBE_TIMEOUT = 10.0  # seconds a well-known address (ec2, gce) gets to answer at all
REQUEST_TIMEOUT = 5.0  # seconds for one HTTP request
INITIAL_DELAY = 0.5  # first pause between attempts; doubles ...
MAX_DELAY = 8.0  # ... up to this
NETWORK_WAIT = 30.0  # seconds network sources wait for DHCP (a route on a NIC) at most
MAX_BODY = 32 << 20  # bytes; user data is at most 16 KiB on EC2 and 256 KiB on GCE

EC2_URL = "http://169.254.169.254"
GCE_URL = "http://169.254.169.254"
GCE_HOST = "metadata.google.internal"
IMDS_TOKEN_TTL = "21600"  # seconds, the largest IMDSv2 allows

CONFIG_CREDENTIAL = "sonix.provision.config"
HOSTNAME_CREDENTIAL = "sonix.provision.hostname"
SSH_KEYS_CREDENTIAL = "ssh.authorized_keys.root"  # systemd.system-credentials(7)
CONFIG_DRIVE_LABELS = ("config-2", "CONFIG-2")  # vfat tools may upper-case labels


class SourceError(Exception):
    """A source is there but broken: the machine must not go on as if it were not."""


class NotHere(Exception):
    """Internal: a probed address did not answer within the probe window."""


class Unreachable(Exception):
    """No HTTP answer at all: refused, timed out, no route, connection closed."""


# ------------------------------------------------------------------------------------------
# Logging: one line per event on stderr (the journal and the console show it), with a syslog
# priority prefix that journald understands, as the update agent does.


log = common.Logger("sonix-provision")


# ------------------------------------------------------------------------------------------
# What a source found, and what it may read from the machine


@dataclass(frozen=True)
class Found:
    """What one source found. `config` is the user data exactly as served (None: the source
    is there but has no configuration, e.g. an EC2 instance without user data); `attributes`
    are the platform's metadata under SONIX_<SOURCE>_<NAME> names (docs/metadata-sources.md);
    `channel` and `profile` are set by matchbox only."""

    source: str
    config: bytes | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    hostname: str | None = None
    ssh_keys: tuple[str, ...] = ()
    channel: str | None = None
    profile: str | None = None

    def environment_file(self) -> str:
        """The attributes as a systemd EnvironmentFile (what /run/metadata/sonix holds)."""
        return "".join(f"{name}={quote_env(value)}\n"
                       for name, value in sorted(self.attributes.items()))

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary; the config as text when it is UTF-8, else base64."""
        data: dict[str, Any] = dataclasses.asdict(self)
        data["ssh_keys"] = list(self.ssh_keys)
        if self.config is not None:
            try:
                data["config"] = self.config.decode()
            except UnicodeDecodeError:
                data["config"] = None
                data["config_base64"] = base64.b64encode(self.config).decode()
        return data


def quote_env(value: str) -> str:
    """A value as systemd's EnvironmentFile= (and a shell) reads it back unchanged."""
    if re.fullmatch(r"[A-Za-z0-9._:/@%+,=-]*", value):
        return value
    return '"' + re.sub(r'([\\"$`])', r"\\\1", value) + '"'


@dataclass(frozen=True)
class Environment:
    """Everything a source reads from the machine. Tests point the paths at a temporary
    directory and give a fake clock; `Environment.from_system()` is the real machine."""

    cmdline: Path = Path("/proc/cmdline")
    net: Path = Path("/sys/class/net")
    product_uuid: Path = Path("/sys/class/dmi/id/product_uuid")
    credentials_dir: Path = Path("/run/credentials/@system")
    disk_by_label: Path = Path("/dev/disk/by-label")
    runtime_dir: Path = Path("/run")  # where the config drive is mounted for a moment
    # /proc/net/route: network sources wait (up to network_wait s) for a route on a NIC, i.e.
    # for DHCP in the initrd. None: do not wait (tests).
    routes: Path | None = None
    network_wait: float = NETWORK_WAIT
    ec2_url: str = EC2_URL
    gce_url: str = GCE_URL
    gce_host: str | None = GCE_HOST  # Host header for GCE; None: the URL's host
    matchbox_url: str | None = None  # from the configuration; sonix.matchbox.url= wins
    probe_timeout: float = PROBE_TIMEOUT
    request_timeout: float = REQUEST_TIMEOUT
    initial_delay: float = INITIAL_DELAY
    max_delay: float = MAX_DELAY
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_system(
        cls,
        *,
        matchbox_url: str | None = None,
        probe_timeout: float = PROBE_TIMEOUT,
        environ: Mapping[str, str] | None = None,
    ) -> Environment:
        """The running machine. The credentials are read from $CREDENTIALS_DIRECTORY when the
        caller runs as a service with ImportCredential=sonix.provision.* (systemd has then
        decrypted them), else from PID 1's own store /run/credentials/@system."""
        environ = os.environ if environ is None else environ
        credentials = environ.get("CREDENTIALS_DIRECTORY")
        return cls(
            routes=Path("/proc/net/route"),
            credentials_dir=Path(credentials) if credentials else cls.credentials_dir,
            matchbox_url=matchbox_url or None,
            probe_timeout=probe_timeout,
        )

    def kernel_parameters(self) -> dict[str, str]:
        """`key=value` parameters of the kernel command line (the last one of a key wins)."""
        try:
            text = self.cmdline.read_text(errors="replace")
        except FileNotFoundError:
            return {}
        params: dict[str, str] = {}
        for word in split_cmdline(text):
            key, sep, value = word.partition("=")
            if sep:
                params[key] = value
        return params

    def macs(self) -> tuple[str, ...]:
        """MAC addresses (lower case, colons) of the network interfaces other than loopback:
        those with a device behind them first (the NICs), each group by interface name."""
        try:
            interfaces = sorted(self.net.iterdir())
        except FileNotFoundError:
            return ()
        found: list[tuple[bool, str, str]] = []
        for interface in interfaces:
            try:
                address = (interface / "address").read_text().strip().lower()
            except OSError:
                continue
            if interface.name == "lo" or not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", address):
                continue  # loopback, InfiniBand (20 bytes), tunnels without an address
            if address == "00:00:00:00:00:00":
                continue
            found.append((not (interface / "device").exists(), interface.name, address))
        macs: list[str] = []
        for _, _, address in sorted(found):
            if address not in macs:
                macs.append(address)
        return tuple(macs)

    def has_route(self) -> bool:
        """Whether an interface other than loopback has a route: DHCP gave it an address (a
        link-local metadata network such as 169.254.169.0/24 may come without a gateway)."""
        if self.routes is None:
            return True
        try:
            lines = self.routes.read_text().splitlines()[1:]
        except OSError:
            return False
        return any(fields and fields[0] != "lo" for fields in (line.split() for line in lines))

    def wait_for_network(self, deadline: float) -> bool:
        """Wait until an interface has a route (the initrd's DHCP is done), at most
        network_wait seconds and not past `deadline`. False at once without a NIC."""
        if self.routes is None:
            return True
        if not self.macs():
            log("network: no network interface; network sources are not here")
            return False
        end = min(deadline, self.clock() + self.network_wait)
        if not self.has_route():
            log("network: waiting for an address (DHCP)")
        while not self.has_route():
            if self.clock() >= end:
                log(f"network: no address after {self.network_wait:.0f} s; "
                    "asking the network sources anyway", 4)
                return False
            self.sleep(0.5)
        return True

    def machine_uuid(self) -> str | None:
        """The SMBIOS system UUID (lower case), or None when there is none or it is unset."""
        try:
            text = self.product_uuid.read_text().strip()
            value = uuid.UUID(text)
        except (OSError, ValueError):
            return None
        if value.int in (0, (1 << 128) - 1):  # firmware that never set it
            return None
        return str(value)


def split_cmdline(text: str) -> list[str]:
    """Words of a kernel command line as the kernel and systemd read it: double quotes group
    spaces (`key="a b"` or `"key=a b"`) and are removed; there are no escapes."""
    words: list[str] = []
    current: list[str] = []
    quoted = started = False
    for char in text:
        if char == '"':
            quoted = not quoted
            started = True
        elif char.isspace() and not quoted:
            if started:
                words.append("".join(current))
            current, started = [], False
        else:
            current.append(char)
            started = True
    if started:
        words.append("".join(current))
    return words


def matchbox_mac(mac: str) -> str:
    """A MAC address as matchbox's examples put it in a query: `52-54-00-a1-9c-ae`."""
    return mac.lower().replace(":", "-")


# ------------------------------------------------------------------------------------------
# HTTP and commands: the two chokepoints (tests replace these)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def http_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
    follow_redirects: bool = False,
) -> Response:
    """One HTTP request, never through a proxy (the proxy variables of the initrd, if any,
    are not for link-local addresses), all of it within `timeout` seconds (a server that
    trickles is cut off). Any HTTP status is a Response; no answer at all raises Unreachable;
    a TLS certificate that does not verify, or an answer larger than MAX_BODY, raises
    SourceError (retrying would not help). Redirects are followed only when asked (a
    configuration URL may point at object storage), never from https to http."""
    try:
        answer = common.http_request(method, url, max_bytes=MAX_BODY, headers=headers,
                                     deadline=common.Deadline.after(timeout),
                                     follow_redirects=follow_redirects)
    except common.TLSError as error:
        raise SourceError(f"{method} {error}") from None
    except common.TooLarge:
        raise SourceError(f"{url}: answer larger than {MAX_BODY >> 20} MiB") from None
    except common.FetchError as error:
        raise Unreachable(str(error).removeprefix(f"{url}: ")) from None
    return Response(answer.status, answer.headers, answer.body)


def _reason(reason: object) -> str:
    """`connection refused`, `timed out`, ... for the log line."""
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    text = str(reason) or type(reason).__name__
    return "timed out" if text == "timed out" else text


COMMAND_TIMEOUT = 60.0  # seconds for mount and umount of a config drive


def run(argv: Sequence[str]) -> None:
    """Run a command (argv, no shell, stdin from /dev/null, at most COMMAND_TIMEOUT seconds);
    SourceError when it fails, with the command line and what it printed."""
    try:
        common.run(argv, timeout=COMMAND_TIMEOUT)
    except common.CommandError as error:
        raise SourceError(f"command failed: {error}") from None


# ------------------------------------------------------------------------------------------
# Retrying network requests


class Client:
    """HTTP for one source's fetch: every request is retried while there is no answer (or a
    5xx/429 one), pausing env.initial_delay, doubling up to env.max_delay, until `deadline`.

    With `probe=True` (a well-known address: ec2, gce), an address that has not answered at
    all within env.probe_timeout is "not here" (NotHere), so that discovery moves on; once it
    has answered anything, it is there, and failures go on until the deadline (SourceError).
    """

    def __init__(self, source: str, env: Environment, deadline: float, *, probe: bool) -> None:
        self.source = source
        self.env = env
        self.deadline = deadline
        self.answered = not probe
        self.probe_end = min(deadline, env.clock() + env.probe_timeout) if probe else deadline

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None, *,
                follow_redirects: bool = False) -> Response:
        env = self.env
        delay = env.initial_delay
        attempts = 0
        started = env.clock()
        while True:
            limit = self.deadline if self.answered else self.probe_end
            timeout = min(env.request_timeout, max(limit - env.clock(), 1.0))
            attempts += 1
            try:
                response = http_request(method, url, headers=headers, timeout=timeout,
                                        follow_redirects=follow_redirects)
            except Unreachable as error:
                problem = str(error)
            else:
                self.answered = True
                if response.status < 500 and response.status != 429:
                    return response
                problem = f"HTTP {response.status}"
                detail = response.text().strip().splitlines()[:1]
                if detail:
                    problem += f" ({detail[0][:120]})"
            limit = self.deadline if self.answered else self.probe_end
            remaining = limit - env.clock()
            if remaining <= 0:
                waited = env.clock() - started
                if not self.answered:
                    raise NotHere(f"no answer from {url} within {waited:.0f} s ({problem})")
                raise SourceError(f"{self.source}: {method} {url}: {problem}; gave up after "
                                  f"{attempts} attempts in {waited:.0f} s")
            pause = min(delay, remaining)
            log(f"{self.source}: {method} {url}: {problem}; retrying in {pause:.1f} s", 4)
            env.sleep(pause)
            delay = min(delay * 2, env.max_delay)


def plain_value(response: Response, what: str) -> str:
    """A metadata value: one line of printable UTF-8 (it goes into an EnvironmentFile)."""
    try:
        text = response.body.decode().strip()
    except UnicodeDecodeError:
        raise SourceError(f"{what} is not UTF-8: {response.body[:60]!r}") from None
    if not text.isprintable():
        raise SourceError(f"{what} is not a single line of text: {response.body[:60]!r}")
    return text


# ------------------------------------------------------------------------------------------
# The sources


class Source(Protocol):
    """A place the configuration may come from."""

    name: str

    def fetch(self, env: Environment, deadline: float) -> Found | None:
        """What this source has; None when it is not here; SourceError when it is here but
        broken. `deadline` is a point in time of env.clock()."""
        ...


class CmdlineSource:
    """`sonix.config.url=URL` (http, https or data:) with an optional `sonix.config.sha256`."""

    name = "cmdline"

    def fetch(self, env: Environment, deadline: float) -> Found | None:
        params = env.kernel_parameters()
        url = params.get("sonix.config.url", "")
        if not url:
            return None
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme == "data":
            config = parse_data_url(url)
        elif scheme in ("http", "https"):
            env.wait_for_network(deadline)
            client = Client(self.name, env, deadline, probe=False)
            response = client.request("GET", url, follow_redirects=True)
            if response.status != 200:
                raise SourceError(f"cmdline: GET {url} (sonix.config.url) answered HTTP "
                                  f"{response.status}")
            config = response.body
        else:
            raise SourceError(f"cmdline: sonix.config.url={url}: unsupported scheme "
                              f"{scheme or '(none)'!r}; use http, https or data")
        expected = params.get("sonix.config.sha256", "").lower()
        if expected:
            actual = hashlib.sha256(config).hexdigest()
            if actual != expected:
                raise SourceError(f"cmdline: the configuration from {shorten(url)} has sha256 "
                                  f"{actual}, but sonix.config.sha256={expected}")
        return Found(self.name, config=config)


def parse_data_url(url: str) -> bytes:
    """The bytes of an RFC 2397 `data:` URL (percent-encoded or `;base64`)."""
    header, sep, data = url.partition(",")
    if not sep:
        raise SourceError(f"cmdline: {shorten(url)} is not a data URL (no comma)")
    raw = urllib.parse.unquote_to_bytes(data)
    if header.lower().endswith(";base64"):
        try:
            return base64.b64decode(raw, validate=True)
        except binascii.Error as error:
            raise SourceError(f"cmdline: {shorten(url)}: bad base64: {error}") from None
    return raw


def shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CredentialsSource:
    """systemd credentials sonix.provision.* (and ssh.authorized_keys.root along with them)."""

    name = "credentials"

    def fetch(self, env: Environment, deadline: float) -> Found | None:
        directory = env.credentials_dir
        try:
            names = sorted(p.name for p in directory.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise SourceError(f"credentials: cannot list {directory}: {error.strerror}") from None
        # Only our own names make this source "here": ssh.authorized_keys.root alone is
        # systemd's (tmpfiles applies it) and must not hide the platform's user data.
        ours = [n for n in names if n.startswith("sonix.provision.")]
        if not ours:
            return None
        for name in ours:
            if name not in (CONFIG_CREDENTIAL, HOSTNAME_CREDENTIAL):
                log(f"credentials: ignoring unknown credential {name}", 4)

        def read(name: str) -> bytes | None:
            if name not in names:
                return None
            try:
                return (directory / name).read_bytes()
            except OSError as error:
                raise SourceError(f"credentials: cannot read {directory / name}: "
                                  f"{error.strerror}") from None

        hostname = (read(HOSTNAME_CREDENTIAL) or b"").decode(errors="replace").strip()
        keys = (read(SSH_KEYS_CREDENTIAL) or b"").decode(errors="replace")
        return Found(
            self.name,
            config=read(CONFIG_CREDENTIAL),
            hostname=hostname or None,
            ssh_keys=authorized_keys(keys),
        )


def authorized_keys(text: str) -> tuple[str, ...]:
    """The key lines of an authorized_keys text (no blank lines, no comments)."""
    return tuple(line.strip() for line in text.splitlines()
                 if line.strip() and not line.lstrip().startswith("#"))


class OpenStackSource:
    """An OpenStack config drive: the file system labelled config-2 (vfat or iso9660)."""

    name = "openstack"

    def fetch(self, env: Environment, deadline: float) -> Found | None:
        device = next((env.disk_by_label / label for label in CONFIG_DRIVE_LABELS
                       if (env.disk_by_label / label).exists()), None)
        if device is None:
            return None
        log(f"openstack: config drive {device}")
        with mounted(device, env.runtime_dir) as root:
            return read_config_drive(root)


@contextlib.contextmanager
def mounted(device: Path, parent: Path) -> Iterator[Path]:
    """`device` mounted read-only on a fresh directory below `parent` for a `with` block."""
    parent.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix="sonix-config-drive.", dir=parent))
    try:
        run(["mount", "-o", "ro", str(device), str(target)])
        try:
            yield target
        finally:
            run(["umount", str(target)])
    finally:
        with contextlib.suppress(OSError):
            target.rmdir()


def read_config_drive(root: Path, source: str = "openstack") -> Found:
    """What a mounted config drive holds: openstack/<version>/meta_data.json and user_data
    (`latest`, else the newest dated version), plus the EC2-style ec2/<version>/meta-data.json
    for the addresses and the flavor when the cloud wrote one."""
    version = _newest(root / "openstack")
    if version is None:
        raise SourceError(f"openstack: the config drive has no openstack/latest/meta_data.json "
                          f"(found: {_listing(root)})")
    meta_path = version / "meta_data.json"
    try:
        meta = json.loads(meta_path.read_bytes())
    except (OSError, ValueError) as error:
        raise SourceError(f"openstack: config drive {meta_path.relative_to(root)}: {error}"
                          ) from None
    if not isinstance(meta, dict):
        raise SourceError(f"openstack: config drive {meta_path.relative_to(root)} is not a "
                          "JSON object")
    user_data = version / "user_data"
    config = user_data.read_bytes() if user_data.is_file() else None

    attributes: dict[str, str] = {}

    def put(name: str, value: object) -> None:
        if isinstance(value, str | int) and str(value).strip() and str(value).isprintable():
            attributes[f"SONIX_OPENSTACK_{name}"] = str(value).strip()

    put("INSTANCE_ID", meta.get("uuid"))
    put("HOSTNAME", meta.get("hostname"))
    put("NAME", meta.get("name"))
    put("AVAILABILITY_ZONE", meta.get("availability_zone"))
    ec2_version = _newest(root / "ec2", "meta-data.json")
    if ec2_version is not None:
        try:
            ec2 = json.loads((ec2_version / "meta-data.json").read_bytes())
        except (OSError, ValueError) as error:
            raise SourceError(f"openstack: config drive ec2 meta-data.json: {error}") from None
        if isinstance(ec2, dict):
            put("INSTANCE_TYPE", ec2.get("instance-type"))
            put("IPV4_LOCAL", ec2.get("local-ipv4"))
            put("IPV4_PUBLIC", ec2.get("public-ipv4"))
    keys = meta.get("public_keys") or {}
    ssh_keys = tuple(key.strip() for _, key in sorted(keys.items())
                     if isinstance(key, str) and key.strip()) if isinstance(keys, dict) else ()
    hostname = attributes.get("SONIX_OPENSTACK_HOSTNAME")
    return Found(source, config=config, attributes=attributes, hostname=hostname,
                 ssh_keys=ssh_keys)


def _newest(directory: Path, wanted: str = "meta_data.json") -> Path | None:
    latest = directory / "latest"
    if (latest / wanted).is_file():
        return latest
    try:
        dated = sorted(p for p in directory.iterdir()
                       if re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.name) and (p / wanted).is_file())
    except OSError:
        return None
    return dated[-1] if dated else None


def _listing(root: Path) -> str:
    try:
        return ", ".join(sorted(p.name for p in root.iterdir())) or "nothing"
    except OSError as error:
        return str(error)


class NetworkSource:
    """The part all HTTP sources share: a Client, and NotHere turned into None."""

    name = ""
    probe = True

    def fetch(self, env: Environment, deadline: float) -> Found | None:
        if not env.macs() and env.routes is not None:
            log(f"{self.name}: not here: no network interface")
            return None
        env.wait_for_network(deadline)
        client = Client(self.name, env, deadline, probe=self.probe)
        try:
            return self.fetch_with(client, env)
        except NotHere as error:
            log(f"{self.name}: not here: {error}")
            return None

    def fetch_with(self, client: Client, env: Environment) -> Found | None:
        raise NotImplementedError


class Ec2Source(NetworkSource):
    """The EC2 instance metadata service, IMDSv2 (token) first."""

    name = "ec2"
    # meta-data/<path> -> attribute, as Afterburn's aws provider (AFTERBURN_AWS_*)
    ATTRIBUTES = (
        ("instance-id", "INSTANCE_ID"),
        ("instance-type", "INSTANCE_TYPE"),
        ("hostname", "HOSTNAME"),
        ("public-hostname", "PUBLIC_HOSTNAME"),
        ("local-ipv4", "IPV4_LOCAL"),
        ("public-ipv4", "IPV4_PUBLIC"),
        ("placement/availability-zone", "AVAILABILITY_ZONE"),
        ("placement/region", "REGION"),
    )

    def fetch_with(self, client: Client, env: Environment) -> Found | None:
        base = env.ec2_url.rstrip("/") + "/latest"
        token_url = f"{base}/api/token"
        response = client.request("PUT", token_url,
                                  {"X-aws-ec2-metadata-token-ttl-seconds": IMDS_TOKEN_TTL})
        headers: dict[str, str] = {}
        if response.status == 200:
            token = plain_value(response, f"ec2: PUT {token_url}")
            if not token:
                raise SourceError(f"ec2: PUT {token_url} answered 200 without a token")
            headers = {"X-aws-ec2-metadata-token": token}
        elif response.status in (403, 404, 405):
            # An IMDS without the token API (IMDSv1 only, or an EC2-compatible service of
            # another cloud): plain GETs, but only when instance-id answers to them. AWS's
            # IMDS with tokens required answers 401 to those, so this never weakens it.
            v1 = client.request("GET", f"{base}/meta-data/instance-id")
            if v1.status != 200:
                log(f"ec2: not here: PUT {token_url} answered {response.status}, "
                    f"GET {base}/meta-data/instance-id {v1.status}")
                return None
            log(f"ec2: the token API answered {response.status}; using IMDSv1", 4)
        else:
            log(f"ec2: not here: PUT {token_url} answered {response.status}")
            return None

        def get(path: str) -> Response:
            url = f"{base}/{path}"
            answer = client.request("GET", url, headers)
            if answer.status == 401:
                raise SourceError(f"ec2: GET {url}: the IMDS refused the session token (401)")
            if answer.status not in (200, 404):
                raise SourceError(f"ec2: GET {url} answered HTTP {answer.status}")
            return answer

        attributes: dict[str, str] = {}
        for path, name in self.ATTRIBUTES:
            answer = get(f"meta-data/{path}")
            if answer.status == 200:
                value = plain_value(answer, f"ec2: meta-data/{path}")
                if value:
                    attributes[f"SONIX_EC2_{name}"] = value
            elif path == "instance-id":
                raise SourceError(f"ec2: GET {base}/meta-data/instance-id answered 404 "
                                  "although the token API answered")
        user_data = get("user-data")
        keys: list[str] = []
        listing = get("meta-data/public-keys/")
        if listing.status == 200:
            for line in listing.text().splitlines():
                index = line.partition("=")[0].strip()
                if not index.isdigit():
                    raise SourceError(f"ec2: meta-data/public-keys/ lists {line!r}, "
                                      "not INDEX=NAME")
                key = get(f"meta-data/public-keys/{index}/openssh-key")
                if key.status == 200:
                    keys.extend(authorized_keys(key.text()))
        return Found(
            self.name,
            config=user_data.body if user_data.status == 200 else None,
            attributes=attributes,
            hostname=attributes.get("SONIX_EC2_HOSTNAME"),
            ssh_keys=tuple(keys),
        )


class GceSource(NetworkSource):
    """The GCE metadata server; only answers with `Metadata-Flavor: Google` count."""

    name = "gce"
    ATTRIBUTES = (
        ("instance/id", "INSTANCE_ID"),
        ("instance/hostname", "HOSTNAME"),
        ("instance/machine-type", "MACHINE_TYPE"),
        ("instance/zone", "ZONE"),
        ("instance/network-interfaces/0/ip", "IP_LOCAL_0"),
        ("instance/network-interfaces/0/access-configs/0/external-ip", "IP_EXTERNAL_0"),
    )

    def fetch_with(self, client: Client, env: Environment) -> Found | None:
        base = env.gce_url.rstrip("/") + "/computeMetadata/v1"
        headers = {"Metadata-Flavor": "Google"}
        if env.gce_host:
            headers["Host"] = env.gce_host

        confirmed = False

        def get(path: str) -> Response:
            url = f"{base}/{path}"
            answer = client.request("GET", url, headers)
            if answer.headers.get("metadata-flavor", "").lower() != "google":
                problem = f"GET {url} answered {answer.status} without Metadata-Flavor: Google"
                if confirmed:
                    raise SourceError(f"gce: {problem}")
                raise NotHere(problem)  # another platform's metadata service, or none
            if answer.status not in (200, 404):
                raise SourceError(f"gce: GET {url} answered HTTP {answer.status}")
            return answer

        first = get("instance/id")
        confirmed = True
        if first.status != 200:
            raise SourceError(f"gce: GET {base}/instance/id answered {first.status}")
        attributes: dict[str, str] = {}
        for path, name in self.ATTRIBUTES:
            answer = first if path == "instance/id" else get(path)
            if answer.status == 200:
                value = plain_value(answer, f"gce: {path}")
                if value:
                    attributes[f"SONIX_GCE_{name}"] = value
        user_data = get("instance/attributes/user-data")
        instance_keys = get("instance/attributes/ssh-keys")
        lines = instance_keys.text().splitlines() if instance_keys.status == 200 else []
        block = get("instance/attributes/block-project-ssh-keys")
        if not (block.status == 200 and block.text().strip().lower() == "true"):
            project_keys = get("project/attributes/ssh-keys")
            if project_keys.status == 200:
                lines += project_keys.text().splitlines()
        return Found(
            self.name,
            config=user_data.body if user_data.status == 200 else None,
            attributes=attributes,
            hostname=attributes.get("SONIX_GCE_HOSTNAME"),
            ssh_keys=gce_ssh_keys(lines),
        )


def gce_ssh_keys(lines: Sequence[str]) -> tuple[str, ...]:
    """The keys of GCE `ssh-keys` lines (`user:ssh-ed25519 AAAA... comment`), users dropped,
    duplicates once."""
    keys: list[str] = []
    for line in lines:
        user, sep, key = line.strip().partition(":")
        key = key.strip()
        if sep and user and key and key not in keys:
            keys.append(key)
    return tuple(keys)


class MatchboxSource(NetworkSource):
    """A matchbox server: /ignition and /metadata selected by the machine's MAC and UUID."""

    name = "matchbox"
    probe = False  # configured explicitly: not answering is an error, not "not here"

    def fetch(self, env: Environment, deadline: float) -> Found | None:
        if not self.url(env):
            return None
        return super().fetch(env, deadline)

    @staticmethod
    def url(env: Environment) -> str:
        return (env.kernel_parameters().get("sonix.matchbox.url") or env.matchbox_url
                or "").rstrip("/")

    def fetch_with(self, client: Client, env: Environment) -> Found | None:
        url = self.url(env)
        machine_uuid = env.machine_uuid()
        macs = env.macs()
        if machine_uuid is None and not macs:
            raise SourceError("matchbox: this machine has neither an SMBIOS UUID nor a MAC "
                              "address to be selected by")
        # Each NIC in turn (matchbox selects by one MAC), the UUID always along.
        queries = [urllib.parse.urlencode({k: v for k, v in
                                           (("uuid", machine_uuid), ("mac", matchbox_mac(m)))
                                           if v})
                   for m in (macs or ("",))]
        config: bytes | None = None
        for query in queries:
            response = client.request("GET", f"{url}/ignition?{query}")
            if response.status == 200:
                config = response.body
                break
            if response.status != 404:
                raise SourceError(f"matchbox: GET {url}/ignition?{query} answered HTTP "
                                  f"{response.status}")
        else:
            raise SourceError(
                f"matchbox: {url} has no group for this machine (uuid {machine_uuid or 'none'}, "
                f"mac {', '.join(macs) or 'none'}): /ignition answered 404"
            )
        response = client.request("GET", f"{url}/metadata?{query}")
        if response.status not in (200, 404):
            raise SourceError(f"matchbox: GET {url}/metadata?{query} answered HTTP "
                              f"{response.status}")
        metadata = parse_env_lines(response.text()) if response.status == 200 else {}
        attributes = {f"SONIX_MATCHBOX_{key}": value for key, value in metadata.items()
                      if re.fullmatch(r"[A-Z0-9_]+", key) and not key.startswith("REQUEST_")
                      and value.isprintable()}
        return Found(
            self.name,
            config=config,
            attributes=attributes,
            hostname=metadata.get("HOSTNAME") or None,
            channel=metadata.get("CHANNEL") or None,
            profile=metadata.get("PROFILE") or None,
        )


def parse_env_lines(text: str) -> dict[str, str]:
    """KEY=value lines (matchbox's /metadata); blank lines and # comments skipped, one level
    of surrounding quotes removed."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        key, sep, value = line.partition("=")
        if not sep or line.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip().upper()] = value
    return values


SOURCES: tuple[Source, ...] = (
    CmdlineSource(),
    CredentialsSource(),
    OpenStackSource(),
    Ec2Source(),
    GceSource(),
    MatchboxSource(),
)
DEFAULT_ORDER: tuple[str, ...] = tuple(source.name for source in SOURCES)


def source_named(name: str) -> Source:
    for source in SOURCES:
        if source.name == name:
            return source
    raise ValueError(f"unknown provisioning source {name!r} "
                     f"(known: {', '.join(DEFAULT_ORDER)})")


def discover(
    env: Environment,
    order: Sequence[str] = DEFAULT_ORDER,
    timeout: float = DEFAULT_TIMEOUT,
) -> Found | None:
    """Ask the sources named in `order`, one after the other, within `timeout` seconds in
    all; the first that is there wins. None: no source is there. A source that is there but
    broken raises SourceError and stops discovery (falling through to the next source would
    provision the machine from a place its owner did not mean)."""
    sources = [source_named(name) for name in order]  # unknown names fail before any wait
    deadline = env.clock() + timeout
    for source in sources:
        found = source.fetch(env, deadline)
        if found is not None:
            config = "no config" if found.config is None else f"config {len(found.config)} bytes"
            log(f"{source.name}: found ({config}, {len(found.attributes)} attributes, "
                f"{len(found.ssh_keys)} ssh keys)")
            return found
        log(f"{source.name}: nothing there")
    log(f"no source had anything (asked: {', '.join(order) or 'none'})")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m agents.metadata",
        description="Look for this machine's provisioning configuration and metadata "
        "(docs/metadata-sources.md) and print what was found as JSON.",
    )
    default_order = ",".join(DEFAULT_ORDER)
    parser.add_argument("--sources", default=default_order,
                        help=f"sources in order, comma-separated (default {default_order})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds for all sources together (default {DEFAULT_TIMEOUT:.0f})")
    parser.add_argument("--probe-timeout", type=float, default=PROBE_TIMEOUT,
                        help="seconds ec2 and gce get to answer at all "
                        f"(default {PROBE_TIMEOUT:.0f})")
    parser.add_argument("--matchbox-url", help="matchbox base URL (sonix.matchbox.url= wins)")
    args = parser.parse_args(argv)
    env = Environment.from_system(matchbox_url=args.matchbox_url, probe_timeout=args.probe_timeout)
    order = [name.strip() for name in args.sources.split(",") if name.strip()]
    try:
        found = discover(env, order, args.timeout)
    except (SourceError, ValueError) as error:
        log(str(error), 3)
        return 1
    print(json.dumps(found.to_json() if found else None, indent=2, sort_keys=True))
    return 0 if found else 2


if __name__ == "__main__":
    sys.exit(main())
