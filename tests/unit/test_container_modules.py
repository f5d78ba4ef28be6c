"""oci.containers, oci.images and hardware.fwupd (issue 7, part two): small configurations
evaluated through eval-config.nix with the fake `pkgs` of test_core_modules, checked for the
Quadlet files, the wants links, the archives they ship, the fwupd remotes and timer, and
their errors (conflicting ports, unknown images)."""

from __future__ import annotations

from typing import Any

import pytest
from test_core_modules import error_of, evaluate, link, package_name, text, usr

from sonix import paths

MODULES = paths.source_root() / "modules/services"
CONTAINERS_TEST = paths.source_root() / "tests/vm/configs/containers-test.nix"
FIXTURES = paths.source_root() / "tests/vm/fixtures/containers"
QUADLET = "share/containers/systemd"


def config(*modules: str, body: str) -> str:
    imports = " ".join(str(MODULES / f"{name}.nix") for name in modules)
    return f"{{ pkgs, ... }}: {{ imports = [ {imports} ]; {body} }}"


def wants(files: dict[str, Any], unit: str) -> list[str]:
    prefix = f"lib/systemd/system/{unit}.wants/"
    return sorted(path.removeprefix(prefix) for path in files if path.startswith(prefix))


def ini(body: str) -> dict[str, list[str]]:
    """Section -> its `Key=value` lines, in order (comments and blank lines dropped)."""
    sections: dict[str, list[str]] = {}
    current = ""
    for line in body.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections[current] = []
        elif line and not line.startswith("#"):
            sections[current].append(line)
    return sections


# ---- oci.containers and oci.images ---------------------------------------------------------

WEB = config("oci-containers", body="""
  oci.images.web = {
    packages = [ pkgs.python3 ];
    entrypoint = [ "/usr/bin/python3" "-m" "http.server" ];
    cmd = [ "8080" ];
  };
  oci.containers.web = {
    imageFile = "web";
    ports = [ "8080:8080" ];
    volumes = [ "/srv/www:/srv:ro" ];
    environment = { GREETING = "hello \\"world\\""; };
    cmd = [ "8080" "--directory" "/srv" ];
    restart = "on-failure";
  };
  oci.containers.cache = {
    image = "docker.io/library/redis:7";
    ports = [ "127.0.0.1:6379:6379" "5353:53/udp" ];
    entrypoint = "/usr/local/bin/redis-server";
    extraOptions = [ "--memory=512m" "--label=owner=web team" ];
    autoStart = false;
  };
""")


@pytest.fixture(scope="module")
def web_files() -> dict[str, Any]:
    return usr(WEB)


def test_container_quadlet_file_for_a_local_image(web_files: dict[str, Any]) -> None:
    unit = ini(text(web_files, f"{QUADLET}/web.container"))
    assert unit["Container"] == [
        "ContainerName=web",
        # The .image unit: Quadlet makes web.service require and follow web-image.service.
        "Image=web.image",
        "Exec=8080 --directory /srv",
        'Environment="GREETING=hello \\"world\\""',
        "PublishPort=8080:8080",
        "Volume=/srv/www:/srv:ro",
    ]
    assert unit["Service"] == ["Restart=on-failure"]
    assert unit["Unit"] == ["Description=Container web"]
    assert "Install" not in unit


def test_image_unit_loads_the_archive_shipped_in_usr(web_files: dict[str, Any]) -> None:
    unit = ini(text(web_files, f"{QUADLET}/web.image"))
    assert unit["Image"] == [
        "Image=oci-archive:/usr/share/sonix/oci/web.tar",
        "ImageTag=localhost/sonix/web:latest",
    ]
    assert "Install" not in unit
    archive = web_files["share/sonix/oci/web.tar"]
    assert archive["kind"] == "source"
    assert archive["value"].startswith("/nix/store/")
    assert archive["value"].endswith("-oci-web/web.tar")


