"""The provisioning sources (src/sonix/agents/metadata.py) against recorded answers
(tests/fixtures/metadata/), with the one HTTP function and the one command runner replaced
and a fake clock: no network, no mounts, no real sleeping. The real server and the real HTTP
path are tested in tests/integration/test_metadata_server.py."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from sonix.agents import metadata
from sonix.agents.metadata import (
    Environment,
    Found,
    Response,
    SourceError,
    Unreachable,
    discover,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "metadata"
USER_DATA = (FIXTURES / "user-data.ign").read_bytes()
IMDS = "http://169.254.169.254"
MATCHBOX = "http://10.0.2.100:8080"


# ------------------------------------------------------------------------------------------
# Fakes: clock, HTTP, commands


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Call:
    method: str
    url: str
    headers: dict[str, str]
    timeout: float
    follow_redirects: bool


Handler = Callable[[Call], Response]


@dataclass
class FakeHttp:
    """Answers by (method, URL without query) or by a catch-all; records every call. A
    handler may raise Unreachable; `cost` is how long each call takes on the fake clock."""

    clock: FakeClock
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    fallback: Handler | None = None
    calls: list[Call] = field(default_factory=list)
    cost: float = 0.0

    def __call__(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                 timeout: float = 5.0, follow_redirects: bool = False) -> Response:
        call = Call(method, url, dict(headers or {}), timeout, follow_redirects)
        self.calls.append(call)
        self.clock.now += self.cost
        handler = self.routes.get((method, url.split("?")[0])) or self.fallback
        if handler is None:
            raise Unreachable("connection refused")
        return handler(call)

    def add(self, method: str, url: str, handler: Handler | Response | bytes) -> None:
        if isinstance(handler, bytes):
            handler = ok(handler)
        if isinstance(handler, Response):
            answer = handler
            self.routes[(method, url)] = lambda call: answer
        else:
            self.routes[(method, url)] = handler

    def urls(self, method: str | None = None) -> list[str]:
        return [c.url for c in self.calls if method is None or c.method == method]


def ok(body: bytes | str, headers: dict[str, str] | None = None) -> Response:
    return Response(200, headers or {}, body.encode() if isinstance(body, str) else body)


def status(code: int, headers: dict[str, str] | None = None) -> Response:
    return Response(code, headers or {}, b"")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def http(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FakeHttp:
    fake = FakeHttp(clock)
    monkeypatch.setattr(metadata, "http_request", fake)
    return fake


@pytest.fixture
def env(tmp_path: Path, clock: FakeClock) -> Environment:
    """A machine in tmp_path: nothing on the command line, no credentials, no drives, one
    NIC, a UUID."""
    (tmp_path / "cmdline").write_text("BOOT_IMAGE=/vmlinuz console=ttyS0 quiet\n")
    nic = tmp_path / "net" / "ens3"
    nic.mkdir(parents=True)
    (nic / "address").write_text("52:54:00:12:34:56\n")
    (nic / "device").mkdir()
    (tmp_path / "product_uuid").write_text("5F2A3B6C-1D2E-4F50-8A9B-0C1D2E3F4A5B\n")
    return Environment(
        cmdline=tmp_path / "cmdline",
        net=tmp_path / "net",
        product_uuid=tmp_path / "product_uuid",
        credentials_dir=tmp_path / "credentials",
        disk_by_label=tmp_path / "by-label",
        runtime_dir=tmp_path / "run",
        ec2_url=IMDS,
        gce_url=IMDS,
        clock=clock.time,
        sleep=clock.sleep,
    )


def fetch(name: str, env: Environment, timeout: float = 120.0) -> Found | None:
    return metadata.source_named(name).fetch(env, env.clock() + timeout)


# ------------------------------------------------------------------------------------------
# Reading the machine: command line, MACs, UUID


def test_cmdline_words_with_quotes() -> None:
    line = ('BOOT_IMAGE=/vmlinuz sonix.config.url="http://h/a b.ign" "sonix.matchbox.url=http://m:8080"'
            ' ro  quiet x="" \n')
    assert metadata.split_cmdline(line) == [
        "BOOT_IMAGE=/vmlinuz", "sonix.config.url=http://h/a b.ign",
        "sonix.matchbox.url=http://m:8080", "ro", "quiet", "x=",
    ]


def test_kernel_parameters_last_one_wins(env: Environment) -> None:
    env.cmdline.write_text('a=1 sonix.config.url=http://x/1 flag sonix.config.url="http://x/2"\n')
    params = env.kernel_parameters()
    assert params == {"a": "1", "sonix.config.url": "http://x/2"}
    assert replace(env, cmdline=env.cmdline.parent / "missing").kernel_parameters() == {}


def test_macs_skip_loopback_and_put_nics_first(env: Environment) -> None:
    net = env.net
    for name, address, device in [("lo", "00:00:00:00:00:00", False),
                                  ("br0", "AA:BB:CC:00:11:22", False),
                                  ("eth1", "52:54:00:AB:CD:EF", True),
                                  ("ib0", "80:00:00:48:fe:80:00:00:00:00:00:00:00:02:c9:03:00:1f",
                                   True),
                                  ("wg0", "", False)]:
        (net / name).mkdir()
        (net / name / "address").write_text(address + "\n")
        if device:
            (net / name / "device").mkdir()
    assert env.macs() == ("52:54:00:12:34:56", "52:54:00:ab:cd:ef", "aa:bb:cc:00:11:22")
    assert metadata.matchbox_mac("52:54:00:AB:CD:EF") == "52-54-00-ab-cd-ef"


def test_machine_uuid_lower_case_or_none(env: Environment) -> None:
    assert env.machine_uuid() == "5f2a3b6c-1d2e-4f50-8a9b-0c1d2e3f4a5b"
    env.product_uuid.write_text("00000000-0000-0000-0000-000000000000\n")
    assert env.machine_uuid() is None
    env.product_uuid.unlink()
    assert env.machine_uuid() is None


def test_from_system_takes_the_service_credentials_directory() -> None:
    env = Environment.from_system(environ={"CREDENTIALS_DIRECTORY": "/run/credentials/x.service"},
                                  matchbox_url="http://m", probe_timeout=3)
    assert env.credentials_dir == Path("/run/credentials/x.service")
    assert (env.matchbox_url, env.probe_timeout) == ("http://m", 3)
    assert Environment.from_system(environ={}).credentials_dir == Path("/run/credentials/@system")


def test_environment_file_quotes_what_needs_it() -> None:
    found = Found("x", attributes={"SONIX_X_B": 'a "b" $c', "SONIX_X_A": "eu-central-1a"})
    assert found.environment_file() == 'SONIX_X_A=eu-central-1a\nSONIX_X_B="a \\"b\\" \\$c"\n'


# ------------------------------------------------------------------------------------------
# cmdline


def test_cmdline_absent_or_empty_is_not_here(env: Environment, http: FakeHttp) -> None:
    assert fetch("cmdline", env) is None
    env.cmdline.write_text("sonix.config.url= quiet\n")
    assert fetch("cmdline", env) is None
    assert http.calls == []


def test_cmdline_data_urls(env: Environment) -> None:
    env.cmdline.write_text("sonix.config.url=data:,%7B%22ignition%22%3A%7B%7D%7D\n")
    found = fetch("cmdline", env)
    assert found == Found("cmdline", config=b'{"ignition":{}}')
    encoded = base64.b64encode(USER_DATA).decode()
    env.cmdline.write_text(f"sonix.config.url=data:application/json;base64,{encoded}\n")
    assert (found := fetch("cmdline", env)) is not None and found.config == USER_DATA


def test_cmdline_http_with_sha256(env: Environment, http: FakeHttp) -> None:
    digest = hashlib.sha256(USER_DATA).hexdigest()
    env.cmdline.write_text(f"sonix.config.url=http://10.0.2.2/c.ign sonix.config.sha256={digest}\n")
    http.add("GET", "http://10.0.2.2/c.ign", USER_DATA)
    found = fetch("cmdline", env)
    assert found is not None and found.config == USER_DATA
    [call] = http.calls
    assert call.follow_redirects  # a config URL may redirect (object storage); IMDS may not

    zeros = "0" * 64
    env.cmdline.write_text(f"sonix.config.url=http://10.0.2.2/c.ign sonix.config.sha256={zeros}\n")
    with pytest.raises(SourceError, match=f"has sha256 {digest}, but sonix.config.sha256=0000"):
        fetch("cmdline", env)


def test_cmdline_errors(env: Environment, http: FakeHttp) -> None:
    env.cmdline.write_text("sonix.config.url=tftp://10.0.2.2/c.ign\n")
    with pytest.raises(SourceError, match="unsupported scheme 'tftp'; use http, https or data"):
        fetch("cmdline", env)
    env.cmdline.write_text("sonix.config.url=http://10.0.2.2/missing.ign\n")
    http.add("GET", "http://10.0.2.2/missing.ign", status(404))
    with pytest.raises(SourceError, match=r"GET http://10.0.2.2/missing.ign \(sonix.config.url\) "
                                          "answered HTTP 404"):
        fetch("cmdline", env)
    env.cmdline.write_text("sonix.config.url=data:;base64,!!!\n")
    with pytest.raises(SourceError, match="bad base64"):
        fetch("cmdline", env)


def test_cmdline_url_is_retried_until_the_deadline(env: Environment, http: FakeHttp,
                                                    clock: FakeClock) -> None:
    """Configured explicitly: a server that does not answer is an error, after the deadline
    (not "not here" after the probe window)."""
    env.cmdline.write_text("sonix.config.url=http://10.0.2.2/c.ign\n")
    with pytest.raises(SourceError) as error:
        fetch("cmdline", env, timeout=30)
    assert str(error.value) == ("cmdline: GET http://10.0.2.2/c.ign: connection refused; gave up "
                                "after 8 attempts in 30 s")
    assert clock.sleeps == [0.5, 1, 2, 4, 8, 8, 6.5]  # doubling to 8 s, the last one cut short


# ------------------------------------------------------------------------------------------
# credentials


def credentials(env: Environment, **files: bytes) -> None:
    env.credentials_dir.mkdir(exist_ok=True)
    for name, data in files.items():
        (env.credentials_dir / name.replace("_", ".")).write_bytes(data)


def test_credentials_absent_or_not_ours(env: Environment) -> None:
    assert fetch("credentials", env) is None  # no directory at all
    credentials(env, ssh_authorized_keys_root=b"ssh-ed25519 AAAA root\n")
    assert fetch("credentials", env) is None  # systemd's own credential alone


def test_credentials_as_systemd_writes_them(env: Environment) -> None:
    # -smbios type=11,value=io.systemd.credential.binary:sonix.provision.config=<base64>:
    # systemd decodes it; the file holds the bytes. Text credentials have no newline added.
    binary = b"\x00\xffnot text"
    (env.credentials_dir).mkdir()
    (env.credentials_dir / "sonix.provision.config").write_bytes(binary)
    (env.credentials_dir / "sonix.provision.hostname").write_bytes(b"web-1")
    (env.credentials_dir / "ssh.authorized_keys.root").write_bytes(
        b"# ops\nssh-ed25519 AAAA one\n\nssh-rsa BBBB two\n")
    (env.credentials_dir / "passwd.hashed-password.root").write_bytes(b"$y$...")
    found = fetch("credentials", env)
    assert found == Found("credentials", config=binary, hostname="web-1",
                          ssh_keys=("ssh-ed25519 AAAA one", "ssh-rsa BBBB two"))


def test_credentials_hostname_alone_counts(env: Environment, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    credentials(env, sonix_provision_hostname=b"db-1\n", sonix_provision_typo=b"x")
    assert fetch("credentials", env) == Found("credentials", hostname="db-1")
    assert "ignoring unknown credential sonix.provision.typo" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# openstack (config drive)


def test_config_drive_read(tmp_path: Path) -> None:
    found = metadata.read_config_drive(FIXTURES / "openstack")
    assert found.source == "openstack"
    assert found.config == USER_DATA
    assert found.attributes == {
        "SONIX_OPENSTACK_INSTANCE_ID": "83679162-1378-4288-a2d4-70e13ec132aa",
        "SONIX_OPENSTACK_HOSTNAME": "web-1.novalocal",
        "SONIX_OPENSTACK_NAME": "web-1",
        "SONIX_OPENSTACK_AVAILABILITY_ZONE": "nova",
        "SONIX_OPENSTACK_INSTANCE_TYPE": "m1.small",
        "SONIX_OPENSTACK_IPV4_LOCAL": "10.0.0.12",
        "SONIX_OPENSTACK_IPV4_PUBLIC": "203.0.113.12",
    }
    assert found.hostname == "web-1.novalocal"
    assert found.ssh_keys == ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbhXzNd3mW4Jz8k2G2c1QF3sVx1kZp5"
                              "eT0a9fUo8kQb ops-2026",)


def test_config_drive_dated_version_and_no_user_data(tmp_path: Path) -> None:
    for version in ("2012-08-10", "2013-04-04"):
        (tmp_path / "openstack" / version).mkdir(parents=True)
        (tmp_path / "openstack" / version / "meta_data.json").write_text(
            json.dumps({"uuid": version, "hostname": "h"}))
    found = metadata.read_config_drive(tmp_path)
    assert found.config is None and found.attributes["SONIX_OPENSTACK_INSTANCE_ID"] == "2013-04-04"


def test_config_drive_broken(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no openstack/latest/meta_data\.json"):
        metadata.read_config_drive(tmp_path)
    (tmp_path / "openstack/latest").mkdir(parents=True)
    (tmp_path / "openstack/latest/meta_data.json").write_text("{not json")
    with pytest.raises(SourceError, match=r"openstack/latest/meta_data\.json: Expecting"):
        metadata.read_config_drive(tmp_path)


def test_config_drive_mounted_read_only_and_unmounted(
    env: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fetch("openstack", env) is None  # no drive labelled config-2
    env.disk_by_label.mkdir()
    (env.disk_by_label.parent / "vdb").touch()
    (env.disk_by_label / "config-2").symlink_to("../vdb")  # as udev links it
    commands: list[list[str]] = []

    def run(argv: Sequence[str]) -> None:
        commands.append(list(argv))
        if argv[0] == "mount":  # the "mount": the fixture's files appear on the mount point
            shutil.copytree(FIXTURES / "openstack", argv[-1], dirs_exist_ok=True)

    monkeypatch.setattr(metadata, "run", run)
    found = fetch("openstack", env)
    assert found is not None and found.config == USER_DATA
    [mount, umount] = commands
    target = mount[-1]
    assert mount == ["mount", "-o", "ro", str(env.disk_by_label / "config-2"), target]
    assert umount == ["umount", target]
    assert Path(target).parent == env.runtime_dir


def test_config_drive_mount_failure_is_a_source_error(
    env: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.disk_by_label.mkdir()
    (env.disk_by_label / "CONFIG-2").touch()

    def run(argv: Sequence[str]) -> None:
        raise SourceError(f"command failed with exit status 32: {' '.join(argv)}: unknown "
                          "filesystem type 'vfat'")

    monkeypatch.setattr(metadata, "run", run)
    with pytest.raises(SourceError, match="unknown filesystem type 'vfat'"):
        fetch("openstack", env)
    assert list(env.runtime_dir.iterdir()) == []  # the mount point is removed again


# ------------------------------------------------------------------------------------------
# ec2


def fake_ec2(http: FakeHttp, *, user_data: bytes | None = USER_DATA, v1: bool = False) -> str:
    """The recorded IMDS answers; GETs need the token (or none at all with v1=True)."""
    recorded = json.loads((FIXTURES / "ec2.json").read_text())
    token: str = recorded["token"]
    answers: dict[str, str | bytes] = dict(recorded["responses"])
    if user_data is not None:
        answers["/latest/user-data"] = user_data

    def put_token(call: Call) -> Response:
        assert call.headers == {"X-aws-ec2-metadata-token-ttl-seconds": "21600"}
        return ok(token)

    def get(call: Call) -> Response:
        if v1:
            assert "X-aws-ec2-metadata-token" not in call.headers
        elif call.headers.get("X-aws-ec2-metadata-token") != token:
            return status(401)
        path = urllib.parse.urlsplit(call.url).path
        return ok(answers[path]) if path in answers else status(404)

    if v1:
        http.add("PUT", f"{IMDS}/latest/api/token", status(405))
    else:
        http.add("PUT", f"{IMDS}/latest/api/token", put_token)
    http.fallback = get
    return token


EC2_ATTRIBUTES = {
    "SONIX_EC2_INSTANCE_ID": "i-0a1b2c3d4e5f67890",
    "SONIX_EC2_INSTANCE_TYPE": "t3.small",
    "SONIX_EC2_HOSTNAME": "ip-172-31-20-5.eu-central-1.compute.internal",
    "SONIX_EC2_PUBLIC_HOSTNAME": "ec2-3-120-10-20.eu-central-1.compute.amazonaws.com",
    "SONIX_EC2_IPV4_LOCAL": "172.31.20.5",
    "SONIX_EC2_IPV4_PUBLIC": "3.120.10.20",
    "SONIX_EC2_AVAILABILITY_ZONE": "eu-central-1b",
    "SONIX_EC2_REGION": "eu-central-1",
}


def test_ec2_imdsv2_token_flow(env: Environment, http: FakeHttp) -> None:
    token = fake_ec2(http)
    found = fetch("ec2", env)
    assert found == Found(
        "ec2", config=USER_DATA, attributes=EC2_ATTRIBUTES,
        hostname="ip-172-31-20-5.eu-central-1.compute.internal",
        ssh_keys=("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbhXzNd3mW4Jz8k2G2c1QF3sVx1kZp5eT0a9fUo8kQb"
                  " ops-2026",),
    )
    first, *rest = http.calls
    assert (first.method, first.url) == ("PUT", f"{IMDS}/latest/api/token")
    assert rest and all(c.method == "GET" for c in rest)
    assert all(c.headers == {"X-aws-ec2-metadata-token": token} for c in rest)
    assert not any(c.follow_redirects for c in http.calls)
    assert f"{IMDS}/latest/meta-data/public-keys/0/openssh-key" in http.urls()


def test_ec2_without_user_data(env: Environment, http: FakeHttp) -> None:
    fake_ec2(http, user_data=None)
    found = fetch("ec2", env)
    assert found is not None and found.config is None  # 404: no user data, not an error
    assert found.attributes == EC2_ATTRIBUTES


def test_ec2_imdsv1_only_when_the_token_api_is_refused(
    env: Environment, http: FakeHttp, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_ec2(http, v1=True)
    found = fetch("ec2", env)
    assert found is not None and found.attributes == EC2_ATTRIBUTES
    assert "the token API answered 405; using IMDSv1" in capsys.readouterr().err


def test_ec2_not_here_when_the_address_is_something_else(env: Environment, http: FakeHttp) -> None:
    http.fallback = lambda call: status(404)  # e.g. GCE's server, or any web server
    assert fetch("ec2", env) is None
    assert http.urls() == [f"{IMDS}/latest/api/token", f"{IMDS}/latest/meta-data/instance-id"]


def test_ec2_not_answering_is_not_here_after_the_probe_window(
    env: Environment, http: FakeHttp, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    found = fetch("ec2", env)  # nothing routed: every attempt is "connection refused"
    assert found is None
    assert clock.sleeps == [0.5, 1, 2, 4, 2.5]  # 10 s probe window, backoff doubling
    assert clock.now == 1010
    err = capsys.readouterr().err
    assert (f"<4>sonix-provision: ec2: PUT {IMDS}/latest/api/token: connection refused; "
            "retrying in 0.5 s\n") in err
    assert "retrying in 4.0 s" in err
    assert "ec2: not here: no answer from" in err


def test_ec2_broken_imds_is_a_source_error_at_the_deadline(
    env: Environment, http: FakeHttp, clock: FakeClock
) -> None:
    http.fallback = lambda call: Response(500, {}, b"Internal Server Error\n")
    with pytest.raises(SourceError) as error:
        fetch("ec2", env, timeout=60)
    assert str(error.value) == (f"ec2: PUT {IMDS}/latest/api/token: HTTP 500 (Internal Server "
                                "Error); gave up after 12 attempts in 60 s")
    assert clock.sleeps[:6] == [0.5, 1, 2, 4, 8, 8]  # 8 s at most between attempts
    assert clock.now == 1060


def test_ec2_slow_requests_count_against_the_deadline(
    env: Environment, http: FakeHttp, clock: FakeClock
) -> None:
    def slow(call: Call) -> Response:
        assert call.timeout <= env.request_timeout
        clock.now += call.timeout
        raise Unreachable("timed out")

    http.fallback = slow
    assert fetch("ec2", env) is None
    assert clock.now == pytest.approx(1010, abs=1.0)


def test_ec2_garbage_is_a_source_error(env: Environment, http: FakeHttp) -> None:
    fake_ec2(http)
    http.add("GET", f"{IMDS}/latest/meta-data/instance-id",
             ok("<html>\n<body>captive portal</body>\n</html>\n"))
    with pytest.raises(SourceError, match=r"ec2: meta-data/instance-id is not a single line"):
        fetch("ec2", env)


def test_ec2_token_refused_later(env: Environment, http: FakeHttp) -> None:
    fake_ec2(http)
    http.add("GET", f"{IMDS}/latest/user-data", status(401))
    with pytest.raises(SourceError, match="the IMDS refused the session token"):
        fetch("ec2", env)


# ------------------------------------------------------------------------------------------
# gce


def fake_gce(http: FakeHttp, **extra: str) -> None:
    answers: dict[str, str] = json.loads((FIXTURES / "gce.json").read_text())["responses"]
    answers.update(extra)
    base = f"{IMDS}/computeMetadata/v1/"

    def get(call: Call) -> Response:
        assert call.headers == {"Metadata-Flavor": "Google", "Host": "metadata.google.internal"}
        path = call.url.removeprefix(base)
        flavor = {"metadata-flavor": "Google"}
        return ok(answers[path], flavor) if path in answers else status(404, flavor)

    http.fallback = get


def test_gce(env: Environment, http: FakeHttp) -> None:
    fake_gce(http, **{"instance/attributes/user-data": USER_DATA.decode()})
    found = fetch("gce", env)
    assert found is not None
    assert found.config == USER_DATA
    assert found.attributes == {
        "SONIX_GCE_INSTANCE_ID": "4520031799277581759",
        "SONIX_GCE_HOSTNAME": "web-1.europe-west3-a.c.sonix-test.internal",
        "SONIX_GCE_MACHINE_TYPE": "projects/123456789012/machineTypes/e2-small",
        "SONIX_GCE_ZONE": "projects/123456789012/zones/europe-west3-a",
        "SONIX_GCE_IP_LOCAL_0": "10.156.0.7",
        "SONIX_GCE_IP_EXTERNAL_0": "34.107.12.34",
    }
    assert found.hostname == "web-1.europe-west3-a.c.sonix-test.internal"
    assert [key.split()[-1] for key in found.ssh_keys] == [
        "alice@laptop", '{"userName":"bob@example.com","expireOn":"2030-01-01T00:00:00+0000"}',
        "ops",
    ]


def test_gce_without_user_data_and_blocked_project_keys(env: Environment, http: FakeHttp) -> None:
    fake_gce(http, **{"instance/attributes/block-project-ssh-keys": "TRUE"})
    found = fetch("gce", env)
    assert found is not None and found.config is None
    assert len(found.ssh_keys) == 2
    assert f"{IMDS}/computeMetadata/v1/project/attributes/ssh-keys" not in http.urls()


def test_gce_answers_without_the_flavor_header_are_not_gce(env: Environment, http: FakeHttp
                                                           ) -> None:
    http.fallback = lambda call: ok("i-0a1b2c3d4e5f67890")  # an EC2 IMDS in v1 mode, say
    assert fetch("gce", env) is None


def test_gce_ssh_key_lines() -> None:
    lines = ["alice:ssh-ed25519 AAAA a", "", "nouser", "bob:ssh-ed25519 AAAA a", ":x", "c: "]
    assert metadata.gce_ssh_keys(lines) == ("ssh-ed25519 AAAA a",)


# ------------------------------------------------------------------------------------------
# matchbox


def fake_matchbox(http: FakeHttp, groups: dict[str, tuple[bytes, str]]) -> None:
    """`groups`: "mac=…" or "uuid=…" → (Ignition config, /metadata body)."""

    def answer(call: Call, which: int) -> Response:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(call.url).query)
        for selector, group in groups.items():
            key, _, value = selector.partition("=")
            if query.get(key) == [value]:
                return ok(group[which])
        return status(404)

    http.add("GET", f"{MATCHBOX}/ignition", lambda call: answer(call, 0))
    http.add("GET", f"{MATCHBOX}/metadata", lambda call: answer(call, 1))


MATCHBOX_METADATA = (
    "HOSTNAME=web-1\nPROFILE=web\nCHANNEL=http://10.0.2.2:8000/stable/\nDATACENTER_RACK=7\n"
    "MAC=52:54:00:ab:cd:ef\nREQUEST_QUERY_MAC=52:54:00:ab:cd:ef\nREQUEST_RAW_QUERY=mac=52-54\n"
)


def test_matchbox_not_configured(env: Environment, http: FakeHttp) -> None:
    assert fetch("matchbox", env) is None
    assert http.calls == []


def test_matchbox_by_the_second_nic(env: Environment, http: FakeHttp) -> None:
    (env.net / "ens4").mkdir()
    (env.net / "ens4" / "address").write_text("52:54:00:ab:cd:ef\n")
    (env.net / "ens4" / "device").mkdir()
    fake_matchbox(http, {"mac=52-54-00-ab-cd-ef": (b'{"ignition":{}}', MATCHBOX_METADATA)})
    env = replace(env, matchbox_url=MATCHBOX + "/")
    found = fetch("matchbox", env)
    assert found == Found(
        "matchbox", config=b'{"ignition":{}}',
        attributes={"SONIX_MATCHBOX_HOSTNAME": "web-1", "SONIX_MATCHBOX_PROFILE": "web",
                    "SONIX_MATCHBOX_CHANNEL": "http://10.0.2.2:8000/stable/",
                    "SONIX_MATCHBOX_DATACENTER_RACK": "7",
                    "SONIX_MATCHBOX_MAC": "52:54:00:ab:cd:ef"},
        hostname="web-1", channel="http://10.0.2.2:8000/stable/", profile="web",
    )
    uuid = "5f2a3b6c-1d2e-4f50-8a9b-0c1d2e3f4a5b"
    assert http.urls() == [
        f"{MATCHBOX}/ignition?uuid={uuid}&mac=52-54-00-12-34-56",
        f"{MATCHBOX}/ignition?uuid={uuid}&mac=52-54-00-ab-cd-ef",
        f"{MATCHBOX}/metadata?uuid={uuid}&mac=52-54-00-ab-cd-ef",
    ]


def test_matchbox_url_on_the_command_line_wins(env: Environment, http: FakeHttp) -> None:
    env.cmdline.write_text(f"quiet sonix.matchbox.url={MATCHBOX}\n")
    fake_matchbox(http, {"uuid=5f2a3b6c-1d2e-4f50-8a9b-0c1d2e3f4a5b": (b"{}", "PROFILE=db\n")})
    found = fetch("matchbox", replace(env, matchbox_url="http://elsewhere:8080"))
    assert found is not None and found.profile == "db" and found.channel is None


def test_matchbox_no_group_says_so(env: Environment, http: FakeHttp) -> None:
    fake_matchbox(http, {})
    with pytest.raises(SourceError) as error:
        fetch("matchbox", replace(env, matchbox_url=MATCHBOX))
    assert str(error.value) == (
        f"matchbox: {MATCHBOX} has no group for this machine (uuid "
        "5f2a3b6c-1d2e-4f50-8a9b-0c1d2e3f4a5b, mac 52:54:00:12:34:56): /ignition answered 404")


def test_matchbox_needs_an_identity(env: Environment, http: FakeHttp) -> None:
    env.product_uuid.unlink()
    shutil.rmtree(env.net)
    with pytest.raises(SourceError, match="neither an SMBIOS UUID nor a MAC"):
        fetch("matchbox", replace(env, matchbox_url=MATCHBOX))


def test_env_lines() -> None:
    assert metadata.parse_env_lines('A=1\n# c\n\nb="x y"\nNOEQUALS\nC=a=b\n') == {
        "A": "1", "B": "x y", "C": "a=b"}


# ------------------------------------------------------------------------------------------
# discover: order, disabling, the shared deadline


def test_discover_takes_the_first_source_that_is_there(env: Environment, http: FakeHttp) -> None:
    credentials(env, sonix_provision_config=b"from credentials")
    fake_ec2(http)
    found = discover(env)
    assert found is not None and found.source == "credentials"
    assert http.calls == []  # ec2 was never asked
    found = discover(env, ["ec2", "credentials"])
    assert found is not None and found.source == "ec2"


def test_discover_skips_disabled_sources(env: Environment, http: FakeHttp) -> None:
    credentials(env, sonix_provision_config=b"from credentials")
    fake_gce(http)
    found = discover(env, ["cmdline", "gce"])
    assert found is not None and found.source == "gce"


def test_discover_nothing(env: Environment, http: FakeHttp, clock: FakeClock) -> None:
    assert discover(env, metadata.DEFAULT_ORDER) is None
    assert clock.now == 1020  # two probe windows (ec2, gce); matchbox is not configured


def test_discover_a_broken_source_stops_it(env: Environment, http: FakeHttp) -> None:
    env.cmdline.write_text("sonix.config.url=data:;base64,@@\n")
    credentials(env, sonix_provision_config=b"would have worked")
    with pytest.raises(SourceError, match="bad base64"):
        discover(env)


def test_discover_rejects_unknown_names_before_asking(env: Environment, http: FakeHttp) -> None:
    with pytest.raises(ValueError, match="unknown provisioning source 'azure'"):
        discover(env, ["ec2", "azure"])
    assert http.calls == []


def test_discover_deadline_is_shared(env: Environment, http: FakeHttp, clock: FakeClock) -> None:
    """A probe window never reaches past the overall deadline."""
    assert discover(env, ["ec2", "gce"], timeout=12) is None
    assert clock.now == 1012


def test_sources_in_the_documented_order() -> None:
    assert metadata.DEFAULT_ORDER == ("cmdline", "credentials", "openstack", "ec2", "gce",
                                      "matchbox")


# ---- waiting for the initrd's DHCP -----------------------------------------------------------

ROUTES_HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"


def test_network_sources_wait_for_dhcp(
    env: Environment, clock: FakeClock, tmp_path: Path
) -> None:
    routes = tmp_path / "route"
    routes.write_text(ROUTES_HEADER)  # DHCP not done yet: no routes at all
    waiting = replace(env, routes=routes, network_wait=30.0)

    def dhcp_done_after(seconds: float) -> None:
        clock.sleeps.append(seconds)
        clock.now += seconds
        if sum(clock.sleeps) >= 3:
            # slirp's 169.254.169.0/24: a subnet route, no gateway
            routes.write_text(ROUTES_HEADER + "ens3\t00A9FEA9\t00000000\t0001\t0\t0\t1024\t"
                              "00FFFFFF\n")

    assert replace(waiting, sleep=dhcp_done_after).wait_for_network(clock.now + 120)
    assert 3 <= sum(clock.sleeps) <= 3.5

    routes.write_text(ROUTES_HEADER + "lo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\n")
    start = clock.now
    assert not waiting.wait_for_network(clock.now + 120)  # no DHCP: give up after 30 s
    assert clock.now - start == pytest.approx(30, abs=0.6)


def test_without_a_network_interface_network_sources_are_not_here(
    env: Environment, tmp_path: Path, http: FakeHttp
) -> None:
    shutil.rmtree(tmp_path / "net")
    (tmp_path / "net").mkdir()
    no_nic = replace(env, routes=tmp_path / "route")
    assert fetch("ec2", no_nic) is None and fetch("gce", no_nic) is None
    assert http.calls == []
