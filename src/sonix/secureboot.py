"""The owner's Secure Boot keys and PCR-policy key (`sonix keygen --secure-boot`).

One key directory (default .sonix/keys/secure-boot) holds, made once with the locked tools'
openssl and efitools (never the host's):

- `PK`, `KEK`, `db`: `.key` (RSA 2048 private key, PEM), `.crt` (self-signed X.509, PEM),
  `.esl` (an EFI signature list with that certificate, owner GUID in `owner.guid`) and `.auth`
  (the list as a time-based authenticated variable: PK.auth and KEK.auth signed by PK, db.auth
  by KEK), which is what firmware in setup mode, systemd-boot's `secure-boot-enroll` and
  `efi-updatevar` take;
- `pcr-policy.key` / `pcr-policy.pub.pem`: the RSA key that signs each UKI's PCR 11 policy
  (ukify's `--pcr-private-key`, `systemd-measure sign`).

Images are signed inside the Nix build that makes the UKI and the ESP (a nixbld user), which
reads the private keys from this directory, so the directory and the `.key` files belong to
the group `nixbld` (0750, 0640). Nothing private is ever copied into the Nix store; the
certificates and the public PCR key are (docs/secure-boot.md).
"""

from __future__ import annotations

import grp
import os
import shutil
import struct
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from sonix import paths, process, ui

KEYS = ("PK", "KEK", "db")
SIGNER = {"PK": "PK", "KEK": "PK", "db": "KEK"}  # who signs each .auth
PCR_KEY = "pcr-policy.key"
PCR_PUBLIC = "pcr-policy.pub.pem"
OWNER = "owner.guid"
BUILD_GROUP = "nixbld"
COMMAND = "sonix keygen --secure-boot"

# UEFI 2.10 §8.2: the vendor GUIDs of the variables and the attributes of an authenticated write
# (NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS | TIME_BASED_AUTHENTICATED_WRITE_ACCESS).
GLOBAL_VARIABLE = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
IMAGE_SECURITY_DATABASE = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
VENDOR = {"PK": GLOBAL_VARIABLE, "KEK": GLOBAL_VARIABLE, "db": IMAGE_SECURITY_DATABASE}
AUTH_ATTRIBUTES = 0x27
CERT_TYPE_PKCS7 = uuid.UUID("4aafd29d-68df-49ee-8aa9-347d375665a7")  # EFI_CERT_TYPE_PKCS7_GUID


def default_key_dir() -> Path:
    return paths.state_dir() / "keys" / "secure-boot"


