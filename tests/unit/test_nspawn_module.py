"""containers.<name> (systemd-nspawn machines, issue 7): small configurations evaluated through
eval-config.nix with the fake `pkgs` of test_core_modules, checked for the nested
configuration (evaluated with the same modules, built as its own /usr), the .nspawn file, the
units and links on the host, the networkd files on both ends of the veth pair, and the errors
(which name the container and the option)."""

from __future__ import annotations

from typing import Any

import pytest
from test_container_modules import ini, wants
from test_core_modules import error_of, evaluate, package_name, text, usr

from sonix import paths

MODULE = paths.source_root() / "modules/services/nspawn-containers.nix"


def config(body: str) -> str:
    return f"{{ pkgs, ... }}: {{ imports = [ {MODULE} ]; {body} }}"


BOX = config("""
  image.version = "7";
  containers.box = {
    config = { pkgs, ... }: {
      environment.packages = [ pkgs.nginx ];
      users.users.app = { isNormalUser = true; uid = 1000; };
    };
    hostAddress = "10.231.0.1";
    localAddress = "10.231.0.2";
    bindMounts."/srv/data" = { hostPath = "/var/lib/data"; isReadOnly = false; };
    bindMounts."/etc/ssl/private" = { hostPath = "/var/lib/keys"; };
    memoryMax = "512M";
    tasksMax = 256;
  };
  containers.lab = { autoStart = false; config = { }; };
""")


@pytest.fixture(scope="module")
def box_files() -> dict[str, Any]:
    return usr(BOX)


def nested(attr: str) -> Any:
    """`attr` of box's own configuration (system.build.containers.box)."""
    return evaluate(BOX, f"system.build.containers.box.{attr}")


def test_the_container_tree_is_its_own_usr_build_inside_the_hosts_usr(
    box_files: dict[str, Any],
) -> None:
    for name in ("box", "lab"):
        entry = box_files[f"lib/machines/{name}"]
        assert entry["kind"] == "source"
        # The nested configuration's usr step (image name = the container's, host version).
        assert entry["value"].endswith(f"-{name}-usr-7"), entry
    host_packages = [package_name(p) for p in evaluate(BOX, "environment.packages")]
    assert "systemd-container" in host_packages


def test_the_container_configuration_is_a_sonix_one_without_boot_parts() -> None:
    packages = {package_name(p) for p in nested("environment.packages")}
    assert {"systemd", "dbus-broker", "nginx", "python3"} <= packages
    # No kernel, boot loader, partitioning or verity tools: the host boots it.
    assert not any(p.startswith("linux-image-") for p in packages)
    assert not packages & {
        "systemd-boot",
        "systemd-boot-efi",
        "systemd-repart",
        "systemd-cryptsetup",
    }
    files = nested("system.buildManifest.usrFiles")
    sysusers = text(files, "lib/sysusers.d/sonix.conf")
    assert "u app 1000" in sysusers
    host0 = ini(text(files, "lib/systemd/network/50-sonix-host0.network"))
    assert host0["Match"] == ["Name=host0", "Virtualization=container"]
    assert host0["Address"] == ["Address=10.231.0.2/32", "Peer=10.231.0.1/32"]
    assert host0["Route"] == ["Gateway=10.231.0.1", "GatewayOnLink=yes"]
    tmpfiles = text(files, "lib/tmpfiles.d/50-sonix.conf")
    assert "L /bin - - - - usr/bin" in tmpfiles and "L /lib64 - - - - usr/lib64" in tmpfiles
    assert "IMAGE_ID=box" in nested("system.build.usr.osRelease")
    assert 'VERSION_ID="7"' in nested("system.build.usr.osRelease")


