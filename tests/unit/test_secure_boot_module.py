"""boot.secureBoot (modules/system/secure-boot.nix) evaluated with the fake pkgs: what the image
step is given (host paths of the private keys, the public keys' contents, the enrolment files),
what measured boot adds to /usr and the initrd, and the errors for missing or bad settings.
The image step itself is checked with real keys in tests/integration/test_secure_boot.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_core_modules import error_of, evaluate, initrd, usr

from sonix.in_nix_build import image

GENERATOR = "lib/systemd/system-generators/systemd-tpm2-generator"
PCRPHASE = "lib/systemd/system/systemd-pcrphase-initrd.service"
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PUBLIC = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """A key directory as `sonix keygen --secure-boot` lays it out (contents are stand-ins:
    evaluation only reads the public files)."""
    for name in ("PK", "KEK", "db"):
        (tmp_path / f"{name}.key").write_text("private\n")
        (tmp_path / f"{name}.crt").write_text(CERT)
        (tmp_path / f"{name}.auth").write_bytes(b"\0auth " + name.encode())
    (tmp_path / "pcr-policy.key").write_text("private\n")
    (tmp_path / "pcr-policy.pub.pem").write_text(PUBLIC)
    return tmp_path


def enabled(keys: Path, extra: str = "") -> str:
    return (f'{{ ... }}: {{ boot.secureBoot = {{ enable = true; keyDirectory = "{keys}"; }};'
            f" {extra} }}")


def test_off_by_default_and_the_tpm2_generator_stays_masked() -> None:
    assert evaluate("{ }", "boot.secureBoot.signing") is None
    assert usr()[GENERATOR]["value"] == "/dev/null"
    assert "/usr/lib/systemd/systemd-pcrextend" not in evaluate("{ }", "boot.initrd.binaries")
    # Nor the unit that would run it: systemd-stub measures any UKI on a machine with a TPM,
    # so the unit's condition holds and, with no systemd-pcrextend, it would fail the boot.
    assert initrd()[PCRPHASE]["value"] == "/dev/null"
    assert PCRPHASE not in usr()  # not masked in the system: its units run with --graceful


def test_the_image_step_gets_host_paths_and_public_contents(keys: Path) -> None:
    signing: dict[str, Any] = evaluate(enabled(keys), "boot.secureBoot.signing")
    # The private keys stay where they are: strings, not store paths.
    assert signing["signingKey"] == f"{keys}/db.key"
    assert signing["pcrPrivateKey"] == f"{keys}/pcr-policy.key"
    # The public ones are in the derivation, so a new key rebuilds.
    assert signing["certificate"] == CERT
    assert signing["pcrPublicKey"] == PUBLIC
    assert signing["enrol"] == "if-safe"
    files = signing["enrolmentFiles"]
    assert sorted(files) == ["KEK", "PK", "db"]
    for name, path in files.items():
        assert path.startswith("/nix/store/") and path.endswith(f"-{name}.auth")
    # What image.py reads back.
    parsed = image.SecureBootConfig.parse(signing)
    assert parsed.signing_key == keys / "db.key" and parsed.enrol == "if-safe"


def test_measured_boot_ships_the_tpm_stack(keys: Path) -> None:
    module = enabled(keys)
    assert GENERATOR not in usr(module)
    assert GENERATOR not in initrd(module)
    binaries = evaluate(module, "boot.initrd.binaries")
    assert "/usr/lib/systemd/systemd-pcrextend" in binaries
    assert "/usr/lib/systemd/systemd-tpm2-setup" in binaries
    assert PCRPHASE not in initrd(module) or initrd(module)[PCRPHASE]["value"] != "/dev/null"
    assert "/usr/lib/x86_64-linux-gnu/libtss2-esys.so.0" in binaries
    packages = evaluate(module, "environment.packages")
    assert any("libtss2-tcti-device0t64" in p for p in packages)
    # tpm-udev (a dependency of tpm2-tss) gives /dev/tpm* to the `tss` account.
    assert evaluate(module, "users.users.tss.isSystemUser") is True
    # Without the TPM part: signed, but the generator masked and no tpm2-tss.
    module = enabled(keys, "boot.secureBoot.tpm = false;")
    assert usr(module)[GENERATOR]["value"] == "/dev/null"
    assert "/usr/lib/systemd/systemd-pcrextend" not in evaluate(module, "boot.initrd.binaries")


PCR15 = [f"lib/systemd/system/{unit}" for unit in (
    "systemd-pcrmachine.service", "systemd-pcrfs-root.service", "systemd-pcrfs@.service")]


def test_nothing_measures_into_pcr15_at_boot_unless_asked(keys: Path) -> None:
    for path in PCR15:
        assert usr(enabled(keys))[path]["value"] == "/dev/null", path
        assert path not in usr(enabled(keys, "boot.secureBoot.measurePcr15 = true;")), path
        assert path not in usr()  # without a TPM: untouched (their condition skips them)
        assert path not in usr(enabled(keys, "boot.secureBoot.tpm = false;")), path


def test_options_override_the_directory(keys: Path, tmp_path_factory: pytest.TempPathFactory
                                        ) -> None:
    other = tmp_path_factory.mktemp("other")
    (other / "signer.crt").write_text(CERT.replace("MIIB", "MIIC"))
    module = enabled(keys, f'boot.secureBoot.signingCertificate = "{other}/signer.crt"; '
                     'boot.secureBoot.enrolmentKeys = null; boot.secureBoot.enrol = "force";')
    signing = evaluate(module, "boot.secureBoot.signing")
    assert "MIIC" in signing["certificate"]
    assert signing["enrolmentFiles"] is None
    assert signing["enrol"] == "force"


def test_enabled_without_keys_names_keygen() -> None:
    message = error_of("{ ... }: { boot.secureBoot.enable = true; }")
    assert "boot.secureBoot.signingKey" in message
    assert "sonix keygen --secure-boot" in message


@pytest.mark.parametrize("missing", ["db.crt", "db.key", "pcr-policy.key", "pcr-policy.pub.pem",
                                     "PK.auth"])
def test_a_missing_key_file_names_keygen(keys: Path, missing: str) -> None:
    (keys / missing).unlink()
    message = error_of(enabled(keys), "boot.secureBoot.signing")
    assert f"{keys}/{missing}" in message
    assert "sonix keygen --secure-boot" in message


def test_bad_settings_are_refused(keys: Path) -> None:
    assert "boot.secureBoot.enrol" in error_of(enabled(keys, 'boot.secureBoot.enrol = "yes";'),
                                              "boot.secureBoot.signing")
    assert "boot.secureBoot.keyDirectory" in error_of(
        '{ ... }: { boot.secureBoot.keyDirectory = "relative/keys"; }',
        "boot.secureBoot.keyDirectory")
    message = error_of(enabled(keys, "boot.isContainer = true;"))
    assert "boot.isContainer" in message


def test_the_builder_refuses_a_config_without_keys() -> None:
    with pytest.raises(image.ConfigError, match=r"missing key .*'signingKey'"):
        image.SecureBootConfig.parse({"certificate": CERT})
    good = {"signingKey": "/k/db.key", "certificate": CERT, "pcrPrivateKey": "/k/p.key",
            "pcrPublicKey": PUBLIC, "enrol": "force", "enrolmentFiles": None}
    with pytest.raises(image.ConfigError, match=r"certificate"):
        image.SecureBootConfig.parse({**good, "certificate": "not a certificate"})
    with pytest.raises(image.ConfigError, match=r"signingKey"):
        image.SecureBootConfig.parse({**good, "signingKey": "db.key"})
