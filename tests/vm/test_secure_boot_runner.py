"""The runner's Secure Boot firmware and software TPM (issue 15, "Running it"), on one VM that
boots twice: the minimal test image with `secure_boot=True, tpm=True`.

1. OVMF's Secure Boot build with fresh variables is in setup mode (SecureBoot 0, SetupMode
   1): no keys are enrolled, so it boots the unsigned image;
2. the guest sees a TPM 2.0 (tpm-tis, swtpm on the host);
3. the TPM is the same one after a reboot (a power cycle: QEMU and swtpm start again on the
   same state): its reset counter, kept in the TPM's NV memory, went up instead of starting
   again at that of a new TPM.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from sonix.build import BuildResult
from sonix.testing.driver import Driver
from sonix.testing.machine import Machine

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(shutil.which("swtpm") is None, reason="swtpm is not installed"),
]

CONFIG = Path(__file__).parent / "configs" / "minimal-test.nix"
BOOT_TIMEOUT = 600  # TCG on a busy two-core host
EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

# TPM2_ReadClock, written to the TPM's device as raw bytes: tag TPM_ST_NO_SESSIONS, size 10,
# command code 0x181. The reply's TPMS_TIME_INFO follows its 10-byte header: time (8 bytes),
# clock (8), resetCount (4), restartCount (4), safe (1). The command must reach the device in
# one write (the driver refuses a part: EINVAL), and bash's stdout is line-buffered (0x0a is a
# newline), hence dd with a full block.
READ_CLOCK = r"""
exec 7<>/dev/tpmrm0
printf '\x80\x01\x00\x00\x00\x0a\x00\x00\x01\x81' | dd bs=10 count=1 iflag=fullblock status=none >&7
dd bs=4096 count=1 status=none <&7 | od -An -v -tu1 -w64
"""


@pytest.fixture(scope="module")
def machine(build_config: Callable[[Path], BuildResult], driver: Driver) -> Machine:
    system = build_config(CONFIG)
    m = driver.machine("secboot", image=system.image, disk_size=4 << 30, memory_mib=1536,
                       secure_boot=True, tpm=True)
    m.start()
    m.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    m.log(f"multi-user.target with Secure Boot firmware and swtpm: {m.boot_times}")
    return m


def efi_byte(machine: Machine, name: str) -> int:
    """The value of a one-byte EFI global variable (after its 4 attribute bytes)."""
    path = f"/sys/firmware/efi/efivars/{name}-{EFI_GLOBAL}"
    return int(machine.succeed(f"od -An -tu1 -j4 -N1 {path}").strip())


def reset_count(machine: Machine) -> int:
    """The TPM's resetCount (TPM2_ReadClock): it goes up at each power-on of the same TPM."""
    reply = [int(b) for b in machine.succeed(READ_CLOCK).split()]
    assert len(reply) == 35 and reply[6:10] == [0, 0, 0, 0], f"TPM2_ReadClock failed: {reply}"
    return int.from_bytes(bytes(reply[26:30]), "big")


def test_firmware_is_the_secure_boot_build_in_setup_mode(machine: Machine) -> None:
    qemu_log = machine.qemu_log.read_text()
    assert "q35,smm=on" in qemu_log and "OVMF_CODE_4M.secboot.fd" in qemu_log
    assert efi_byte(machine, "SecureBoot") == 0
    assert efi_byte(machine, "SetupMode") == 1  # no platform key: keys may be enrolled


def test_guest_sees_a_tpm2(machine: Machine) -> None:
    assert machine.succeed("cat /sys/class/tpm/tpm0/tpm_version_major").strip() == "2"
    machine.succeed("test -c /dev/tpmrm0")


def test_tpm_state_survives_a_reboot(machine: Machine) -> None:
    before = reset_count(machine)
    permall = machine.tpm_state / "tpm2-00.permall"
    assert permall.is_file()
    machine.reboot()
    machine.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    machine.log(f"boot times: {machine.boot_times}")
    after = reset_count(machine)
    assert after > before, f"resetCount {before} -> {after}: a new TPM, not the same one"
    assert efi_byte(machine, "SetupMode") == 1
