"""Sealed state asked for, no TPM at first boot (issue 15, "Bad input"): the boot stops with a
message that says what is wrong and what to do, and nothing is written to the disk.

The machine is release v1 of the update tests (signed, `boot.encryption.enable`; conftest.py),
started without a TPM on firmware without Secure Boot. Its initrd's sonix-repart finds no root
and no /dev/tpmrm0, says so on the console and fails; the initrd goes to emergency mode. The
disk's partition table is then compared, byte for byte, with the image's: repart never ran.
(test_updates.py boots the same image with a TPM: sealed, unlocked at every boot.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from channels import UpdateRelease

from sonix.testing.driver import Driver
from sonix.testing.machine import Machine

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 600
SECTOR = 512
GPT_SECTORS = 34  # protective MBR, GPT header, 128 entries of 128 bytes


def gpt(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(GPT_SECTORS * SECTOR)


@pytest.fixture(scope="module")
def machine(update_release: UpdateRelease, driver: Driver) -> Machine:
    v1 = update_release("1")
    m = driver.machine("no-tpm", image=v1.image, disk_size=4 << 30, memory_mib=1536)
    m.start()
    return m


def test_the_boot_stops_and_says_what_to_do(machine: Machine) -> None:
    machine.wait_for_console_text(
        r"sonix-repart: boot.encryption: this machine has no TPM 2.0 \(no /dev/tpmrm0\), and the "
        r"root partition is to be created sealed to one", timeout=BOOT_TIMEOUT)
    machine.wait_for_console_text(
        r"Nothing was written to the disk. Enable the TPM 2.0 \(firmware setup; for a VM, add "
        r"one: sonix run --tpm\), or build the image without boot.encryption.enable", timeout=60)
    machine.wait_for_console_text(r"emergency", timeout=BOOT_TIMEOUT)


def test_nothing_was_written_to_the_disk(machine: Machine, update_release: UpdateRelease) -> None:
    machine.crash()
    disk = machine.state_dir / "disk.raw"
    assert gpt(disk) == gpt(update_release("1").image)
