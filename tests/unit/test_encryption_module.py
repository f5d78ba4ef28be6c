"""boot.encryption (modules/system/encryption.nix) evaluated with the fake pkgs: the root that
systemd-repart creates on first boot is LUKS2 sealed to the UKI's signed PCR 11 policy, the
initrd has what opens it with no prompt, and the settings that cannot work are refused.
An image built with it is checked in tests/integration/test_secure_boot.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_core_modules import error_of, evaluate, initrd, text
from test_secure_boot_module import PUBLIC, enabled
from test_secure_boot_module import keys as keys  # the fixture

REPART = "lib/systemd/system/systemd-repart.service.d/overrides.conf"
SCRIPT = "lib/sonix/sonix-repart"
TOKEN = "/usr/lib/x86_64-linux-gnu/cryptsetup/libcryptsetup-token-systemd-tpm2.so"


def sealed(keys: Path, extra: str = "") -> str:
    return enabled(keys, f"boot.encryption.enable = true; {extra}")


def test_off_by_default(keys: Path) -> None:
    files = initrd(enabled(keys))
    assert "Encrypt" not in text(files, "lib/repart.d/50-root.conf")
    assert SCRIPT not in files
    assert TOKEN not in evaluate(enabled(keys), "boot.initrd.binaries")


def test_repart_creates_a_sealed_root(keys: Path) -> None:
    files = initrd(sealed(keys))
    assert text(files, "lib/repart.d/50-root.conf") == (
        "[Partition]\nEncrypt=tpm2\nFormat=ext4\nSizeMinBytes=256M\nType=root\n")
    # The same definitions with a recovery key, used when the credential is there.
    assert "Encrypt=key-file+tpm2\n" in text(files, "lib/sonix/repart-recovery.d/50-root.conf")
    assert (text(files, "lib/sonix/repart-recovery.d/10-usr-a.conf")
            == text(files, "lib/repart.d/10-usr-a.conf"))
    # Bound to the owner's PCR policy key, shipped in the initrd, PCR 11 only by default.
    assert text(files, "lib/systemd/tpm2-pcr-public-key.pem") == PUBLIC
    script = text(files, SCRIPT)
    assert files[SCRIPT]["mode"] == "0755"
    assert ("--tpm2-public-key=/usr/lib/systemd/tpm2-pcr-public-key.pem"
            " --tpm2-public-key-pcrs=11 --tpm2-pcrs=\n") in script
    assert "--key-file=" in script and "/dev/tpmrm0" in script
    dropin = text(files, REPART)
    assert "ExecStart=\nExecStart=/usr/lib/sonix/sonix-repart\n" in dropin
    assert "ImportCredential=sonix.encryption.recovery-key\n" in dropin
    assert "OnFailure=emergency.target\n" in dropin and "tpm2.target" not in dropin


def test_pcr7_can_be_added(keys: Path) -> None:
    script = text(initrd(sealed(keys, "boot.encryption.pcrs = [ 7 ];")), SCRIPT)
    assert "--tpm2-public-key-pcrs=11 --tpm2-pcrs=7\n" in script
    script = text(initrd(sealed(keys, "boot.encryption.pcrs = [ 0 7 ];")), SCRIPT)
    assert "--tpm2-pcrs=0+7\n" in script


def test_the_initrd_can_open_it(keys: Path) -> None:
    module = sealed(keys)
    binaries = evaluate(module, "boot.initrd.binaries")
    assert {"/usr/lib/systemd/systemd-cryptsetup", TOKEN,
            "/usr/lib/x86_64-linux-gnu/libtss2-esys.so.0"} <= set(binaries)
    assert "dm_crypt" in evaluate(module, "boot.initrd.availableKernelModules")
    # Not the TPM2 generator: it made repart wait 90 s for a TPM that the firmware claims.
    assert not any("tpm2-generator" in b for b in binaries)


@pytest.mark.parametrize(("extra", "words"), [
    ("boot.secureBoot.tpm = false;", "leave boot.secureBoot.tpm on"),
    ("systemd.repart.enable = false;", "leave systemd.repart.enable on"),
    ("boot.encryption.pcrs = [ 7 11 ];", "remove 11"),
    ("boot.encryption.pcrs = [ 7 7 ];", "lists a PCR twice"),
    ('systemd.repart.partitions."50-root".Encrypt = "key-file";', "do not set it"),
])
def test_settings_that_cannot_work_are_refused(keys: Path, extra: str, words: str) -> None:
    assert words in error_of(sealed(keys, extra))


def test_out_of_range_pcrs_are_refused(keys: Path) -> None:
    message = error_of(sealed(keys, "boot.encryption.pcrs = [ 24 ];"), "boot.encryption.pcrs")
    assert "boot.encryption.pcrs" in message and "between 0 and 23" in message


def test_without_secure_boot_the_message_says_what_to_do() -> None:
    message = error_of("{ ... }: { boot.encryption.enable = true; }")
    assert "boot.encryption.enable" in message and "sonix keygen --secure-boot" in message
    assert "boot.secureBoot.tpm" not in message  # one reason, not two
