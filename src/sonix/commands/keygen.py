"""`sonix keygen`: the channel signing key, and the trusted.gpg that machines check with."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonix import ui
from sonix.release import signing


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "keygen",
        help="create the channel signing key if needed; print the path of trusted.gpg",
        description="Makes sure DIR (a GNUPGHOME, default .sonix/keys/channel) holds a "
        "signing key: a missing or empty directory gets a new ed25519 key without a "
        "passphrase. Prints the path of DIR/trusted.gpg, the public keyring to give "
        "configurations as updates.trustedKeys. `sonix release` does the same on first use.",
    )
    parser.add_argument("--key", type=Path, default=None, metavar="DIR",
                        help="the key directory (default .sonix/keys/channel)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    key = signing.ensure_key(args.key)
    for fingerprint in key.fingerprints:
        ui.info(f"signing key {fingerprint}")
    print(key.trusted)
    return 0
