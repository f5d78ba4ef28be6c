"""`sonix release CONFIG --channel DIR`: build CONFIG and publish it into a signed channel."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonix import build, ui
from sonix.release import channel, release_build, signing


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "release",
        help="build a configuration and publish it into an update channel",
        description="Builds CONFIG and adds the release to the channel directory as "
        "docs/updates.md describes it (<name>_<version>.efi, .usr, .verity, .json), then "
        "rewrites SHA256SUMS over every kept release, with a new serial and an expiry, and "
        "signs it (SHA256SUMS.signed, clearsigned, is what machines read; SHA256SUMS.gpg). A "
        "published version never changes: releasing different content under the same "
        "image.version fails. Machines refuse an expired channel: `sonix channel renew` "
        "signs it again without a release. Prints the channel directory.",
    )
    parser.add_argument("config", type=Path, help="the configuration, e.g. examples/server.nix")
    parser.add_argument("--channel", type=Path, required=True, metavar="DIR",
                        help="the channel directory (created if missing)")
    parser.add_argument(
        "--key", type=Path, default=None, metavar="DIR",
        help="GNUPGHOME with the signing key (default .sonix/keys/channel; created with a new "
        "key on first use, see `sonix keygen`)",
    )
    parser.add_argument(
        "--keep", type=positive, default=channel.DEFAULT_KEEP, metavar="N",
        help=f"keep the newest N releases of the image (default {channel.DEFAULT_KEEP})",
    )
    parser.add_argument(
        "--valid-days", type=positive_days, default=channel.DEFAULT_VALID_DAYS, metavar="N",
        help="machines trust the signed index for N days (default "
        f"{channel.DEFAULT_VALID_DAYS}); renew it before with `sonix channel renew`",
    )
    parser.set_defaults(func=run)


def positive_days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 0 < value <= 3650:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3650, not {text}")
    return value


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    with ui.step("Checking the signing key"):
        key = signing.ensure_key(args.key)
    result = build.build_system(args.config)
    release_build(result, args.channel, key, args.keep, args.valid_days)
    ui.info(f"machines check it with updates.trustedKeys = [ {key.trusted} ]")
    print(args.channel.absolute())
    return 0
