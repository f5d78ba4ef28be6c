"""The channel signing key: gpg and gpgv from the locked tools, never the host's.

A key directory is a GNUPGHOME. On first use it gets a new ed25519 signing key without a
passphrase (a release must sign unattended) and `trusted.gpg`: the binary export of the public
keys of its secret keys, the keyring a configuration names in `updates.trustedKeys` and the
machines check with `gpgv --keyring`. Every signature is checked with exactly that gpgv call
before the channel is published.

gpg runs inside `pkgs.runInTools` (bubblewrap): each call is one session that starts the
agent with its sockets in the sandbox's private /run (`gpgconf --create-socketdir`, so a long
key directory path does not exceed the socket name limit) and stops it when the call ends
(`gpgconf --kill all`), so no agent outlives a command.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sonix import nix, paths, process, ui
from sonix.release.channel import Signer

TRUSTED = "trusted.gpg"
USER_ID = "sonix channel signing key"

# One gpg session in the sandbox: $1 is the GNUPGHOME, the rest the command.
SESSION = r"""
home=$1; shift
mkdir -p -m 0700 /run/user/0 && gpgconf --homedir "$home" --create-socketdir || exit 1
trap 'gpgconf --homedir "$home" --kill all' EXIT
"$@"
"""


def default_key_dir() -> Path:
    return paths.state_dir() / "keys" / "channel"


@dataclass(frozen=True)
class Key:
    """A key directory with at least one secret key and its trusted.gpg."""

    home: Path
    fingerprints: tuple[str, ...]

    @property
    def trusted(self) -> Path:
        """The public keyring for `updates.trustedKeys` (gpgv --keyring)."""
        return self.home / TRUSTED


@functools.cache
def tools_runner() -> Path:
    """pkgs.runInTools: runs a command with the locked trixie tools tree as /."""
    from sonix.debian import fetch  # the package set; imported here to keep --help fast

    fetch.fetch_sets(["tools"])
    (runner,) = nix.build(paths.source_root() / "pkgs", "runInTools",
                          what="building the tools runner")
    return runner


def _in_tools(argv: Sequence[str | os.PathLike[str]], rw: Sequence[Path] = (),
              ro: Sequence[Path] = (), check: bool = True, hint: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    binds: list[str] = []
    seen: set[Path] = set()
    for flag, dirs in (("--rw", rw), ("--ro", ro)):
        for directory in dirs:
            if directory not in seen:
                seen.add(directory)
                binds += [flag, str(directory)]
    return process.run([tools_runner(), *binds, "--", *argv], capture=True, check=check,
                       hint=hint)


def gpg(home: Path, *args: str | os.PathLike[str], rw: Sequence[Path] = (),
        hint: str | None = None) -> str:
    """Run gpg on the key directory `home` (batch mode, one agent session); its stdout."""
    argv = ["sh", "-c", SESSION, "sh", str(home),
            "gpg", "--homedir", str(home), "--batch", "--no-tty", "--pinentry-mode", "loopback",
            *map(str, args)]
    return _in_tools(argv, rw=[home, *rw], hint=hint).stdout


def secret_fingerprints(home: Path) -> tuple[str, ...]:
    """Fingerprints of the primary keys with a secret part in `home`."""
    listing = gpg(home, "--with-colons", "--list-secret-keys")
    found: list[str] = []
    after_sec = False
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] == "sec":
            after_sec = True
        elif fields[0] == "fpr" and after_sec and len(fields) > 9:
            found.append(fields[9])
            after_sec = False
    return tuple(found)


def ensure_key(home: Path | None = None) -> Key:
    """The signing key in `home` (default .sonix/keys/channel), created on first use: a new
    ed25519 key without a passphrase when the directory is missing or empty, and trusted.gpg
    when it is missing."""
    home = (home or default_key_dir()).absolute()
    created = False
    if not home.exists() or not any(home.iterdir()):
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        home.chmod(0o700)  # gpg warns about a home directory others can read
        with ui.step(f"Creating a signing key in {home}"):
            gpg(home, "--passphrase", "", "--quick-generate-key", USER_ID, "ed25519", "sign",
                "never")
        created = True
    fingerprints = secret_fingerprints(home)
    if not fingerprints:
        raise ui.die(
            f"{home} holds no secret key to sign with",
            hint="give --key a GNUPGHOME with your signing key, or an empty or new directory "
            "for a new key",
        )
    key = Key(home, fingerprints)
    if not key.trusted.exists():
        temp = home / f".{TRUSTED}.tmp"
        gpg(home, "--yes", "--output", temp, "--export", *fingerprints)
        os.replace(temp, key.trusted)
    if created:
        ui.info(
            f"New channel signing key {fingerprints[0]}, without a passphrase: whoever can "
            f"read {home} can sign releases. Machines trust it through "
            f"updates.trustedKeys = [ {key.trusted} ]. To sign with a real key instead, pass "
            "--key DIR with a GNUPGHOME that holds it (docs/updates.md)."
        )
    return key


def sign(key: Key, data: Path, signature: Path) -> None:
    """A detached binary signature of data, checked with gpgv against trusted.gpg."""
    data, signature = data.resolve(), signature.resolve()  # the sandbox sees no link targets
    gpg(key.home, "--yes", "--detach-sign", "--output", signature, data,
        rw=[signature.parent], hint="the key must sign without a passphrase prompt "
        "(sonix release runs gpg in batch mode)")
    if not verify(key.trusted, data, signature):
        raise ui.die(
            f"gpgv does not accept the new signature with {key.trusted}",
            hint=f"{key.trusted} lacks the signing key: delete it and run again to export it "
            "(and give machines the new file)",
        )


def clearsign(key: Key, data: Path, signed: Path) -> None:
    """data clearsigned (text and signature in one file), checked as machines check it: the
    text gpgv gives back must be data."""
    data, signed = data.resolve(), signed.resolve()
    gpg(key.home, "--yes", "--clearsign", "--output", signed, data,
        rw=[signed.parent], hint="the key must sign without a passphrase prompt "
        "(sonix release runs gpg in batch mode)")
    if verify_signed(key.trusted, signed) != data.read_bytes():
        raise ui.die(
            f"gpgv does not accept the new clearsigned {signed.name} with {key.trusted}",
            hint=f"{key.trusted} lacks the signing key: delete it and run again to export it "
            "(and give machines the new file)",
        )


@dataclass(frozen=True)
class KeySigner:
    """`sign` and `clearsign` with one key, in the shape `channel.publish` takes."""

    key: Key

    def detached(self, data: Path, signature: Path) -> None:
        sign(self.key, data, signature)

    def clear(self, data: Path, signed: Path) -> None:
        clearsign(self.key, data, signed)


def signer(key: Key) -> Signer:
    return KeySigner(key)


def verify_signed(keyring: Path, signed: Path) -> bytes | None:
    """What a machine does first (docs/updates.md): `gpgv --keyring KEYRING --output - FILE`;
    the signed text (only what the signature covers), or None when gpgv refuses it."""
    keyring, signed = keyring.resolve(), signed.resolve()
    result = _in_tools(["gpgv", "--keyring", keyring, "--output", "-", signed],
                       ro=[keyring.parent, signed.parent], check=False)
    if result.returncode != 0:
        ui.debug(result.stderr.strip())
        return None
    return result.stdout.encode()


def verify(keyring: Path, data: Path, signature: Path) -> bool:
    """What a machine does first (docs/updates.md): `gpgv --keyring KEYRING SIG DATA`."""
    # Resolved: the sandbox sees only the directories bound into it, not symlink targets.
    keyring, data, signature = keyring.resolve(), data.resolve(), signature.resolve()
    result = _in_tools(["gpgv", "--keyring", keyring, signature, data],
                       ro=[keyring.parent, data.parent, signature.parent], check=False)
    if result.returncode != 0:
        ui.debug(result.stderr.strip())
    return result.returncode == 0
