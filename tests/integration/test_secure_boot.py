"""Secure Boot on the build side (issue 15), with the real tools: `sonix keygen --secure-boot`
(openssl, efitools from the locked tools tree), a signed image built by Nix (sbsign through
ukify, systemd-measure), checked the way firmware and the TPM policy will see it, and the
errors for bad keys. Booting it under Secure Boot firmware is the VM tests' part.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonix import cli, process, secureboot, ui
from sonix.agents import uki
from sonix.build import BuildResult, build_system
from sonix.release.signing import tools_runner

ROOT = Path(__file__).resolve().parents[2]
KEYGEN = "sonix keygen --secure-boot"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or secureboot.build_group() is None,
    reason="keys for Nix builds need root (chgrp nixbld) and Nix's build users",
)


def new_key_dir() -> Path:
    """An empty directory beside, not inside, pytest's 0700 tree: Nix's build users must be
    able to reach the keys."""
    return Path(tempfile.mkdtemp(prefix="sonix-sb-test-", dir="/tmp"))


@pytest.fixture(scope="module")
def keys() -> Iterator[secureboot.KeySet]:
    directory = new_key_dir()
    keyset, created = secureboot.ensure_keys(directory)
    assert created
    yield keyset
    shutil.rmtree(directory)


@pytest.fixture
def copy(keys: secureboot.KeySet) -> Iterator[secureboot.KeySet]:
    """A copy of the key set to spoil (permissions kept)."""
    directory = Path(tempfile.mkdtemp(prefix="sonix-sb-copy-", dir="/tmp"))
    shutil.rmtree(directory)
    shutil.copytree(keys.directory, directory)
    copied = secureboot.KeySet(directory)
    secureboot.set_permissions(copied)  # copytree keeps modes, not the group
    yield copied
    shutil.rmtree(directory)


def tools(*argv: str | Path, rw: Path | None = None) -> str:
    binds = ["--rw", str(rw)] if rw else []
    result = process.run([tools_runner(), "--ro", "/tmp", *binds, "--", *map(str, argv)],
                         capture=True, check=False)
    return f"{result.returncode}\n{result.stdout}{result.stderr}"


# ---- sonix keygen --secure-boot ----------------------------------------------------------


def test_keygen_makes_every_file_once(keys: secureboot.KeySet) -> None:
    gid = secureboot.build_group()
    assert stat.S_IMODE(keys.directory.stat().st_mode) == 0o750
    assert keys.directory.stat().st_gid == gid
    for path in keys.files():
        mode = stat.S_IMODE(path.stat().st_mode)
        if path in keys.private_files():
            assert (mode, path.stat().st_gid) == (0o640, gid), path
        else:
            assert mode == 0o644, path
    assert secureboot.readable_by_builds(keys) == []
    for name in secureboot.KEYS:
        # The certificate parses, names its role, and is what its signature list carries.
        out = tools("openssl", "x509", "-noout", "-subject", "-in", keys.certificate(name))
        assert out.startswith("0\n") and f"sonix owner {name}" in out
        der = keys.directory / f".{name}.der"
        tools("openssl", "x509", "-outform", "DER", "-in", keys.certificate(name), "-out", der,
              rw=keys.directory)
        assert keys.esl(name).read_bytes().endswith(der.read_bytes())
        der.unlink()
        # The .auth writes that list, signed by PK (PK, KEK) or KEK (db).
        _, _, esl = secureboot.split_auth(keys.auth(name).read_bytes())
        assert esl == keys.esl(name).read_bytes()
        secureboot.check_auth(keys, name)
    out = tools("openssl", "pkey", "-pubin", "-noout", "-text", "-in", keys.pcr_public)
    assert out.startswith("0\n") and "Public-Key: (2048 bit)" in out


def test_db_auth_is_not_signed_by_pk(keys: secureboot.KeySet,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The check really checks the signer: db.auth against PK's certificate fails."""
    monkeypatch.setitem(secureboot.SIGNER, "db", "PK")
    with pytest.raises(ui.SonixError, match=r"is not signed by PK.crt"):
        secureboot.check_auth(keys, "db")


