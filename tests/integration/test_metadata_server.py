"""The fake metadata server (`sonix serve-metadata`) on 127.0.0.1 and the machine's real
provisioning sources (src/sonix/agents/metadata.py, real HTTP) fetching from it: EC2 with
IMDSv2 tokens, GCE's header rule, matchbox's selection by MAC and by UUID; and an OpenStack
config drive image built with the tools set's mkfs.fat/mtools and read back without mounting.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sonix.agents import metadata
from sonix.agents.metadata import Environment, Found, SourceError
from sonix.debian.trees import tree_command
from sonix.provisioning import config_drive
from sonix.provisioning.metadata_server import (
    ConfigError,
    Ec2Instance,
    GceInstance,
    Matchbox,
    MetadataServer,
    Recorded,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/fixtures/metadata"
USER_DATA = (FIXTURES / "user-data.ign").read_bytes()
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbhXzNd3mW4Jz8k2G2c1QF3sVx1kZp5eT0a9fUo8kQb ops-2026"
WEB_MAC = "52:54:00:12:34:56"  # tests/fixtures/metadata/matchbox/groups/web-1.json
DB_UUID = "5f2a3b6c-1d2e-4f50-8a9b-0c1d2e3f4a5b"  # .../groups/db-1.json


def machine(tmp: Path, url: str, *, macs: Sequence[str] = ("52:54:00:99:99:99",),
            uuid: str = "0b0f3c1e-8d4a-4b7e-9a51-2c9e6f1d0a77") -> Environment:
    """A machine (NICs, SMBIOS UUID) in `tmp` whose metadata addresses all point at `url`."""
    for index, mac in enumerate(macs):
        nic = tmp / "net" / f"ens{3 + index}"
        (nic / "device").mkdir(parents=True)
        (nic / "address").write_text(mac + "\n")
    (tmp / "product_uuid").write_text(uuid.upper() + "\n")
    (tmp / "cmdline").write_text("console=ttyS0\n")
    return Environment(
        cmdline=tmp / "cmdline", net=tmp / "net", product_uuid=tmp / "product_uuid",
        credentials_dir=tmp / "credentials", disk_by_label=tmp / "by-label",
        runtime_dir=tmp / "run", ec2_url=url, gce_url=url, matchbox_url=url,
        probe_timeout=2.0, request_timeout=2.0, initial_delay=0.05, max_delay=0.2,
    )


@pytest.fixture
def server() -> Iterator[MetadataServer]:
    """All three roles at once, as a VM test may run it."""
    with MetadataServer(
        ec2=Ec2Instance(user_data=USER_DATA, ssh_keys=(KEY,), public_ipv4="203.0.113.7"),
        gce=GceInstance(user_data=b"gce user data", ssh_keys=(f"alice:{KEY}",),
                        project_ssh_keys=("ops:ssh-ed25519 AAAAproject ops",)),
        matchbox=Matchbox.load(FIXTURES / "matchbox"),
        log=lambda line: None,
    ) as running:
        yield running


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET"
        ) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers.items()), error.read()


# ------------------------------------------------------------------------------------------
# EC2


def test_ec2_imdsv2(server: MetadataServer, tmp_path: Path) -> None:
    env = machine(tmp_path, server.url)
    found = metadata.discover(env, ["ec2"], timeout=20)
    assert found == Found(
        "ec2", config=USER_DATA,
        attributes={
            "SONIX_EC2_INSTANCE_ID": "i-0a1b2c3d4e5f67890", "SONIX_EC2_INSTANCE_TYPE": "t3.small",
            "SONIX_EC2_HOSTNAME": "ip-10-0-2-15.eu-central-1.compute.internal",
            "SONIX_EC2_IPV4_LOCAL": "10.0.2.15", "SONIX_EC2_IPV4_PUBLIC": "203.0.113.7",
            "SONIX_EC2_AVAILABILITY_ZONE": "eu-central-1a", "SONIX_EC2_REGION": "eu-central-1",
        },
        hostname="ip-10-0-2-15.eu-central-1.compute.internal", ssh_keys=(KEY,),
    )
    first, *rest = server.requests_to("/latest/")
    assert (first.method, first.path) == ("PUT", "/latest/api/token")
    assert first.headers["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    tokens = {r.headers.get("x-aws-ec2-metadata-token") for r in rest}
    assert len(tokens) == 1 and None not in tokens and all(r.method == "GET" for r in rest)
    assert ("GET", "/latest/meta-data/public-keys/0/openssh-key") in [
        (r.method, r.path) for r in rest]


def test_ec2_token_rules(server: MetadataServer) -> None:
    url = server.url
    assert get(f"{url}/latest/meta-data/instance-id")[0] == 401  # no token
    assert get(f"{url}/latest/meta-data/instance-id",
               {"X-aws-ec2-metadata-token": "forged"})[0] == 401
    assert get(f"{url}/latest/api/token", method="PUT")[0] == 400  # no TTL
    assert get(f"{url}/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "21601"},
               method="PUT")[0] == 400
    status, headers, token = get(f"{url}/latest/api/token",
                                 {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, method="PUT")
    assert status == 200 and headers["X-aws-ec2-metadata-token-ttl-seconds"] == "60"
    auth = {"X-aws-ec2-metadata-token": token.decode()}
    assert get(f"{url}/latest/meta-data/", auth)[2].decode().splitlines() == [
        "ami-id", "hostname", "instance-id", "instance-type", "local-hostname", "local-ipv4",
        "placement/", "public-ipv4", "public-keys/"]
    assert get(f"{url}/latest/meta-data/public-keys/", auth)[2] == b"0=ops-2026"
    assert get(f"{url}/latest/meta-data/placement", auth)[2] == b"availability-zone\nregion"


def test_ec2_without_user_data_and_imdsv1(tmp_path: Path) -> None:
    with MetadataServer(ec2=Ec2Instance(imdsv1=True), log=lambda line: None) as server:
        status, _, _ = get(f"{server.url}/latest/meta-data/instance-id")
        assert status == 200  # HttpTokens=optional
        found = metadata.discover(machine(tmp_path, server.url), ["ec2"], timeout=20)
        assert found is not None and found.config is None and found.ssh_keys == ()
        assert server.requests_to("/latest/user-data")  # asked, got 404


def test_ec2_retries_a_failing_imds(server: MetadataServer, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    server.fail("/latest/api/token", 503, times=2)
    found = metadata.discover(machine(tmp_path, server.url), ["ec2"], timeout=20)
    assert found is not None and found.source == "ec2"
    assert [r.method for r in server.requests_to("/latest/api/token")] == ["PUT"] * 3
    err = capsys.readouterr().err
    assert err.count(f"ec2: PUT {server.url}/latest/api/token: HTTP 503 (injected failure); "
                     "retrying in") == 2


def test_ec2_broken_imds_gives_up_at_the_deadline(server: MetadataServer, tmp_path: Path) -> None:
    server.fail("/latest/", 500, times=1000)
    with pytest.raises(SourceError, match=r"HTTP 500 \(injected failure\); gave up after \d+ "
                                          r"attempts in 1 s"):
        metadata.discover(machine(tmp_path, server.url), ["ec2"], timeout=1.0)


def test_nothing_listening_is_not_here_after_the_probe_window(tmp_path: Path) -> None:
    with MetadataServer(log=lambda line: None) as server:
        url = server.url  # a port that is certainly free once the server is gone
    env = replace(machine(tmp_path, url), probe_timeout=0.5)
    started = time.monotonic()
    assert metadata.discover(env, ["ec2", "gce"], timeout=20) is None
    assert time.monotonic() - started < 5


# ------------------------------------------------------------------------------------------
# GCE


def test_gce(server: MetadataServer, tmp_path: Path) -> None:
    found = metadata.discover(machine(tmp_path, server.url), ["gce"], timeout=20)
    assert found is not None and found.config == b"gce user data"
    assert found.attributes["SONIX_GCE_INSTANCE_ID"] == "4520031799277581759"
    assert found.attributes["SONIX_GCE_MACHINE_TYPE"] == \
        "projects/123456789012/machineTypes/e2-small"
    assert found.ssh_keys == (KEY, "ssh-ed25519 AAAAproject ops")
    requests = server.requests_to("/computeMetadata/")
    assert requests and all(r.headers["metadata-flavor"] == "Google" for r in requests)
    assert all(r.headers["host"] == "metadata.google.internal" for r in requests)


def test_gce_header_rule(server: MetadataServer) -> None:
    url = f"{server.url}/computeMetadata/v1/instance/id"
    status, headers, _ = get(url)
    assert status == 403 and headers["Metadata-Flavor"] == "Google"
    status, headers, body = get(url, {"Metadata-Flavor": "Google"})
    assert (status, headers["Metadata-Flavor"], body) == (200, "Google", b"4520031799277581759")


def test_roles_answer_only_when_configured(tmp_path: Path) -> None:
    with MetadataServer(matchbox=Matchbox.load(FIXTURES / "matchbox"),
                        log=lambda line: None) as server:
        env = machine(tmp_path, server.url)
        assert metadata.discover(env, ["ec2", "gce"], timeout=20) is None
        assert [r.path for r in server.requests] == [
            "/latest/api/token", "/latest/meta-data/instance-id", "/computeMetadata/v1/instance/id"]


# ------------------------------------------------------------------------------------------
# matchbox


def test_matchbox_selects_by_mac(server: MetadataServer, tmp_path: Path) -> None:
    env = machine(tmp_path, server.url, macs=("52:54:00:00:00:01", WEB_MAC.upper()))
    found = metadata.discover(env, ["matchbox"], timeout=20)
    assert found is not None
    assert found.config == (FIXTURES / "matchbox/ignition/web.ign").read_bytes()
    assert (found.profile, found.channel, found.hostname) == (
        "web", "http://10.0.2.2:8000/stable/", "web-1")
    assert found.attributes["SONIX_MATCHBOX_DATACENTER_NAME"] == "fra1"
    assert found.attributes["SONIX_MATCHBOX_MAC"] == WEB_MAC
    assert not any(name.startswith("SONIX_MATCHBOX_REQUEST") for name in found.attributes)
    assert [r.path.split("?")[0] for r in server.requests] == ["/ignition", "/ignition",
                                                               "/metadata"]


def test_matchbox_selects_by_uuid(server: MetadataServer, tmp_path: Path) -> None:
    found = metadata.discover(machine(tmp_path, server.url, uuid=DB_UUID), ["matchbox"],
                              timeout=20)
    assert found is not None and found.profile == "db"
    assert found.config == (FIXTURES / "matchbox/ignition/db.ign").read_bytes()
    assert found.attributes["SONIX_MATCHBOX_UUID"] == DB_UUID
    [first, *_] = server.requests
    assert first.path == f"/ignition?uuid={DB_UUID}&mac=52-54-00-99-99-99"


def test_matchbox_machine_without_a_group(server: MetadataServer, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as error:
        metadata.discover(machine(tmp_path, server.url), ["matchbox"], timeout=20)
    assert str(error.value) == (
        f"matchbox: {server.url} has no group for this machine (uuid "
        "0b0f3c1e-8d4a-4b7e-9a51-2c9e6f1d0a77, mac 52:54:00:99:99:99): /ignition answered 404")


def test_matchbox_metadata_format(server: MetadataServer) -> None:
    status, headers, body = get(f"{server.url}/metadata?mac=52-54-00-12-34-56&foo=bar")
    assert status == 200 and headers["Content-Type"] == "plain/text"
    assert sorted(body.decode().splitlines()) == sorted([
        "HOSTNAME=web-1", "PROFILE=web", "CHANNEL=http://10.0.2.2:8000/stable/",
        "DATACENTER_NAME=fra1", "DATACENTER_RACK=7", f"MAC={WEB_MAC}",
        f"REQUEST_QUERY_MAC={WEB_MAC}", "REQUEST_QUERY_FOO=bar",
        "REQUEST_RAW_QUERY=mac=52-54-00-12-34-56&foo=bar",
    ])


# ------------------------------------------------------------------------------------------
# `sonix serve-metadata`


def test_serve_metadata_command(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[ec2]\nuser-data = "user-data.ign"\ninstance-id = "i-0123"\n\n'
        '[matchbox]\ndirectory = "matchbox"\n')
    (tmp_path / "user-data.ign").write_bytes(USER_DATA)
    (tmp_path / "matchbox").symlink_to(FIXTURES / "matchbox")
    process = subprocess.Popen(
        [sys.executable, "-m", "sonix", "serve-metadata", "--listen", "127.0.0.1:0",
         "--config", str(tmp_path / "config.toml"), "--hostname", "web-9", "--ssh-key", KEY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "serve-metadata printed no URL"
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        found = metadata.discover(machine(tmp_path, url), ["ec2"], timeout=20)
        assert found is not None and found.config == USER_DATA
        assert found.attributes["SONIX_EC2_INSTANCE_ID"] == "i-0123"
        assert (found.hostname, found.ssh_keys) == ("web-9", (KEY,))
        assert get(f"{url}/ignition?mac=52-54-00-12-34-56")[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"serve-metadata on {url}: ec2, matchbox" in err
    assert "127.0.0.1 PUT /latest/api/token 200" in err


def test_serve_metadata_needs_a_role() -> None:
    result = subprocess.run([sys.executable, "-m", "sonix", "serve-metadata"], cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 1
    assert "nothing to serve" in result.stderr


# ------------------------------------------------------------------------------------------
# OpenStack config drive


def test_config_drive_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meta = config_drive.openstack_meta_data(
        uuid="83679162-1378-4288-a2d4-70e13ec132aa", hostname="web-1.novalocal", ssh_keys=[KEY])
    image = config_drive.make_config_drive(
        tmp_path / "config-2.img", meta, USER_DATA,
        ec2_meta_data={"instance-type": "m1.small", "local-ipv4": "10.0.0.12"})
    assert config_drive.config_drive_label(image) == "config-2"
    assert set(config_drive.config_drive_files(image)) >= {
        "/openstack/latest/meta_data.json", "/openstack/latest/user_data",
        "/ec2/latest/meta-data.json"}
    assert json.loads(config_drive.read_config_drive_file(
        image, "openstack/latest/meta_data.json")) == meta
    assert config_drive.read_config_drive_file(image, "openstack/latest/user_data") == \
        USER_DATA.decode()

    # The machine's side, with `mount` played by mcopy out of the image (no loop device).
    env = machine(tmp_path, "http://127.0.0.1:9")
    env.disk_by_label.mkdir()
    (env.disk_by_label / "config-2").symlink_to(image)
    mcopy = tree_command(config_drive.tools_tree(), "mcopy")

    def run(argv: Sequence[str]) -> None:
        if argv[0] == "mount":
            assert argv[:3] == ["mount", "-o", "ro"]
            subprocess.run([*mcopy, "-s", "-i", argv[3], "::/openstack", "::/ec2", argv[4]],
                           check=True, env={"MTOOLS_SKIP_CHECK": "1"})

    monkeypatch.setattr(metadata, "run", run)
    found = metadata.discover(env, ["openstack"], timeout=20)
    assert found == Found(
        "openstack", config=USER_DATA,
        attributes={
            "SONIX_OPENSTACK_INSTANCE_ID": "83679162-1378-4288-a2d4-70e13ec132aa",
            "SONIX_OPENSTACK_HOSTNAME": "web-1.novalocal", "SONIX_OPENSTACK_NAME": "web-1",
            "SONIX_OPENSTACK_AVAILABILITY_ZONE": "nova",
            "SONIX_OPENSTACK_INSTANCE_TYPE": "m1.small", "SONIX_OPENSTACK_IPV4_LOCAL": "10.0.0.12",
        },
        hostname="web-1.novalocal", ssh_keys=(KEY,),
    )


def test_recorded_requests_are_tuples(server: MetadataServer) -> None:
    get(f"{server.url}/nothing-here", {"X-Test": "1"})
    [(method, path, headers)] = server.requests
    assert (method, path, headers["x-test"]) == ("GET", "/nothing-here", "1")
    assert server.requests[0] == Recorded("GET", "/nothing-here", headers)


def test_configuration_errors_say_where(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "groups").mkdir()
    (tmp_path / "groups/g.json").write_text('{"id": "g", "profile": "web"}')
    with pytest.raises(ConfigError, match=r"groups/g\.json selects profile 'web', which is not"):
        Matchbox.load(tmp_path)
    (tmp_path / "profiles/web.json").write_text('{"id": "web", "ignition_id": "web.ign"}')
    with pytest.raises(ConfigError, match=r"names ignition_id 'web.ign', but .*/ignition/web"):
        Matchbox.load(tmp_path)
    (tmp_path / "config.json").write_text('{"ec2": {"hostname": "a", "colour": "blue"}}')
    with pytest.raises(ConfigError, match=r"ec2\.colour is not known \(known: user-data, "):
        load_config(tmp_path / "config.json")


def test_http_request_is_direct_and_redirects_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Redirecting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"target"
            if self.path == "/config.ign":
                self.send_response(302)
                self.send_header("Location", "/objects/config.ign")
                body = b""
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # must not be used
    with ThreadingHTTPServer(("127.0.0.1", 0), Redirecting) as web:
        thread = threading.Thread(target=web.serve_forever, kwargs={"poll_interval": 0.1})
        thread.start()
        try:
            url = f"http://127.0.0.1:{web.server_address[1]}/config.ign"
            assert metadata.http_request("GET", url).status == 302  # metadata services
            answer = metadata.http_request("GET", url, follow_redirects=True)
            assert (answer.status, answer.body) == (200, b"target")
            env = machine(tmp_path, "http://127.0.0.1:9")
            env.cmdline.write_text(f"sonix.config.url={url}\n")
            assert metadata.discover(env, ["cmdline"]) == Found("cmdline", config=b"target")
        finally:
            web.shutdown()
            thread.join()
