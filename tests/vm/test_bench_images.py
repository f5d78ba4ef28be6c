"""The issue 8 benchmark's comparison images boot: the Debian peer and the kernel-only floor.

One boot each (under TCG the peer needs a minute or two, the floor seconds). The builds are
cached in .sonix/bench/ per lock, so the benchmark runner reuses them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sonix import paths
from sonix.bench import floor, peer
from sonix.testing import Driver

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def bench_dir() -> Path:
    return paths.state_dir() / "bench"


def test_peer_reaches_multi_user(driver: Driver, bench_dir: Path) -> None:
    image = peer.build_peer(bench_dir)
    machine = driver.machine("peer", image=image.disk)
    machine.wait_for_unit("multi-user.target", timeout=900)
    analyze = machine.succeed("systemd-analyze time --no-pager", timeout=300)
    # No (firmware) and (loader): PID 1 reads the loader's EFI timestamps when it starts, and
    # in the peer efivarfs (a module of the cloud kernel) is not loaded yet by then.
    assert re.search(r"\(kernel\) \+ .*\(userspace\)", analyze), analyze
    # Debian's default.target is graphical.target (reached right after multi-user.target).
    assert re.search(r"(multi-user|graphical)\.target reached after", analyze), analyze
    # The way a Debian system boots: systemd-boot's type #1 entry, initramfs-tools' initrd
    # (no systemd in it: systemd-analyze shows no initrd phase), dpkg knows every package.
    cmdline = machine.succeed("cat /proc/cmdline")
    assert f"root=PARTUUID={peer.ROOT_PARTUUID}" in cmdline
    assert "(initrd)" not in analyze
    machine.succeed("test -e /run/initramfs/fsck-root")  # initramfs-tools checked the root
    assert machine.succeed("findmnt -no FSTYPE /").strip() == "ext4"
    machine.succeed("dpkg-query -W initramfs-tools linux-image-cloud-amd64 systemd-boot")
    machine.succeed("systemctl is-active systemd-networkd")
    assert int(machine.succeed("awk '/MemAvailable/ {print $2}' /proc/meminfo")) > 0
    machine.shutdown()


def test_floor_prints_its_marker(driver: Driver, bench_dir: Path) -> None:
    result = floor.build_floor(bench_dir)
    machine = driver.machine(
        "floor", direct_boot=result.direct_boot(), memory_mib=512, user_net=False
    )
    machine.start()
    marker = machine.wait_for_console_text(rf"{floor.MARKER} [0-9]+\.[0-9]+", timeout=300)
    assert float(marker.split()[1]) > 0
    machine.wait_for_shutdown(timeout=120)  # init powers the machine off