def test_nspawn_file_boots_usr_with_a_fresh_root_and_persistent_var() -> None:
    etc = evaluate(BOX, 'environment.etc."systemd/nspawn/box.nspawn".text')
    settings = ini(etc)
    assert settings["Exec"][:3] == ["Boot=yes", "PrivateUsers=no", settings["Exec"][2]]
    machine_id = settings["Exec"][2].removeprefix("MachineID=")
    assert len(machine_id) == 32 and int(machine_id, 16)
    assert "Parameters=systemd.firstboot=no" in settings["Exec"]
    assert "NotifyReady=yes" in settings["Exec"]
    assert settings["Files"] == [
        "Volatile=yes",
        "Bind=/var/lib/sonix/machines/box:/var",
        "BindReadOnly=/var/lib/keys:/etc/ssl/private",
        "Bind=/var/lib/data:/srv/data",
    ]
    assert settings["Network"] == ["VirtualEthernet=yes"]
    shared = evaluate(
        config("containers.web.privateNetwork = false;"),
        'environment.etc."systemd/nspawn/web.nspawn".text',
    )
    assert ini(shared)["Network"] == ["Private=no", "VirtualEthernet=no"]


def test_host_units_links_limits_and_veth(box_files: dict[str, Any]) -> None:
    assert wants(box_files, "multi-user.target") == sorted(
        ["machines.target", "sonix-boot-report.service", "systemd-networkd.service"]
    )
    # lab has autoStart = false: `machinectl start lab` starts it.
    assert wants(box_files, "machines.target") == ["systemd-nspawn@box.service"]
    limits = ini(text(box_files, "lib/systemd/system/systemd-nspawn@box.service.d/overrides.conf"))
    assert limits["Service"] == ["MemoryMax=512M", "TasksMax=256"]
    assert "lib/systemd/system/systemd-nspawn@lab.service.d/overrides.conf" not in box_files
    ve = ini(text(box_files, "lib/systemd/network/50-sonix-ve-box.network"))
    assert ve["Match"] == ["Driver=veth", "Name=ve-box"]
    assert ve["Address"] == ["Address=10.231.0.1/32", "Peer=10.231.0.2/32"]
    tmpfiles = text(box_files, "lib/tmpfiles.d/50-sonix.conf")
    assert "d /var/lib/sonix/machines/box 0755 root root -" in tmpfiles


def test_dhcp_containers_open_the_dhcp_port_on_their_veths_when_there_is_a_firewall() -> None:
    module = f"""{{ ... }}: {{
      imports = [ {MODULE} {paths.source_root()}/modules/services/firewall.nix ];
      containers.web.config = {{ }};
    }}"""
    interfaces = evaluate(module, "networking.firewall.interfaces")
    assert interfaces["ve-*"]["allowedUDPPorts"] == [67]


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # An option that the container's modules do not declare: named with its full path.
        ("containers.box.config.services.nosuch.enable = true;", "containers.box.config"),
        # A definition of the wrong type inside the container.
        (
            "containers.box.config.networking.hostName = 42;",
            "containers.box.config.networking.hostName",
        ),
        # A failed assertion of the nested configuration becomes the host's, naming it.
        (
            "containers.box.config.users.users.x = { isNormalUser = true; uid = 0; };",
            "containers.box.config: ",
        ),
        (
            "containers.averyverylongname.config = { };",
            "containers.averyverylongname: the name must match",
        ),
        (
            'containers.box.hostAddress = "10.0.0.1";',
            "containers.box: set both `hostAddress` and `localAddress`",
        ),
        (
            'containers.box = { hostAddress = "10.0.0.1"; localAddress = "10.0.0.300"; };',
            "IPv4 addresses without a prefix length",
        ),
        (
            'containers.box = { hostAddress = "10.0.0.1/24"; localAddress = "10.0.0.2"; };',
            "IPv4 addresses without a prefix length",
        ),
        (
            """containers.a = { hostAddress = "10.0.0.1"; localAddress = "10.0.0.2"; };
               containers.b = { hostAddress = "10.0.0.3"; localAddress = "10.0.0.2"; };""",
            "the localAddress 10.0.0.2 is used by more than one container (a, b)",
        ),
        (
            'containers.box.bindMounts."data".hostPath = "/srv";',
            'containers.box.bindMounts."data": both the path in the container',
        ),
        ('containers.box.cpuQuota = "half";', "containers.box.cpuQuota"),
    ],
)
def test_bad_input_names_the_container_and_the_option(body: str, expected: str) -> None:
    assert expected in error_of(config(body), "system.buildManifest.usrFiles")