def test_environment_percent_signs_are_doubled() -> None:
    """systemd expands `%` specifiers in the service Quadlet generates (`%h` is a home
    directory), so a literal `%` in a value is written `%%`."""
    files = usr(config("oci-containers", body="""
      oci.containers.a = {
        image = "docker.io/library/nginx:1.27";
        environment = { RATE = "50%"; HOME_HINT = "%h"; };
      };
    """))
    environment = [line for line in ini(text(files, f"{QUADLET}/a.container"))["Container"]
                   if line.startswith("Environment=")]
    assert environment == ['Environment="HOME_HINT=%%h"', 'Environment="RATE=50%%"']


def test_argument_percent_signs_are_doubled() -> None:
    """The same for Exec= and PodmanArgs=: `%` reaches the container as written."""
    files = usr(config("oci-containers", body="""
      oci.containers.a = {
        image = "docker.io/library/nginx:1.27";
        cmd = [ "--rate=50%" "100% sure" ];
        extraOptions = [ "--label=load=%h" ];
      };
    """))
    unit = ini(text(files, f"{QUADLET}/a.container"))["Container"]
    assert 'Exec=--rate=50%% "100%% sure"' in unit
    assert "PodmanArgs=--label=load=%%h" in unit


def test_container_quadlet_file_for_a_registry_image(web_files: dict[str, Any]) -> None:
    unit = ini(text(web_files, f"{QUADLET}/cache.container"))
    assert unit["Container"] == [
        "ContainerName=cache",
        "Image=docker.io/library/redis:7",
        "Entrypoint=/usr/local/bin/redis-server",
        "PublishPort=127.0.0.1:6379:6379",
        "PublishPort=5353:53/udp",
        'PodmanArgs=--memory=512m "--label=owner=web team"',
    ]
    # The pull needs the network: Quadlet adds Wants/After=network-online.target itself.
    assert unit["Unit"] == ["Description=Container cache"]
    assert unit["Service"] == ["Restart=always", "TimeoutStartSec=900"]


def test_auto_start_is_a_wants_link_not_install(web_files: dict[str, Any]) -> None:
    started = wants(web_files, "multi-user.target")
    assert "web.service" in started
    assert "cache.service" not in started  # autoStart = false
    # The link names the generated unit; systemd follows it by name.
    assert link(web_files, "lib/systemd/system/multi-user.target.wants/web.service") == (
        "../web.service")
    # No unit file of sonix's own shadows the one Quadlet generates.
    assert "lib/systemd/system/web.service" not in web_files


def test_podman_settings_and_packages(web_files: dict[str, Any]) -> None:
    conf = text(web_files, "share/containers/containers.conf.d/50-sonix.conf")
    assert 'network_backend = "netavark"' in conf and 'firewall_driver = "nftables"' in conf
    storage = text(web_files, "share/containers/storage.conf")
    assert 'driver = "overlay"' in storage
    assert 'graphroot = "/var/lib/containers/storage"' in storage
    packages = {package_name(p) for p in evaluate(WEB, "environment.packages")}
    assert {"podman", "netavark", "aardvark-dns", "catatonit", "nftables",
            "ca-certificates"} <= packages


def test_image_archive_derivation_inputs() -> None:
    tree = evaluate(WEB, "oci.images.web.reference")
    assert tree == "localhost/sonix/web:latest"
    attrs = evaluate(WEB, "system.build.ociImages.web.drvAttrs")
    assert attrs["name"] == "oci-web"
    assert attrs["passAsFile"] == ["config"]
    assert '"$runInTools" python3 "$builderScript"' in attrs["args"][1]
    assert attrs["builderScript"].endswith("-sonix-oci-builder")
    assert attrs["tree"].endswith("-oci-web-tree")
    config_json = evaluate(WEB, "system.build.ociImages.web.drvAttrs.config")
    assert '"reference":"localhost/sonix/web:latest"' in config_json
    assert '"entrypoint":["/usr/bin/python3","-m","http.server"]' in config_json


