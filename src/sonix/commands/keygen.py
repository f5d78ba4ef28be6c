"""`sonix keygen`: the channel signing key and the trusted.gpg that machines check with; with
--secure-boot, the owner's Secure Boot keys and PCR-policy key (docs/secure-boot.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonix import secureboot, ui
from sonix.release import signing


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "keygen",
        help="create the channel signing key (or the Secure Boot keys) if needed; print paths",
        description="Makes sure DIR (a GNUPGHOME, default .sonix/keys/channel) holds a "
        "signing key: a missing or empty directory gets a new ed25519 key without a "
        "passphrase. Prints the path of DIR/trusted.gpg, the public keyring to give "
        "configurations as updates.trustedKeys. `sonix release` does the same on first use. "
        "With --secure-boot, DIR (default .sonix/keys/secure-boot) gets the owner's Secure "
        "Boot keys (PK, KEK, db: key, certificate, .esl, .auth) and the PCR-policy key "
        "instead, once: an existing set is checked and kept. Prints DIR, the value for "
        "boot.secureBoot.keyDirectory.",
    )
    parser.add_argument("--key", type=Path, default=None, metavar="DIR",
                        help="the key directory (default .sonix/keys/channel, or "
                        ".sonix/keys/secure-boot with --secure-boot)")
    parser.add_argument("--secure-boot", action="store_true",
                        help="the Secure Boot (PK, KEK, db) and PCR-policy keys")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.secure_boot:
        return run_secure_boot(args.key)
    key = signing.ensure_key(args.key)
    for fingerprint in key.fingerprints:
        ui.info(f"signing key {fingerprint}")
    print(key.trusted)
    return 0


def run_secure_boot(directory: Path | None) -> int:
    keys, created = secureboot.ensure_keys(directory)
    if not created:
        ui.info(f"Keeping the existing Secure Boot keys in {keys.directory} (checked)")
    for name in secureboot.KEYS:
        ui.info(f"{name:4} {keys.key(name)} (private), {keys.certificate(name).name}, "
                f"{keys.esl(name).name}, {keys.auth(name).name} (signed by "
                f"{secureboot.SIGNER[name]})")
    ui.info(f"PCR  {keys.pcr_key} (private), {keys.pcr_public.name}")
    problems = secureboot.readable_by_builds(keys)
    if problems:
        ui.info("warning: image builds run as Nix's build users and read the private keys "
                "from here, but " + "; ".join(problems) + ". As root: "
                f"chgrp {secureboot.BUILD_GROUP} DIR DIR/*.key && chmod 0750 DIR && "
                "chmod 0640 DIR/*.key")
    else:
        ui.info(f"The private keys are readable by the group {secureboot.BUILD_GROUP} (0640): "
                "image builds sign with them; never copy them into an image or a channel.")
    if created:
        ui.info("Use them with boot.secureBoot = { enable = true; keyDirectory = "
                f"\"{keys.directory}\"; }}; a machine in setup mode enrols them on first boot "
                "(docs/secure-boot.md). Back up this directory: a machine enrolled with these "
                "keys boots only images signed by them.")
    print(keys.directory)
    return 0
