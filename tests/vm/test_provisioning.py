"""Provisioning in the initrd (issue 6), one image (configs/provision-test.nix) for every case;
only what the VM gets from outside changes:

1. EC2: user data with an Ignition config served by the fake metadata server behind
   169.254.169.254 (QEMU forwards it to 127.0.0.1): the host name, a user with an SSH key, a
   file and a unit that runs, the EC2 public key for `admin`, /run/metadata/sonix. The IMDSv2
   token flow is checked on the server's side. A second boot asks no source (first-boot policy)
   and has the attributes again.
2. An invalid config through SMBIOS credentials stops the boot in the initrd with the JSON path
   on the console; the next boot, with a valid config and the host name as credentials and no
   network at all, is provisioned, and nothing of the invalid config is on the disk.
3. matchbox: the profile is picked by MAC address and applied at every boot; when the profile
   changes, what the old one wrote is removed. It also names the update channel.

Case 2 runs first, alone; then the EC2 and the matchbox machines boot together (at most two VMs
run at once on this machine kind).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sonix.build import BuildResult
from sonix.provisioning.metadata_server import (
    Ec2Instance,
    Matchbox,
    MatchboxProfile,
    MetadataServer,
)
from sonix.testing.driver import Driver
from sonix.testing.machine import Machine
from sonix.vm import qemu

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 900
CONFIG = Path(__file__).parent / "configs/provision-test.nix"
MATCHBOX = Path(__file__).parents[1] / "fixtures/metadata/matchbox"
ALICE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbhXzNd3mW4Jz8k2G2c1QF3sVx1kZp5eT0a9fUo8kQb alice"
ADMIN_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFy0c1pQ3W2pRjZ8m0qYk1c7pXn9e5s3Qd7Lw2sTn4aE ops"
METADATA_NET = "169.254.169.0/24"


def ignition(**sections: object) -> str:
    return json.dumps({"ignition": {"version": "3.4.0"}, **sections}, separators=(",", ":"))


EC2_USER_DATA = ignition(
    passwd={"users": [{"name": "alice", "sshAuthorizedKeys": [ALICE_KEY],
                       "groups": ["systemd-journal"]}]},
    storage={"files": [{"path": "/srv/hello.txt", "mode": 0o640,
                        "contents": {"source": "data:,hello%20from%20ec2%0A"}}]},
    systemd={"units": [{
        "name": "hello.service", "enabled": True,
        "contents": "[Unit]\nDescription=Provisioned by Ignition\n[Service]\nType=oneshot\n"
                    "RemainAfterExit=yes\nExecStart=/usr/bin/cp /srv/hello.txt /run/hello\n",
    }]},
)


@pytest.fixture(scope="module")
def image(build_config: Callable[[Path], BuildResult]) -> Path:
    return build_config(CONFIG).image


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, MetadataServer]]:
    """One fake metadata server per network machine: EC2 only, and matchbox only."""
    with MetadataServer(("127.0.0.1", 0)) as ec2, MetadataServer(("127.0.0.1", 0)) as matchbox:
        ec2.ec2 = Ec2Instance(user_data=EC2_USER_DATA.encode(), hostname="web-ec2",
                              instance_id="i-0sonix", ssh_keys=(ADMIN_KEY,))
        matchbox.matchbox = Matchbox.load(MATCHBOX)  # group web-1 selects 52:54:00:12:34:56
        yield {"ec2": ec2, "matchbox": matchbox}


@pytest.fixture(scope="module")
def network_machines(
    image: Path, driver: Driver, servers: dict[str, MetadataServer]
) -> dict[str, Machine]:
    """The EC2 and the matchbox machine, started together: their first boots overlap."""
    machines = {
        name: driver.machine(name, image=image, user_network=METADATA_NET,
                             user_net_mac="52:54:00:12:34:56",
                             guest_forwards=metadata_forwards(server))
        for name, server in servers.items()
    }
    for machine in machines.values():
        machine.start()
    return machines


def metadata_forwards(server: MetadataServer) -> tuple[qemu.GuestForward, ...]:
    port = int(server.url.rsplit(":", 1)[1])
    return (qemu.GuestForward("169.254.169.254", 80, port),
            qemu.GuestForward("169.254.169.254", 8080, port))


def test_invalid_config_stops_the_boot_then_credentials_without_network(
    image: Path, driver: Driver
) -> None:
    invalid = ignition(storage={"files": [
        {"path": "/etc/written-by-the-invalid-config",
         "contents": {"source": "data:,should%20not%20exist"}},
        {"path": "/etc/motd-extra", "mode": "0644", "contents": {"source": "data:,x"}},
    ]})
    machine = driver.machine("credentials", image=image, user_net=False,
                             credentials={"sonix.provision.config": invalid})
    machine.start()
    machine.wait_for_console_text(
        r"sonix-provision: the Ignition config is invalid; nothing of it was written",
        timeout=BOOT_TIMEOUT)
    machine.wait_for_console_text(r"\$\.storage\.files\.1\.mode: ", timeout=60)
    machine.wait_for_console_text(r"emergency", timeout=120)
    machine.crash()

    # The same kind of config as the EC2 case (a user with a key, a file, a unit that runs),
    # as a credential: no network at all.
    machine.credentials = {
        "sonix.provision.config": ignition(
            passwd={"users": [{"name": "bob", "sshAuthorizedKeys": [ALICE_KEY]}]},
            storage={"files": [
                {"path": "/etc/role", "contents": {"source": "data:,from%20credentials%0A"}}]},
            systemd={"units": [{
                "name": "role.service", "enabled": True,
                "contents": "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
                            "ExecStart=/usr/bin/cp /etc/role /run/role\n"}]},
        ),
        "sonix.provision.hostname": "cred-1",
    }
    machine.start()
    machine.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    assert machine.succeed("cat /etc/role") == "from credentials\n"
    assert machine.succeed("cat /run/role") == "from credentials\n"  # the unit ran
    assert machine.succeed("cat /home/bob/.ssh/authorized_keys") == ALICE_KEY + "\n"
    assert machine.succeed("cat /proc/sys/kernel/hostname").strip() == "cred-1"
    machine.fail("test -e /etc/written-by-the-invalid-config")
    assert "SONIX_PROVISION_SOURCE=credentials" in machine.succeed("cat /run/metadata/sonix")
    machine.stop()  # the next tests start two machines at once


def test_ec2_user_data_provisions_the_machine(
    network_machines: dict[str, Machine], servers: dict[str, MetadataServer]
) -> None:
    machine, server = network_machines["ec2"], servers["ec2"]
    machine.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)

    assert machine.succeed("cat /proc/sys/kernel/hostname").strip() == "web-ec2"
    assert machine.succeed("cat /run/hello") == "hello from ec2\n"  # the unit ran
    assert machine.succeed("stat -c %a /srv/hello.txt").strip() == "640"
    assert machine.succeed("id -nG alice").split() == ["alice", "systemd-journal"]
    assert machine.succeed("cat /home/alice/.ssh/authorized_keys") == ALICE_KEY + "\n"
    assert machine.succeed("stat -c '%U %a' /home/alice/.ssh/authorized_keys").strip() == (
        "alice 600")
    assert machine.succeed("cat /home/admin/.ssh/authorized_keys") == ADMIN_KEY + "\n"
    attributes = machine.succeed("cat /run/metadata/sonix")
    assert "SONIX_EC2_INSTANCE_ID=i-0sonix\n" in attributes
    assert "SONIX_PROVISION_SOURCE=ec2\n" in attributes
    # IMDSv2: a token first, then every GET with it.
    ec2 = server.requests_to("/latest/")
    assert ec2[0].method == "PUT" and ec2[0].path == "/latest/api/token"
    assert all("x-aws-ec2-metadata-token" in r.headers for r in ec2[1:] if r.method == "GET")
    journal = machine.succeed("journalctl -b -u sonix-provision.service --no-pager")
    assert "configuration from ec2" in journal

    # Later boots: first-boot policy, no source is asked, the attributes are back.
    asked = len(server.requests)
    machine.reboot()
    machine.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    assert len(server.requests) == asked
    assert "SONIX_EC2_INSTANCE_ID=i-0sonix\n" in machine.succeed("cat /run/metadata/sonix")
    assert machine.succeed("cat /proc/sys/kernel/hostname").strip() == "web-ec2"  # tmpfiles kept it


def test_matchbox_profile_by_mac_at_every_boot(
    network_machines: dict[str, Machine], servers: dict[str, MetadataServer]
) -> None:
    machine, server = network_machines["matchbox"], servers["matchbox"]
    machine.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    assert machine.succeed("cat /etc/sonix-role") == "web\n"
    assert machine.succeed("cat /proc/sys/kernel/hostname").strip() == "web-1"
    update = json.loads(machine.succeed("cat /etc/sonix/update.json"))
    assert update == {"channel": "http://10.0.2.2:8000/stable/"}
    assert "SONIX_MATCHBOX_PROFILE=web" in machine.succeed("cat /run/metadata/sonix")
    asked = server.requests_to("/ignition")
    assert asked and "mac=52-54-00-12-34-56" in asked[-1].path

    # The profile changes: the next boot applies the new one and removes the old file.
    web = MatchboxProfile("web", ignition(storage={"files": [
        {"path": "/etc/sonix-role-v2", "contents": {"source": "data:,web%20v2%0A"}}]}).encode())
    assert server.matchbox is not None
    server.matchbox = Matchbox({**server.matchbox.profiles, "web": web},
                               server.matchbox.groups)
    machine.reboot()
    machine.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    assert machine.succeed("cat /etc/sonix-role-v2") == "web v2\n"
    machine.fail("test -e /etc/sonix-role")
    journal = machine.succeed("journalctl -b -u sonix-provision.service --no-pager")
    assert "removed /etc/sonix-role (no longer in the configuration)" in journal