def test_firewall_only_opens_ports_when_asked() -> None:
    closed = usr(WEB)
    assert "8080" not in text(closed, "lib/sonix/firewall.nft").split("input-allow", 1)[1]
    files = usr(config("oci-containers", body="""
      oci.containers.host = {
        image = "docker.io/library/nginx:1.27";
        ports = [ "8443:443" "5353:53/udp" ];
        openFirewall = true;
      };
    """))
    rules = text(files, "lib/sonix/firewall.nft")
    assert "tcp dport 8443 accept" in rules
    assert "udp dport 5353 accept" in rules
    # aardvark-dns on podman networks.
    assert 'iifname "podman*" tcp dport 53 accept' in rules


def test_same_host_port_in_two_containers_is_refused() -> None:
    message = error_of(config("oci-containers", body="""
      oci.containers.a = { image = "docker.io/library/nginx:1.27"; ports = [ "8080:80" ]; };
      oci.containers.b = {
        image = "docker.io/library/httpd:2.4"; ports = [ "127.0.0.1:8080:8080" ];
      };
      oci.containers.c = { image = "docker.io/library/httpd:2.4"; ports = [ "8080:80/udp" ]; };
    """))
    assert "host port 8080/tcp is published by both oci.containers.a" in message
    assert "and oci.containers.b" in message
    # Another protocol is another port.
    assert "oci.containers.c" not in message


def test_same_host_port_on_different_addresses_is_fine() -> None:
    files = usr(config("oci-containers", body="""
      oci.containers.a = { image = "quay.io/x/nginx:1"; ports = [ "127.0.0.1:8080:80" ]; };
      oci.containers.b = { image = "quay.io/x/nginx:1"; ports = [ "192.0.2.1:8080:80" ]; };
    """))
    assert f"{QUADLET}/b.container" in files


def test_same_host_port_twice_in_one_container_is_refused() -> None:
    message = error_of(config("oci-containers", body="""
      oci.containers.a = { image = "docker.io/library/nginx:1.27"; ports = [ "80:80" "80:8080" ]; };
    """))
    assert ('oci.containers.a.ports: host port 80/tcp is published twice ("80:80" and "80:8080")'
            in message)


def test_container_port_and_another_service_on_one_port_are_refused() -> None:
    message = error_of(config("oci-containers", "nginx", body="""
      services.nginx = { enable = true; virtualHosts.a = { }; };
      oci.containers.a = { image = "docker.io/library/nginx:1.27"; ports = [ "80:80" ]; };
    """))
    assert ("port 80/tcp is used by more than one service (oci.containers and services.nginx)"
            in message)


@pytest.mark.parametrize(
    "port", ["8080", "0:80", "70000:80", "8080:80/sctp", "a:80", "1.2.3:80:80"])
def test_malformed_ports_are_refused(port: str) -> None:
    message = error_of(config("oci-containers", body=f"""
      oci.containers.a = {{ image = "docker.io/library/nginx:1.27"; ports = [ "{port}" ]; }};
    """))
    assert (f'oci.containers.a.ports: "{port}" is not '
            "`[address:]hostPort:containerPort[/tcp|/udp]`") in message


def test_unknown_image_file_is_an_error_naming_container_and_option() -> None:
    message = error_of(config("oci-containers", body="""
      oci.images.web = { packages = [ pkgs.python3 ]; };
      oci.containers.app.imageFile = "wbe";
    """))
    assert "oci.containers.app.imageFile: there is no oci.images.wbe (images: web)" in message


def test_unknown_local_image_reference_is_an_error() -> None:
    message = error_of(config("oci-containers", body="""
      oci.containers.app.image = "localhost/sonix/missing:latest";
    """))
    assert "oci.containers.app.image: there is no oci.images.missing (images: none)" in message


