"""Containers and firmware (issue 7, part two) on one VM (configs/containers-test.nix):

1. Quadlet: podman's generator made web.service and web-image.service from the files in
   /usr/share/containers/systemd, and registry.service (declared, not started); nothing is
   enabled through [Install] (only the multi-user.target.wants link of web);
2. the image built from locked packages: web-image.service copied the oci-archive from /usr
   into podman's storage as localhost/sonix/web:latest (one layer, the archive's digests);
3. the container: `podman ps` shows web running that image with its published port; its
   python3 http.server answers inside the guest (the container's address) and from the host
   through a QEMU port forward to the published port (netavark's DNAT, nftables); the
   volume is mounted read-only; a restart of the service brings it back;
4. fwupd: started by D-Bus activation when fwupdmgr asks; `fwupdmgr get-devices --json`
   answers with JSON; the remotes are the local directory (enabled) and the LVFS (disabled);
5. the firmware job: sonix-firmware-update.service runs refresh, update and
   check-reboot-needed (nothing to install, nothing to reboot) and succeeds; asked directly,
   `sonix update reboot-if-allowed --reason firmware` under strategy `off` records a deferred
   decision and does not reboot.

6. the nspawn machine `box`: systemd-nspawn@box.service (from machines.target) boots its own
   sonix configuration from /usr/lib/machines/box; `machinectl` lists it with its address;
   its page answers over the veth (networkd on both ends); `machinectl shell` and
   `systemd-run -M` run commands in it; the bind mount is shared both ways; the limits are
   on its service; /var survives a restart of the container while its /etc is made afresh;
   its release is the host's.

The VM's user network is restricted: only the host's forwards reach it, nothing else is
contacted (the registry container is never started).
"""

from __future__ import annotations

import http.client
import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from forwards import http_get

from sonix.build import BuildResult
from sonix.testing.driver import Driver
from sonix.testing.etcd import free_ports
from sonix.testing.machine import Machine
from sonix.testing.retry import retry
from sonix.vm import qemu

pytestmark = pytest.mark.vm

CONFIG = Path(__file__).parent / "configs" / "containers-test.nix"
BOOT_TIMEOUT = 600  # TCG on a busy two-core host
# Copying the 51 MiB archive into podman's storage and starting python3 under emulation.
CONTAINER_TIMEOUT = 900
GiB = 1 << 30
PAGE = "hello from a sonix container\n"


@pytest.fixture(scope="module")
def system(build_config: Callable[[Path], BuildResult]) -> BuildResult:
    return build_config(CONFIG)


@pytest.fixture(scope="module")
def http_port() -> int:
    (port,) = free_ports(1)
    return port


@pytest.fixture(scope="module")
def machine(system: BuildResult, driver: Driver, http_port: int) -> Machine:
    m = driver.machine(
        "containers", image=system.image, disk_size=4 * GiB, memory_mib=2048,
        port_forwards=(qemu.PortForward(http_port, 8080),),
    )
    m.start()
    m.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    return m


# ---- 1. Quadlet ------------------------------------------------------------------------------


def test_quadlet_generated_the_units(machine: Machine) -> None:
    for unit in ("web.service", "web-image.service", "registry.service"):
        path = machine.get_unit_property(unit, "FragmentPath")
        assert path == f"/run/systemd/generator/{unit}", (unit, path)
        source = machine.get_unit_property(unit, "SourcePath")
        assert source.startswith("/usr/share/containers/systemd/"), (unit, source)
    # web requires its image unit (Quadlet's doing for Image=web.image).
    assert "web-image.service" in machine.get_unit_property("web.service", "Requires")
    # Enabled only by the link from the configuration; Quadlet linked nothing itself.
    machine.succeed("test -L /usr/lib/systemd/system/multi-user.target.wants/web.service")
    machine.fail("test -e /run/systemd/generator/multi-user.target.wants/web.service")
    assert machine.get_unit_property("registry.service", "ActiveState") == "inactive"
    generated = machine.succeed("systemctl cat registry.service")
    assert "docker.io/library/busybox:1.37 sleep infinity" in generated
    machine.succeed("test -z \"$(ls -A /etc/systemd/system)\"")


# ---- 2. the image from locked packages ---------------------------------------------------------


