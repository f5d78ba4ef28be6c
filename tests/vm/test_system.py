"""The bootable system (issue 4), checked on one VM that boots three times:

1. first boot of a disk larger than the image: root created and grown, /etc from tmpfiles,
   networkd, a declared service, the boot counter consumed and blessed;
2. after a clean shutdown, a byte of /usr flipped on disk: verity reports it.

The image is built once per test session (tests/vm/conftest.py), the VM booted once per module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sonix import nix, paths
from sonix.build import BuildResult, nix_path
from sonix.testing.driver import Driver
from sonix.testing.machine import Machine

pytestmark = pytest.mark.vm

CONFIG = Path(__file__).parent / "configs" / "minimal-test.nix"
GiB = 1 << 30
DISK = 4 * GiB
BOOT_TIMEOUT = 600  # TCG on a busy two-core host: minutes, not seconds


@pytest.fixture(scope="module")
def system(build_config: Callable[[Path], BuildResult]) -> BuildResult:
    return build_config(CONFIG)


@pytest.fixture(scope="module")
def machine(system: BuildResult, driver: Driver) -> Machine:
    m = driver.machine("minimal", image=system.image, disk_size=DISK, memory_mib=1536)
    m.start()
    m.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    return m


def test_reaches_multi_user_without_failed_units(machine: Machine) -> None:
    state = machine.succeed("systemctl is-system-running --wait || true", timeout=BOOT_TIMEOUT)
    failed = machine.succeed("systemctl --failed --no-legend --plain")
    assert state.strip() == "running", f"system state {state.strip()}; failed units:\n{failed}"


def test_networkd_configured_the_nic(machine: Machine) -> None:
    machine.wait_until_succeeds("ip -4 -o addr show scope global | grep -q 'inet 10.0.2.15/'")
    assert "routable" in machine.succeed("networkctl list --no-legend")


def test_declared_service_ran(machine: Machine) -> None:
    machine.wait_for_unit("hello.service")
    assert machine.succeed("cat /run/hello").strip() == "hello"


def test_etc_comes_from_tmpfiles(machine: Machine) -> None:
    assert machine.succeed("cat /etc/hostname").strip() == "minimal"
    assert machine.succeed("cat /proc/sys/kernel/hostname").strip() == "minimal"
    assert machine.succeed("cat /etc/sonix-test/greeting") == "hello from the factory\n"
    factory = machine.succeed("sha256sum < /usr/share/factory/etc/sonix-test/greeting")
    assert machine.succeed("sha256sum < /etc/sonix-test/greeting") == factory
    assert machine.succeed("readlink /etc/os-release").strip() == "../usr/lib/os-release"
    machine.succeed("grep -q '^admin:' /etc/passwd")  # sysusers
    machine.succeed("grep -rq 'sonix-test/greeting' /usr/lib/tmpfiles.d/")


def generated_units() -> list[str]:
    """Unit files the configuration writes (aliases, i.e. symlinks to packaged units, aside)."""
    expr = (
        f"builtins.mapAttrs (_: f: f.kind) (import {paths.source_root()}/default.nix "
        f"{{ configuration = {nix_path(CONFIG)}; }}).config.system.buildManifest.usrFiles"
    )
    files: dict[str, str] = nix.eval_expr_json(expr)
    unit = re.compile(r"lib/systemd/system/[^/]+\.(service|socket|timer|target|path|mount|slice)$")
    return [f for f, kind in files.items() if unit.match(f) and kind == "text"]


def test_no_generated_unit_has_an_install_section(machine: Machine) -> None:
    units = generated_units()
    assert "lib/systemd/system/hello.service" in units
    found = machine.execute("grep -l '^\\[Install\\]' " + " ".join(f"/usr/{u}" for u in units))[1]
    assert found.strip() == "", f"generated units with [Install]: {found}"
    # The preset `disable *` means first-boot preset-all enabled nothing behind our back.
    links = machine.succeed(
        "shopt -s nullglob globstar; for f in /etc/systemd/system/**; do"
        ' [ -L "$f" ] && echo "$f"; done; true'
    )
    assert links.strip() == "", f"enablement links in /etc: {links}"


def test_first_boot_created_and_grew_the_root(machine: Machine) -> None:
    root = json.loads(machine.succeed("findmnt --json -o SOURCE,FSTYPE /"))["filesystems"][0]
    assert root["fstype"] == "ext4"
    size = int(machine.succeed(f"blockdev --getsize64 {root['source']}"))
    # 4 GiB disk minus ESP, usr slot and verity slot (and, when the B slot exists, it too).
    assert size > 2 * GiB, f"root is only {size} bytes"
    label = machine.succeed(f"lsblk -no PARTTYPENAME {root['source']}").strip()
    assert "root" in label.lower()


def test_verity_backs_usr(machine: Machine) -> None:
    assert machine.succeed("findmnt -no SOURCE /usr").strip() == "/dev/mapper/usr"
    assert " verity " in machine.succeed("dmsetup table usr")
    usrhash = re.search(r"usrhash=([0-9a-f]{64})", machine.succeed("cat /proc/cmdline"))
    assert usrhash is not None
    assert usrhash[1] in machine.succeed("dmsetup table usr")


def test_setuid_programs_keep_their_mode(machine: Machine) -> None:
    # The Nix store drops setuid bits; the image builder puts back what the packages asked for.
    programs = "/usr/bin/su /usr/bin/mount /usr/sbin/unix_chkpwd"
    modes = machine.succeed(f"stat -c '%a %U:%G %n' {programs}")
    assert modes.split("\n")[:3] == [
        "4755 root:root /usr/bin/su",
        "4755 root:root /usr/bin/mount",
        "2755 root:shadow /usr/sbin/unix_chkpwd",
    ]
    assert "nosuid" not in machine.succeed("findmnt -no OPTIONS /usr")


def test_boot_counter_consumed_and_blessed(machine: Machine, system: BuildResult) -> None:
    name = system.manifest["uki"].removesuffix(".efi")
    assert system.manifest["esp_entry"].endswith(f"{name}+3.efi")
    machine.wait_until_succeeds(f"test -e /boot/EFI/Linux/{name}.efi", timeout=BOOT_TIMEOUT)
    assert machine.succeed("ls /boot/EFI/Linux").split() == [f"{name}.efi"]
    assert "good" in machine.succeed("systemctl show -P StatusText systemd-bless-boot || true") or (
        machine.succeed("systemctl is-active systemd-bless-boot.service").strip() == "active"
    )


def find_canary(disk: Path) -> int:
    marker = b"SONIX-CANARY line 004000 "
    chunk = 64 << 20
    with disk.open("rb") as f:
        offset = 0
        while data := f.read(chunk + len(marker)):
            index = data.find(marker)
            if index >= 0:
                return offset + index
            offset += chunk
            f.seek(offset)
    raise AssertionError("canary not found in the disk image")


def test_corrupted_usr_block_is_detected(machine: Machine) -> None:
    machine.succeed("sha256sum /usr/lib/sonix/canary.txt")
    machine.shutdown()
    disk = machine.state_dir / "disk.raw"
    offset = find_canary(disk)
    with disk.open("r+b") as f:
        f.seek(offset)
        f.write(b"s")
    machine.start()
    machine.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    status, output = machine.execute("cat /usr/lib/sonix/canary.txt 2>&1 > /dev/null")
    assert status != 0 and "Input/output error" in output
    assert re.search(r"verity.*(corrupted|corruption)", machine.succeed("dmesg"))