def test_local_image_by_reference_works_like_image_file() -> None:
    files = usr(config("oci-containers", body="""
      oci.images.web = { packages = [ pkgs.python3 ]; };
      oci.containers.app.image = "localhost/sonix/web:latest";
    """))
    assert "Image=web.image" in text(files, f"{QUADLET}/app.container")


def test_container_without_image_is_refused() -> None:
    message = error_of(config("oci-containers", body="oci.containers.app.ports = [ ];"))
    assert "oci.containers.app: set `image` (a registry reference) or `imageFile`" in message


def test_conflicting_image_and_image_file_are_refused() -> None:
    message = error_of(config("oci-containers", body="""
      oci.images.web = { packages = [ pkgs.python3 ]; };
      oci.containers.app = { imageFile = "web"; image = "docker.io/library/nginx:1.27"; };
    """))
    assert ('oci.containers.app: `image = "docker.io/library/nginx:1.27"` and '
            '`imageFile = "web"` name different images') in message


def test_bad_container_name_is_refused() -> None:
    message = error_of(config("oci-containers", body="""
      oci.containers.Web.image = "docker.io/library/nginx:1.27";
    """))
    assert "oci.containers.Web: the name must be lower case" in message


def test_disabled_container_writes_nothing() -> None:
    files = usr(config("oci-containers", body="""
      oci.containers.a = {
        enable = false; image = "docker.io/library/nginx:1.27"; ports = [ "80:80" ];
      };
    """))
    assert f"{QUADLET}/a.container" not in files
    assert "a.service" not in wants(files, "multi-user.target")


def test_nothing_declared_installs_nothing() -> None:
    files = usr(config("oci-containers", body=""))
    assert not [p for p in files if p.startswith(("share/containers", "share/sonix/oci"))]
    assert "podman" not in {package_name(p) for p in evaluate(
        config("oci-containers", body=""), "environment.packages")}


# ---- hardware.fwupd --------------------------------------------------------------------------

UPDATES = f"""
  updates = {{
    enable = true;
    channel = "https://updates.example.com/sonix/";
    trustedKeys = [ {FIXTURES}/no-channel-key.gpg ];
    strategy = "maintenance-window";
    maintenanceWindow = {{ days = [ "Sat" "Sun" ]; start = "02:30"; timeZone = "Europe/Berlin"; }};
  }};
"""


def test_fwupd_alone_is_bus_activated_and_the_lvfs_stays() -> None:
    module = config("fwupd", body="hardware.fwupd.enable = true;")
    files = usr(module)
    assert "fwupd" in {package_name(p) for p in evaluate(module, "environment.packages")}
    # Started by D-Bus activation (the packaged fwupd.service), no wants link, no timer.
    assert not [p for p in files if p.endswith("/fwupd.service") and ".wants/" in p]
    assert "lib/systemd/system/sonix-firmware-update.timer" not in files
    assert "share/factory/etc/fwupd/remotes.d/lvfs.conf" not in files
    assert "share/factory/etc/fwupd/remotes.d/sonix-local.conf" not in files
    assert text(files, "share/factory/etc/fwupd/fwupd.conf").splitlines()[0] == "[fwupd]"
    # tpm-udev's postinst (adduser tss), for the owner its udev rules set on /dev/tpm*.
    sysusers = text(files, "lib/sysusers.d/sonix.conf")
    assert 'u tss - "TPM software stack" /var/lib/tpm /bin/false' in sysusers