def test_image_was_loaded_from_the_archive(machine: Machine) -> None:
    machine.wait_for_unit("web-image.service", timeout=CONTAINER_TIMEOUT)
    images = machine.succeed("podman images --format '{{.Repository}}:{{.Tag}} {{.ID}}'")
    assert "localhost/sonix/web:latest" in images, images
    inspect = json.loads(machine.succeed("podman image inspect localhost/sonix/web:latest"))[0]
    assert inspect["Config"]["Entrypoint"] == ["/usr/bin/python3", "-m", "http.server"]
    assert inspect["Config"]["Cmd"] == ["8080", "--directory", "/srv"]
    assert len(inspect["RootFS"]["Layers"]) == 1
    # The layer podman stored is the archive's layer (uncompressed: digest = diff_id).
    index = json.loads(machine.succeed("tar -xOf /usr/share/sonix/oci/web.tar index.json"))
    manifest_digest = index["manifests"][0]["digest"].removeprefix("sha256:")
    manifest = json.loads(
        machine.succeed(f"tar -xOf /usr/share/sonix/oci/web.tar blobs/sha256/{manifest_digest}"))
    assert inspect["RootFS"]["Layers"] == [manifest["layers"][0]["digest"]]
    # Loading again (every boot does) keeps one image, no dangling copies.
    # web.service requires web-image.service, so systemd restarts the container too.
    machine.succeed("systemctl restart web-image.service")
    assert machine.succeed("podman images -q | sort -u | wc -l").strip() == "1"
    machine.wait_for_unit("web.service", timeout=CONTAINER_TIMEOUT)


# ---- 3. the container ------------------------------------------------------------------------


def test_container_runs_and_podman_ps_shows_it(machine: Machine) -> None:
    machine.wait_for_unit("web.service", timeout=CONTAINER_TIMEOUT)
    ps = machine.wait_until_succeeds(
        "podman ps --format '{{.Names}} {{.Image}} {{.Status}} {{.Ports}}' | grep '^web '",
        timeout=CONTAINER_TIMEOUT,
    )
    assert "localhost/sonix/web:latest" in ps
    assert "Up" in ps
    assert "0.0.0.0:8080->8080/tcp" in ps
    # The image is python3's closure only (no shell, no coreutils): ask python.
    # (Until the restarted container is the one `podman ps` names, exec may miss it.)
    env = machine.wait_until_succeeds(
        "podman exec web python3 -c 'import os; print(os.environ[\"GREETING\"])'",
        timeout=CONTAINER_TIMEOUT,
    )
    assert env.strip() == "hello from a container"
    # The volume is the host's directory, read-only.
    machine.succeed("podman exec web python3 -c 'open(\"/srv/index.html\").read()'")
    machine.fail("podman exec web python3 -c 'open(\"/srv/new\", \"w\")'")


def test_container_answers_inside_the_guest(machine: Machine) -> None:
    address = machine.succeed(
        "podman inspect -f '{{.NetworkSettings.IPAddress}}' web").strip()
    assert address, "the container has no address on podman's bridge"
    page = machine.wait_until_succeeds(
        "python3 -c 'import urllib.request, sys; "
        f"sys.stdout.write(urllib.request.urlopen(\"http://{address}:8080/\", timeout=10)"
        ".read().decode())'",
        timeout=CONTAINER_TIMEOUT,
    )
    assert page == PAGE


def test_container_answers_from_the_host(machine: Machine, http_port: int) -> None:
    """Host -> QEMU forward -> guest port 8080 -> netavark's DNAT -> the container. The
    published port is forwarded before the firewall's input chain (docs/containers.md), so
    the default-deny firewall that the module brings along does not stand in the way."""
    answer: list[tuple[int, str]] = []

    def check(_last_try: bool) -> bool:
        try:
            answer.append(http_get(http_port, timeout=20))
        except (OSError, http.client.HTTPException):
            return False
        return True

    retry(check, timeout=CONTAINER_TIMEOUT, what="the container's page through the forward")
    assert answer[-1] == (200, PAGE)
    assert "netavark" in machine.succeed("nft list tables")
    assert http_get(http_port, "/missing")[0] == 404