def test_keygen_again_keeps_the_keys(keys: secureboot.KeySet,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    before = {p: p.read_bytes() for p in keys.files()}
    assert cli.main(["keygen", "--secure-boot", "--key", str(keys.directory)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{keys.directory}\n"
    assert "Keeping the existing Secure Boot keys" in captured.err
    assert "readable by the group nixbld" in captured.err
    assert {p: p.read_bytes() for p in keys.files()} == before


def test_a_tampered_auth_file_is_refused(copy: secureboot.KeySet) -> None:
    auth = copy.auth("KEK")
    data = bytearray(auth.read_bytes())
    data[3] ^= 1  # the timestamp: part of what PK signed
    auth.write_bytes(bytes(data))
    with pytest.raises(ui.SonixError, match=r"KEK.auth is not signed by PK.crt") as error:
        secureboot.check_keys(copy)
    assert KEYGEN in str(error.value)
    data[-1] ^= 1  # now the certificate in the list differs from KEK.esl as well
    auth.write_bytes(bytes(data))
    with pytest.raises(ui.SonixError, match=r"does not carry KEK.esl"):
        secureboot.check_keys(copy)
    auth.write_bytes(bytes(data[:30]))
    with pytest.raises(ui.SonixError, match=r"not an authenticated EFI variable"):
        secureboot.check_keys(copy)


def test_a_key_of_the_wrong_type_is_refused(copy: secureboot.KeySet) -> None:
    copy.key("db").unlink()
    tools("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-out", copy.key("db"), rw=copy.directory)
    with pytest.raises(ui.SonixError, match=r"db.key is not an RSA private key") as error:
        cli_keygen(copy.directory)
    assert KEYGEN in str(error.value)


def test_a_key_of_another_pair_is_refused(copy: secureboot.KeySet) -> None:
    shutil.copyfile(copy.key("KEK"), copy.key("db"))
    with pytest.raises(ui.SonixError, match=r"db.key does not belong to .*db.crt"):
        cli_keygen(copy.directory)


def test_an_incomplete_set_is_refused_not_completed(copy: secureboot.KeySet) -> None:
    copy.pcr_key.unlink()
    with pytest.raises(ui.SonixError, match=r"pcr-policy.key missing") as error:
        cli_keygen(copy.directory)
    assert KEYGEN in str(error.value)
    assert not copy.pcr_key.exists()


def cli_keygen(directory: Path) -> None:
    """What `sonix keygen --secure-boot --key DIR` runs, with its error raised."""
    from sonix.commands import keygen

    keygen.run_secure_boot(directory)


# ---- a signed image ----------------------------------------------------------------------


def write_config(tmp: Path, keys: Path, extra: str = "") -> Path:
    config = tmp / "secure-boot.nix"
    config.write_text(
        f"{{ ... }}: {{\n  imports = [ {ROOT}/examples/minimal.nix ];\n"
        f'  boot.secureBoot = {{ enable = true; keyDirectory = "{keys}"; }};\n  {extra}\n}}\n'
    )
    return config


@pytest.fixture(scope="module")
def signed(keys: secureboot.KeySet, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    tmp = tmp_path_factory.mktemp("signed")
    return build_system(write_config(tmp, keys.directory), tmp / "out")


def esp_file(result: BuildResult, path: str, dest: Path) -> Path:
    esp = next(p for p in result.manifest["partitions"] if str(p["type"]).startswith("esp"))
    image = result.image.resolve()
    out = tools("mcopy", "-n", "-i", f"{image}@@{esp['offset']}", f"::/{path}", dest,
                rw=dest.parent)
    assert out.startswith("0\n"), out
    return dest


def test_the_uki_and_systemd_boot_are_signed_with_db(
        signed: BuildResult, keys: secureboot.KeySet, tmp_path: Path) -> None:
    boot = esp_file(signed, "EFI/BOOT/BOOTX64.EFI", tmp_path / "BOOTX64.EFI")
    sdboot = esp_file(signed, "EFI/systemd/systemd-bootx64.efi", tmp_path / "sd.efi")
    entry = esp_file(signed, signed.manifest["esp_entry"], tmp_path / "entry.efi")
    assert entry.read_bytes() == signed.uki.read_bytes()
    for binary in (signed.uki.resolve(), boot, sdboot):
        out = tools("sbverify", "--cert", keys.certificate("db"), binary)
        assert out.startswith("0\n") and "Signature verification OK" in out, out
        # ... and by nothing else: not by KEK, not by a certificate of another owner.
        assert not tools("sbverify", "--cert", keys.certificate("KEK"), binary).startswith("0\n")
    assert signed.manifest["secure_boot"] == "if-safe"


def test_the_uki_carries_a_signed_pcr11_policy(signed: BuildResult,
                                               keys: secureboot.KeySet) -> None:
    path = signed.uki.resolve()
    with path.open("rb") as f:
        sections = uki.sections(f)
    assert {".pcrsig", ".pcrpkey", ".linux", ".initrd", ".cmdline"} <= sections.keys()
    assert uki.section_bytes(path, ".pcrpkey").rstrip(b"\0") == keys.pcr_public.read_bytes()
    policy = json.loads(uki.section_bytes(path, ".pcrsig").rstrip(b"\0"))
    # One signature per boot phase of ukify's defaults (enter-initrd … ready), all on PCR 11.
    assert len(policy["sha256"]) == 4
    assert all(entry["pcrs"] == [11] for entry in policy["sha256"])


def test_the_manifest_predicts_pcr11(signed: BuildResult, tmp_path: Path) -> None:
    """The build's prediction equals systemd-measure's on the sections as the host's UKI
    reader (agents/uki.py) extracts them: the figure the VM tests will compare with the TPM."""
    path = signed.uki.resolve()
    args = []
    for name in (".linux", ".osrel", ".cmdline", ".initrd", ".uname", ".sbat", ".pcrpkey"):
        (tmp_path / name[1:]).write_bytes(uki.section_bytes(path, name))
        args.append(f"--{name[1:]}={tmp_path / name[1:]}")
    phases = list(signed.manifest["pcr11"])
    out = tools("/usr/lib/systemd/systemd-measure", "calculate", *args, "--bank=sha256",
                *(f"--phase={p}" for p in phases), "--json=short", rw=tmp_path)
    status, _, text = out.partition("\n")
    assert status == "0", out
    expected = {e["phase"]: e["hash"] for e in json.loads(text)["sha256"]}
    assert signed.manifest["pcr11"] == expected
    assert phases == ["enter-initrd", "enter-initrd:leave-initrd",
                      "enter-initrd:leave-initrd:sysinit",
                      "enter-initrd:leave-initrd:sysinit:ready"]


def test_the_esp_ships_the_enrolment_files(signed: BuildResult, keys: secureboot.KeySet,
                                           tmp_path: Path) -> None:
    loader = esp_file(signed, "loader/loader.conf", tmp_path / "loader.conf").read_text()
    assert "secure-boot-enroll if-safe" in loader.splitlines()
    for name in secureboot.KEYS:
        shipped = esp_file(signed, f"loader/keys/auto/{name}.auth", tmp_path / f"{name}.auth")
        assert shipped.read_bytes() == keys.auth(name).read_bytes()
    # Nothing private is in the store: the image derivation names the keys by host path and
    # carries the public ones only.
    image_dir = signed.image.resolve().parent
    deriver = process.run(["nix-store", "--query", "--deriver", image_dir], capture=True)
    drv = Path(deriver.stdout.strip()).read_text()
    assert str(keys.key("db")) in drv and str(keys.pcr_key) in drv
    assert "PRIVATE KEY" not in drv and "BEGIN CERTIFICATE" in drv


def build_error(tmp: Path, keys: Path, extra: str = "") -> str:
    with pytest.raises(ui.SonixError) as error:
        build_system(write_config(tmp, keys, extra), tmp / "out")
    return str(error.value)


def test_an_unreadable_private_key_names_keygen(copy: secureboot.KeySet, tmp_path: Path
                                                ) -> None:
    os.chown(copy.key("db"), 0, 0)
    copy.key("db").chmod(0o600)
    message = build_error(tmp_path, copy.directory)
    assert "cannot read" in message and str(copy.key("db")) in message
    assert KEYGEN in message


def test_a_signing_key_of_the_wrong_type_fails_the_build(copy: secureboot.KeySet,
                                                         tmp_path: Path) -> None:
    ec = copy.directory / "ec.key"
    tools("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-out", ec, rw=copy.directory)
    os.chown(ec, 0, secureboot.build_group() or 0)
    ec.chmod(0o640)
    message = build_error(tmp_path, copy.directory,
                          f'boot.secureBoot.signingKey = "{ec}";')
    assert "is not an RSA private key" in message and KEYGEN in message


def test_a_signing_key_of_another_pair_fails_the_build(copy: secureboot.KeySet,
                                                       tmp_path: Path) -> None:
    message = build_error(tmp_path, copy.directory,
                          f'boot.secureBoot.signingKey = "{copy.key("KEK")}";')
    assert "does not belong to the configured public key" in message and KEYGEN in message


def test_secure_boot_without_keys_names_keygen(tmp_path: Path) -> None:
    config = tmp_path / "no-keys.nix"
    config.write_text(f"{{ ... }}: {{ imports = [ {ROOT}/examples/minimal.nix ];"
                      " boot.secureBoot.enable = true; }\n")
    with pytest.raises(ui.SonixError) as error:
        build_system(config, tmp_path / "out")
    assert KEYGEN in str(error.value)



# ---- sealed state (boot.encryption) ------------------------------------------------------


def initrd_files(archive: Path) -> dict[str, bytes]:
    """Path → content of the initrd's newc cpio (xz, boot.initrd.compressor's default)."""
    data = lzma.decompress(archive.read_bytes())
    files: dict[str, bytes] = {}
    offset = 0
    while data[offset:offset + 6] == b"070701":
        size = int(data[offset + 54:offset + 62], 16)
        name_size = int(data[offset + 94:offset + 102], 16)
        name = data[offset + 110:offset + 110 + name_size - 1].decode()
        start = (offset + 110 + name_size + 3) & ~3
        if name == "TRAILER!!!":
            break
        files[name] = data[start:start + size]
        offset = (start + size + 3) & ~3
    return files


@pytest.fixture(scope="module")
def sealed(keys: secureboot.KeySet, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    tmp = tmp_path_factory.mktemp("sealed")
    return build_system(write_config(tmp, keys.directory, "boot.encryption.enable = true;"),
                        tmp / "out")


def test_the_sealed_image_creates_and_opens_a_luks_root(sealed: BuildResult,
                                                        keys: secureboot.KeySet) -> None:
    files = initrd_files(sealed.initrd)
    assert b"Encrypt=tpm2\n" in files["usr/lib/repart.d/50-root.conf"]
    assert b"Encrypt=key-file+tpm2\n" in files["usr/lib/sonix/repart-recovery.d/50-root.conf"]
    # repart binds the key to the same public key as the UKI's .pcrpkey.
    assert files["usr/lib/systemd/tpm2-pcr-public-key.pem"] == keys.pcr_public.read_bytes()
    assert uki.section_bytes(sealed.uki.resolve(), ".pcrpkey").rstrip(b"\0") == \
        keys.pcr_public.read_bytes()
    assert b"--tpm2-public-key-pcrs=11" in files["usr/lib/sonix/sonix-repart"]
    # What opens it on later boots: gpt-auto-generator's systemd-cryptsetup@root with
    # tpm2-device=auto, libcryptsetup's TPM2 token plugin, tpm2-tss, dm-crypt.
    for path in ("usr/lib/systemd/systemd-cryptsetup",
                 "usr/lib/systemd/system-generators/systemd-gpt-auto-generator",
                 "usr/lib/x86_64-linux-gnu/cryptsetup/libcryptsetup-token-systemd-tpm2.so",
                 "usr/lib/x86_64-linux-gnu/libcryptsetup.so.12",
                 "usr/lib/x86_64-linux-gnu/libtss2-esys.so.0"):
        assert path in files, path
    assert any(p.endswith("/dm-crypt.ko.xz") or p.endswith("/dm-crypt.ko") for p in files)
    generator = files["usr/lib/systemd/system-generators/systemd-gpt-auto-generator"]
    assert b"tpm2-device=auto" in generator and b"/dev/gpt-auto-root-luks" in generator