def test_fwupd_local_directory_remote_replaces_the_lvfs() -> None:
    files = usr(config("fwupd", body="""
      hardware.fwupd = {
        enable = true; localSource = "/var/lib/firmware"; extraConfig = "OnlyTrusted=false\\n";
      };
    """))
    remote = ini(text(files, "share/factory/etc/fwupd/remotes.d/sonix-local.conf"))
    assert remote["fwupd Remote"] == [
        "Enabled=true",
        "Title=Local firmware (hardware.fwupd.localSource)",
        "MetadataURI=file:///var/lib/firmware",
        "ApprovalRequired=false",
    ]
    lvfs = ini(text(files, "share/factory/etc/fwupd/remotes.d/lvfs.conf"))
    assert "Enabled=false" in lvfs["fwupd Remote"]
    etc = text(files, "lib/tmpfiles.d/00-sonix-etc.conf")
    assert ("L+ /etc/fwupd/remotes.d/lvfs.conf - - - - "
            "/usr/share/factory/etc/fwupd/remotes.d/lvfs.conf") in etc
    assert "OnlyTrusted=false" in text(files, "share/factory/etc/fwupd/fwupd.conf")
    # A directory on the machine: nothing shipped.
    assert "share/sonix/fwupd/local" not in files


def test_fwupd_local_source_from_the_configuration_is_shipped() -> None:
    files = usr(f"""{{ ... }}: {{
      imports = [ {MODULES / "fwupd.nix"} ];
      hardware.fwupd = {{
        enable = true; localSource = {FIXTURES}/firmware; disableLvfs = false;
      }};
    }}""")
    assert files["share/sonix/fwupd/local"]["kind"] == "source"
    remote = text(files, "share/factory/etc/fwupd/remotes.d/sonix-local.conf")
    assert "MetadataURI=file:///usr/share/sonix/fwupd/local\n" in remote
    assert "share/factory/etc/fwupd/remotes.d/lvfs.conf" not in files


def test_fwupd_automatic_updates_in_the_maintenance_window() -> None:
    module = config("fwupd", body=f"""
      hardware.fwupd = {{ enable = true; automaticUpdates.enable = true; }};
      {UPDATES}
    """)
    files = usr(module)
    timer = ini(text(files, "lib/systemd/system/sonix-firmware-update.timer"))
    # When the updates module's window opens (its own timer fires then too).
    assert "OnCalendar=Sat,Sun *-*-* 02:30:00 Europe/Berlin" in timer["Timer"]
    assert "sonix-firmware-update.timer" in wants(files, "timers.target")
    service = ini(text(files, "lib/systemd/system/sonix-firmware-update.service"))
    assert "Type=oneshot" in service["Service"]
    assert "TimeoutStartSec=infinity" in service["Service"]
    script = text(files, "lib/sonix/scripts/sonix-firmware-update-start")
    assert "/usr/bin/fwupdmgr refresh" in script
    assert ("/usr/bin/fwupdmgr update --assume-yes --no-reboot-check --no-unreported-check "
            "--no-remote-check --no-metadata-check") in script
    assert "/usr/bin/fwupdmgr check-reboot-needed" in script
    assert "exec /usr/bin/sonix update reboot-if-allowed --reason firmware" in script
    # The window is in a time zone: zoneinfo comes along.
    assert "tzdata" in {package_name(p) for p in evaluate(module, "environment.packages")}
    # The packaged hourly refresh timer is not enabled.
    assert "fwupd-refresh.timer" not in wants(files, "timers.target")


def test_fwupd_automatic_updates_need_the_updates_module() -> None:
    message = error_of(config("fwupd", body="""
      hardware.fwupd = { enable = true; automaticUpdates.enable = true; };
    """))
    assert "hardware.fwupd.automaticUpdates.enable needs updates.enable" in message


# ---- the VM test's machine ---------------------------------------------------------------------


def test_containers_test_machine_evaluates() -> None:
    files = usr(f"{{ ... }}: {{ imports = [ {CONTAINERS_TEST} ]; }}")
    assert "Image=web.image" in text(files, f"{QUADLET}/web.container")
    assert "Image=docker.io/library/busybox:1.37" in text(files, f"{QUADLET}/registry.container")
    started = wants(files, "multi-user.target")
    assert "web.service" in started and "registry.service" not in started
    assert "share/sonix/oci/web.tar" in files
    assert "share/factory/etc/fwupd/remotes.d/sonix-local.conf" in files
    assert "sonix-firmware-update.timer" in wants(files, "timers.target")
