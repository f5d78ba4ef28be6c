"""Sealed state and Secure Boot enrolment when something is wrong (issue 15; docs/secure-boot.md,
"TPM cleared, replaced or missing later" and "Enrolment in setup mode").

The machines are release v1 of the update tests (signed, `boot.encryption.enable`; conftest.py),
booted on OVMF's Secure Boot firmware in setup mode with a software TPM.

1. Tampered enrolment file: a copy of v1's image whose `loader/keys/auto/PK.auth` has one byte
   of its signed payload flipped. systemd-boot writes db, KEK and then PK; the firmware checks
   PK's signature (in setup mode, against the certificate it carries) and refuses it, so setup
   mode never ends: the machine boots with Secure Boot off and no PK, db and KEK enrolled.
2. TPM cleared: v1 enrols the owner's keys and creates its sealed root on the first boot (the
   recovery key given as a credential, as test_updates.py does). Powered off, its TPM state is
   deleted, so the next start has a new TPM (a cleared or replaced chip). systemd-cryptsetup
   cannot unseal the key and asks on the console; the recovery key typed there opens the root.
   The new TPM is then enrolled with the documented systemd-cryptenroll commands, and the boot
   after it unlocks by the TPM again, with no prompt, the recovery keyslot still there.
"""

from __future__ import annotations

import hashlib
import mmap
import shutil
import struct
from pathlib import Path

import pytest
from channels import UpdateRelease

from sonix import secureboot
from sonix.testing.driver import Driver
from sonix.testing.machine import Machine

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(shutil.which("swtpm") is None, reason="swtpm is not installed"),
]

BOOT_TIMEOUT = 600
GiB = 1 << 30
RECOVERY_KEY = "correct horse battery staple, for the test only"  # as test_updates.py
EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
EFI_IMAGE_SECURITY_DATABASE = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
# systemd-cryptsetup 257's question when the TPM2 token does not unlock the volume, e.g.
# "Please enter passphrase for disk root-x86-64 (root): (press TAB for no echo)".
PROMPT = r"Please enter passphrase for disk [^\n]*\(root\):"


def efi_byte(machine: Machine, name: str) -> int:
    """The value of a one-byte EFI global variable (after its 4 attribute bytes)."""
    path = f"/sys/firmware/efi/efivars/{name}-{EFI_GLOBAL}"
    return int(machine.succeed(f"od -An -tu1 -j4 -N1 {path}").strip())


def assert_unlocked_by_the_tpm(machine: Machine) -> None:
    """This boot's root is the sealed LUKS2 volume, opened by its TPM2 token (no prompt).
    systemd-cryptsetup logs "Automatically discovered security TPM2 token unlocks volume"
    before it tries the token, so what tells is that it did not fall back to a passphrase."""
    assert machine.succeed("findmnt -no SOURCE /").strip() == "/dev/mapper/root"
    journal = machine.succeed("journalctl -b --no-pager -u systemd-cryptsetup@root.service")
    assert "TPM2 token unlocks volume" in journal, journal
    assert "falling back to traditional unlocking" not in journal, journal
    assert "Please enter passphrase" not in machine.console_text()


def keyslots(machine: Machine) -> list[str]:
    """The kinds of the root's keyslots (`systemd-cryptenroll` list: SLOT TYPE)."""
    listing = machine.succeed("systemd-cryptenroll /dev/gpt-auto-root-luks").splitlines()
    return sorted(line.split()[1] for line in listing[1:] if line.strip())


# ---- 1. a tampered enrolment file ------------------------------------------------------------


def flip_owner_guid_byte(auth: bytes) -> bytes:
    """`auth` (an EFI_VARIABLE_AUTHENTICATION_2 then an EFI_SIGNATURE_LIST) with the first byte
    of its first entry's owner GUID flipped: the list still parses and its certificate is
    intact, but the PKCS#7 signature over it no longer verifies."""
    (cert_length,) = struct.unpack_from("<I", auth, 16)  # after the 16-byte EFI_TIME
    payload = 16 + cert_length
    (header_size,) = struct.unpack_from("<I", auth, payload + 20)
    owner = payload + 28 + header_size
    tampered = bytearray(auth)
    tampered[owner] ^= 0x01
    return bytes(tampered)


def tamper_image(image: Path, original: bytes, tampered: bytes, target: Path) -> None:
    """A copy of `image` in `target` whose one copy of the file `original` (on the ESP, whose
    fresh FAT keeps a small file in consecutive clusters) reads `tampered`."""
    shutil.copyfile(image, target)
    with target.open("r+b") as f, mmap.mmap(f.fileno(), 0) as data:
        offset = data.find(original)
        assert offset >= 0, f"{image}: PK.auth's bytes not found"
        assert data.find(original, offset + 1) < 0, f"{image}: PK.auth's bytes found twice"
        data[offset:offset + len(tampered)] = tampered
        data.flush()