@dataclass(frozen=True)
class KeySet:
    """A complete key directory, as `sonix keygen --secure-boot` leaves it."""

    directory: Path

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def certificate(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def esl(self, name: str) -> Path:
        return self.directory / f"{name}.esl"

    def auth(self, name: str) -> Path:
        return self.directory / f"{name}.auth"

    @property
    def pcr_key(self) -> Path:
        return self.directory / PCR_KEY

    @property
    def pcr_public(self) -> Path:
        return self.directory / PCR_PUBLIC

    @property
    def owner(self) -> Path:
        return self.directory / OWNER

    def files(self) -> list[Path]:
        per_key = [f(n) for n in KEYS for f in (self.key, self.certificate, self.esl, self.auth)]
        return [*per_key, self.pcr_key, self.pcr_public, self.owner]

    def private_files(self) -> list[Path]:
        return [*(self.key(n) for n in KEYS), self.pcr_key]


def _tools(*argv: str | os.PathLike[str], directory: Path, writable: bool = False,
           check: bool = True) -> tuple[int, str]:
    """One command in the locked tools tree with `directory` visible; (status, output)."""
    from sonix.release.signing import tools_runner  # builds the runner: keep --help fast

    bind = "--rw" if writable else "--ro"
    result = process.run([tools_runner(), bind, str(directory), "--", *map(str, argv)],
                         capture=True, check=check)
    return result.returncode, (result.stdout or "") + (result.stderr or "")


def ensure_keys(directory: Path | None = None) -> tuple[KeySet, bool]:
    """The key set in `directory`, created when the directory is missing or empty; checked
    either way (`check_keys`). Returns it and whether it is new."""
    directory = (directory or default_key_dir()).absolute()
    created = False
    if not directory.exists() or not any(directory.iterdir()):
        with ui.step(f"Creating the Secure Boot and PCR-policy keys in {directory}"):
            create_keys(directory)
        created = True
    keys = KeySet(directory)
    check_keys(keys)
    return keys, created


def create_keys(directory: Path) -> None:
    """All files in a temporary sibling directory, moved into place at the end: an interrupted
    run leaves no half key set behind."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        owner = str(uuid.uuid4())
        (work / OWNER).write_text(owner + "\n")
        for name in KEYS:
            _tools("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes",
                   "-sha256", "-days", "7300", "-subj", f"/CN=sonix owner {name}/",
                   "-keyout", work / f"{name}.key", "-out", work / f"{name}.crt",
                   directory=work, writable=True)
            _tools("cert-to-efi-sig-list", "-g", owner, work / f"{name}.crt",
                   work / f"{name}.esl", directory=work, writable=True)
        for name in KEYS:
            signer = SIGNER[name]
            _tools("sign-efi-sig-list", "-g", owner, "-k", work / f"{signer}.key",
                   "-c", work / f"{signer}.crt", name, work / f"{name}.esl",
                   work / f"{name}.auth", directory=work, writable=True)
        _tools("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
               "-out", work / PCR_KEY, directory=work, writable=True)
        _tools("openssl", "pkey", "-in", work / PCR_KEY, "-pubout", "-out", work / PCR_PUBLIC,
               directory=work, writable=True)
        set_permissions(KeySet(work))
        if directory.exists():
            directory.rmdir()  # empty (checked by the caller)
        os.rename(work, directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_group() -> int | None:
    try:
        return grp.getgrnam(BUILD_GROUP).gr_gid
    except KeyError:
        return None


def set_permissions(keys: KeySet) -> None:
    """The directory 0750 and the private keys 0640, group nixbld (the image build reads them);
    the public files 0644. Only root can give files to the group; others get a warning."""
    gid = build_group()
    if os.geteuid() == 0 and gid is not None:
        for path in [keys.directory, *keys.private_files()]:
            os.chown(path, 0, gid)
    keys.directory.chmod(0o750)
    for path in keys.files():
        path.chmod(0o640 if path in keys.private_files() else 0o644)


def check_keys(keys: KeySet) -> None:
    """Every file is there; each private key is RSA and belongs to its certificate (or public
    key); each .auth carries its .esl and is signed by the right key. Errors name the file and
    the command that makes a good set."""
    directory = keys.directory
    if missing := [p.name for p in keys.files() if not p.exists()]:
        raise ui.die(
            f"{directory} is not a complete Secure Boot key set: {', '.join(missing)} missing",
            hint=f"run `{COMMAND} --key NEW_DIR` for a new set (an existing set is never "
            "overwritten), or restore the files",
        )
    for name in KEYS:
        check_rsa_key(keys.key(name), keys.certificate(name), directory)
    check_rsa_key(keys.pcr_key, keys.pcr_public, directory)
    for name in KEYS:
        check_auth(keys, name)


def _public_of(path: Path, directory: Path, certificate: bool) -> str:
    argv: list[str | os.PathLike[str]]
    if certificate:
        argv = ["openssl", "x509", "-noout", "-pubkey", "-in", path]
    elif path.suffix == ".key":
        argv = ["openssl", "pkey", "-pubout", "-in", path]
    else:
        argv = ["openssl", "pkey", "-pubin", "-pubout", "-in", path]
    status, output = _tools(*argv, directory=directory, check=False)
    if status != 0:
        raise ui.die(f"{path} is not a readable PEM {'certificate' if certificate else 'key'}",
                     hint=f"`{COMMAND}` makes a good set; openssl said: {output.strip()}")
    return output


def check_rsa_key(key: Path, public: Path, directory: Path) -> None:
    """key is an RSA private key (what UEFI firmware and `systemd-measure` take) and public
    (a certificate or a PEM public key) is its public half."""
    status, output = _tools("openssl", "rsa", "-noout", "-check", "-in", key,
                            directory=directory, check=False)
    if status != 0:
        raise ui.die(f"{key} is not an RSA private key (UEFI Secure Boot and the PCR policy "
                     "want RSA 2048)",
                     hint=f"`{COMMAND}` makes one; openssl said: {output.strip()[:300]}")
    if _public_of(key, directory, False) != _public_of(public, directory,
                                                       public.suffix == ".crt"):
        raise ui.die(f"{key} does not belong to {public}",
                     hint=f"restore the matching pair, or make a new set with `{COMMAND}`")


def split_auth(data: bytes) -> tuple[bytes, bytes, bytes]:
    """An authenticated variable (EFI_VARIABLE_AUTHENTICATION_2, UEFI 2.10 §8.2.2): its
    timestamp, its PKCS#7 SignedData and the signature list it writes."""
    if len(data) < 40:
        raise ValueError("too short for EFI_VARIABLE_AUTHENTICATION_2")
    length, revision, cert_type = struct.unpack_from("<IHH", data, 16)
    if revision != 0x0200 or cert_type != 0x0EF1 or uuid.UUID(bytes_le=data[24:40]) != \
            CERT_TYPE_PKCS7 or not 24 <= length <= len(data) - 16:
        raise ValueError("no WIN_CERTIFICATE_UEFI_GUID with a PKCS#7 signature")
    return data[:16], data[40:16 + length], data[16 + length:]


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def content_info(signed_data: bytes) -> bytes:
    """UEFI carries a bare SignedData; openssl cms wants it inside a ContentInfo (RFC 5652
    §3: SEQUENCE { id-signedData, [0] EXPLICIT SignedData })."""
    body = (bytes.fromhex("06092a864886f70d010702") + b"\xa0"
            + _der_length(len(signed_data)) + signed_data)
    return b"\x30" + _der_length(len(body)) + body


def check_auth(keys: KeySet, name: str) -> None:
    """name.auth writes name.esl and its signature over (variable name, vendor GUID,
    attributes, timestamp, list) verifies with the signer's certificate."""
    path = keys.auth(name)
    hint = (f"the file was changed or belongs to other keys: `{COMMAND} --key NEW_DIR` "
            "makes a new set (re-sign with efitools' sign-efi-sig-list to keep these keys)")
    try:
        timestamp, signature, esl = split_auth(path.read_bytes())
    except ValueError as e:
        raise ui.die(f"{path} is not an authenticated EFI variable: {e}", hint=hint) from None
    if esl != keys.esl(name).read_bytes():
        raise ui.die(f"{path} does not carry {keys.esl(name).name}", hint=hint)
    payload = (name.encode("utf-16-le") + VENDOR[name].bytes_le
               + struct.pack("<I", AUTH_ATTRIBUTES) + timestamp + esl)
    with tempfile.TemporaryDirectory(prefix="sonix-auth-") as temp:
        work = Path(temp)
        (work / "signature.der").write_bytes(content_info(signature))
        (work / "payload").write_bytes(payload)
        shutil.copyfile(keys.certificate(SIGNER[name]), work / "signer.crt")
        status, output = _tools(
            "openssl", "cms", "-verify", "-inform", "DER", "-in", work / "signature.der",
            "-content", work / "payload", "-binary", "-CAfile", work / "signer.crt",
            "-purpose", "any", "-out", "/dev/null", directory=work, check=False,
        )
    if status != 0:
        raise ui.die(f"{path} is not signed by {SIGNER[name]}.crt: {output.strip()[:200]}",
                     hint=hint)


def readable_by_builds(keys: KeySet) -> list[str]:
    """Why a nixbld user could not read the private keys (empty when it can): the group and
    modes that set_permissions gives, and every parent directory searchable."""
    problems: list[str] = []
    gid = build_group()
    if gid is None:
        return [f"there is no group {BUILD_GROUP} (Nix's build users)"]
    for path in [keys.directory, *keys.private_files()]:
        st = path.stat()
        want = 0o050 if path == keys.directory else 0o040
        if st.st_gid != gid or st.st_mode & want != want:
            problems.append(f"{path} is not {'searchable' if want == 0o050 else 'readable'} "
                            f"by the group {BUILD_GROUP}")
    for parent in keys.directory.parents:
        if parent.stat().st_mode & 0o001 == 0:
            problems.append(f"{parent} is not searchable by others (o+x)")
    return problems