def test_container_comes_back_after_a_restart(machine: Machine, http_port: int) -> None:
    machine.succeed("systemctl restart web.service", timeout=CONTAINER_TIMEOUT)
    machine.wait_for_unit("web.service", timeout=CONTAINER_TIMEOUT)
    assert machine.get_unit_property("web.service", "Restart") == "always"

    def check(_last_try: bool) -> bool:
        try:
            return http_get(http_port, timeout=20) == (200, PAGE)
        except (OSError, http.client.HTTPException):
            return False

    retry(check, timeout=CONTAINER_TIMEOUT, what="the container after the restart")


# ---- 4. fwupd ----------------------------------------------------------------------------------


def enabled(remote: dict[str, object]) -> bool | None:
    """Whether fwupd says a remote is enabled: fwupd 1.x wrote `Enabled`, 2.0 lists flags."""
    if "Enabled" in remote:
        return remote["Enabled"] in (True, "true")
    flags = remote.get("Flags")
    if isinstance(flags, list):
        return "enabled" in flags
    return None


def test_fwupd_starts_and_answers(machine: Machine) -> None:
    # Not started at boot: D-Bus activation starts fwupd.service for the first client.
    devices = json.loads(machine.succeed("fwupdmgr get-devices --json", timeout=600))
    assert "Devices" in devices
    machine.wait_for_unit("fwupd.service")
    remotes = json.loads(machine.succeed("fwupdmgr get-remotes --json"))["Remotes"]
    by_id = {r["Id"]: r for r in remotes}
    assert "sonix-local" in by_id, sorted(by_id)
    assert enabled(by_id["sonix-local"]) is True, by_id["sonix-local"]
    # fwupd 1.x listed the MetadataURI; 2.x the directory as FilenameCache.
    assert "/usr/share/sonix/fwupd/local" in json.dumps(by_id["sonix-local"])
    # Disabled remotes may be left out of the list altogether.
    assert "lvfs" not in by_id or enabled(by_id["lvfs"]) is False, by_id.get("lvfs")
    assert machine.succeed("readlink /etc/fwupd/remotes.d/lvfs.conf").strip() == (
        "/usr/share/factory/etc/fwupd/remotes.d/lvfs.conf")


# ---- 5. the firmware job and the reboot decision -------------------------------------------------


def test_firmware_job_runs_in_the_window_and_needs_no_reboot(machine: Machine) -> None:
    timer = machine.succeed("systemctl show -P TimersCalendar sonix-firmware-update.timer")
    assert "03:00:00 UTC" in timer
    assert machine.get_unit_property("sonix-firmware-update.timer", "ActiveState") == "active"
    machine.succeed("systemctl start sonix-firmware-update.service", timeout=900)
    assert machine.get_unit_property("sonix-firmware-update.service", "Result") == "success"
    journal = machine.succeed("journalctl -b -u sonix-firmware-update.service --no-pager")
    assert "no firmware update waits for a reboot" in journal


def test_reboot_if_allowed_defers_under_strategy_off(machine: Machine) -> None:
    boot_id = machine.succeed("cat /proc/sys/kernel/random/boot_id").strip()
    machine.succeed("sonix update reboot-if-allowed --reason firmware")
    state = json.loads(machine.succeed("cat /var/lib/sonix-update/state.json"))
    assert state["reboot_request"]["reason"] == "firmware"
    assert state["reboot_request"]["decision"] == "deferred (strategy off)"
    status = json.loads(machine.succeed("sonix status --json"))
    assert status["reboot_request"]["reason"] == "firmware"
    assert machine.succeed("cat /proc/sys/kernel/random/boot_id").strip() == boot_id


# ---- 6. the nspawn machine -------------------------------------------------------------------

BOX_PAGE = "hello from an nspawn machine\n"


def in_box(machine: Machine, command: str) -> str:
    """Run `command` in the container (a transient unit there, through its systemd)."""
    return machine.succeed(
        f"systemd-run -M box --wait --pipe --quiet /usr/bin/sh -c {shlex.quote(command)}")