@pytest.fixture(scope="module")
def tampered(
    update_release: UpdateRelease, secure_boot_keys: secureboot.KeySet, driver: Driver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Machine:
    original = secure_boot_keys.auth("PK").read_bytes()
    image = tmp_path_factory.mktemp("tampered") / "image.raw"
    tamper_image(update_release("1").image, original, flip_owner_guid_byte(original), image)
    m = driver.machine("tampered-pk", image=image, disk_size=4 * GiB, memory_mib=1536,
                       secure_boot=True, tpm=True)
    m.start()
    return m


def test_a_tampered_pk_auth_is_refused_and_setup_mode_stays(
    tampered: Machine, secure_boot_keys: secureboot.KeySet
) -> None:
    tampered.wait_for_console_text(
        r"Enrolling secure boot keys from directory: \\loader\\keys\\auto", timeout=BOOT_TIMEOUT)
    tampered.wait_for_console_text(
        r"Failed to write PK secure boot variable: Security violation", timeout=BOOT_TIMEOUT)
    tampered.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    assert "successfully enrolled" not in tampered.console_text()
    assert efi_byte(tampered, "SetupMode") == 1
    assert efi_byte(tampered, "SecureBoot") == 0
    tampered.fail(f"test -e /sys/firmware/efi/efivars/PK-{EFI_GLOBAL}")
    # db and KEK, written before PK, are the owner's lists: in setup mode the firmware checks
    # only PK's signature. (efivarfs files cannot seek: cat, not tail alone.)
    for name, guid in (("db", EFI_IMAGE_SECURITY_DATABASE), ("KEK", EFI_GLOBAL)):
        stored = tampered.succeed(
            f"cat /sys/firmware/efi/efivars/{name}-{guid} | tail -c +5 | sha256sum").split()[0]
        assert stored == hashlib.sha256(secure_boot_keys.esl(name).read_bytes()).hexdigest(), name
    tampered.crash()  # done with it: the CPU is for the next machine


# ---- 2. the TPM cleared --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed(update_release: UpdateRelease, driver: Driver) -> Machine:
    m = driver.machine(
        "sealed", image=update_release("1").image, disk_size=4 * GiB, memory_mib=1536,
        secure_boot=True, tpm=True,
        credentials={"sonix.encryption.recovery-key": RECOVERY_KEY},
    )
    m.start()
    m.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    assert efi_byte(m, "SecureBoot") == 1
    assert keyslots(m) == ["password", "tpm2"]
    return m


def test_a_cleared_tpm_asks_for_the_recovery_key_on_the_console(
    sealed: Machine, secure_boot_keys: secureboot.KeySet
) -> None:
    sealed.shutdown()
    shutil.rmtree(sealed.tpm_state)  # the next start manufactures a new TPM
    sealed.start()
    sealed.wait_for_console_text(PROMPT, timeout=BOOT_TIMEOUT)
    sealed.send_console_text(RECOVERY_KEY + "\n")
    sealed.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    assert sealed.succeed("findmnt -no SOURCE /").strip() == "/dev/mapper/root"
    journal = sealed.succeed("journalctl -b --no-pager -u systemd-cryptsetup@root.service")
    assert "Failed to unseal secret using TPM2" in journal, journal
    assert "TPM2 operation failed, falling back to traditional unlocking" in journal, journal
    # The stub's copy of the UKI's .pcrpkey, kept from the initrd: the key to enrol with.
    assert sealed.succeed("cat /run/systemd/tpm2-pcr-public-key.pem") == (
        secure_boot_keys.pcr_public.read_text())


def test_the_new_tpm_is_enrolled_and_unlocks_the_root_again(sealed: Machine) -> None:
    # docs/secure-boot.md's two commands. One `--wipe-slot=tpm2` with the enrolment does not
    # do: systemd-cryptenroll 257 finds a token with the same public key and PCRs ("This PCR
    # set is already enrolled, executing no operation") before it wipes anything, and the
    # dead token stays. PASSWORD= answers the second command's question for the recovery key.
    sealed.succeed("systemd-cryptenroll --wipe-slot=tpm2 /dev/gpt-auto-root-luks")
    assert keyslots(sealed) == ["password"]
    sealed.succeed(
        f"PASSWORD='{RECOVERY_KEY}' systemd-cryptenroll --tpm2-device=auto "
        "--tpm2-public-key=/run/systemd/tpm2-pcr-public-key.pem --tpm2-public-key-pcrs=11 "
        "--tpm2-pcrs= /dev/gpt-auto-root-luks"
    )
    assert keyslots(sealed) == ["password", "tpm2"]
    sealed.reboot()
    sealed.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    assert_unlocked_by_the_tpm(sealed)
    assert keyslots(sealed) == ["password", "tpm2"]