def test_nspawn_machine_boots_its_own_configuration(machine: Machine) -> None:
    machine.wait_for_unit("systemd-nspawn@box.service", timeout=BOOT_TIMEOUT)
    assert "systemd-nspawn@box.service" in machine.get_unit_property("machines.target", "Wants")
    listing = machine.succeed("machinectl list --no-legend --no-pager")
    assert listing.split()[:3] == ["box", "container", "systemd-nspawn"], listing
    assert "10.231.0.2" in listing
    status = machine.succeed("machinectl status box --no-pager")
    assert "Root: /usr/lib/machines/box" in status
    # Its own configuration: its user, its host name, no kernel of its own; the host's release.
    assert in_box(machine, "getent passwd app").startswith("app:x:1000:")
    assert in_box(machine, "cat /proc/sys/kernel/hostname").strip() == "box"
    assert in_box(machine, "ls /usr/lib/modules 2>/dev/null | wc -l").strip() == "0"
    box_release = in_box(machine, "cat /usr/lib/os-release")
    host_version = machine.succeed(". /usr/lib/os-release; echo $VERSION_ID").strip()
    assert "IMAGE_ID=box" in box_release and f'VERSION_ID="{host_version}"' in box_release
    # /usr is the host's verity-protected one, read-only; the root is a fresh tmpfs.
    mounts = in_box(
        machine, "for m in / /usr /var; do findmnt -n -o TARGET,FSTYPE,OPTIONS -M $m; done")
    assert re.search(r"^/usr\s+erofs\s+ro,", mounts, re.M), mounts
    assert re.search(r"^/\s+tmpfs\s", mounts, re.M), mounts
    # The setuid bits of its packages, which the Nix store drops, are in the host's usr image.
    assert in_box(machine, "stat -c '%a %U' /usr/bin/su").strip() == "4755 root"


def test_nspawn_machine_answers_over_its_veth(machine: Machine) -> None:
    host_end = machine.succeed("ip -4 -o addr show dev ve-box")
    assert "inet 10.231.0.1 peer 10.231.0.2/32" in host_end, host_end
    assert "inet 10.231.0.2 peer 10.231.0.1/32" in in_box(machine, "ip -4 -o addr show dev host0")
    page = machine.wait_until_succeeds(
        "python3 -c 'import urllib.request, sys; "
        "sys.stdout.write(urllib.request.urlopen(\"http://10.231.0.2:8000/\", timeout=10)"
        ".read().decode())'",
        timeout=CONTAINER_TIMEOUT,
    )
    assert page == BOX_PAGE


def test_machinectl_shell_runs_a_command(machine: Machine) -> None:
    # machinectl shell forwards a pseudo-terminal: its output ends lines with CR LF.
    machine.succeed("machinectl shell box /usr/bin/id -un > /tmp/box-shell.out")
    assert machine.succeed("cat /tmp/box-shell.out").replace("\r", "").strip() == "root"


def test_nspawn_bind_mount_and_limits(machine: Machine) -> None:
    machine.succeed("echo from-host > /var/lib/box-shared/in")
    assert in_box(machine, "cat /srv/shared/in").strip() == "from-host"
    in_box(machine, "echo from-box > /srv/shared/out")
    assert machine.succeed("cat /var/lib/box-shared/out").strip() == "from-box"
    assert machine.get_unit_property("systemd-nspawn@box.service", "MemoryMax") == str(256 << 20)
    assert machine.get_unit_property("systemd-nspawn@box.service", "TasksMax") == "512"


def test_nspawn_machine_keeps_var_and_remakes_etc_across_a_restart(machine: Machine) -> None:
    in_box(machine, "echo kept > /var/lib/marker; echo gone > /etc/scratch")
    machine.succeed("machinectl poweroff box")
    machine.wait_until_succeeds(
        "test \"$(systemctl is-active systemd-nspawn@box.service)\" = inactive",
        timeout=CONTAINER_TIMEOUT,
    )
    # NotifyReady=yes: machinectl start returns once the container has booted.
    machine.succeed("machinectl start box", timeout=CONTAINER_TIMEOUT)
    assert machine.get_unit_property("systemd-nspawn@box.service", "ActiveState") == "active"
    state = in_box(machine, "systemctl is-system-running --wait || systemctl --failed --no-legend")
    assert state.strip() == "running", state
    assert in_box(machine, "cat /var/lib/marker").strip() == "kept"
    assert in_box(machine, "test -e /etc/scratch || echo absent").strip() == "absent"
    # The journal is the container's own, kept in its /var, and readable from the host.
    machine.succeed("journalctl -M box -b -u box-web.service --no-pager | grep -q box-web")
