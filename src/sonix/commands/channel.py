"""`sonix channel renew --channel DIR`: sign a channel's index again with a new serial and
expiry, without a new release (docs/updates.md, "Freeze and replay")."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonix.commands.release import positive_days
from sonix.release import channel, renew_channel, signing


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "channel",
        help="maintain a published update channel (renew its signature)",
        description="Operations on a channel directory that `sonix release` wrote.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    renew = verbs.add_parser(
        "renew",
        help="sign the channel again with a new serial and expiry, releases unchanged",
        description="Machines refuse a channel whose signed index expired (a frozen "
        "channel: an attacker who keeps serving an old one). `sonix release` sets the expiry; "
        "run this more often than --valid-days when no release comes (e.g. daily from cron). "
        "Every file is hashed again before it is signed. Prints the channel directory.",
    )
    renew.add_argument("--channel", type=Path, required=True, metavar="DIR",
                       help="the channel directory")
    renew.add_argument("--key", type=Path, default=None, metavar="DIR",
                       help="GNUPGHOME with the signing key (default .sonix/keys/channel)")
    renew.add_argument(
        "--valid-days", type=positive_days, default=channel.DEFAULT_VALID_DAYS, metavar="N",
        help=f"machines trust the new index for N days (default {channel.DEFAULT_VALID_DAYS})",
    )
    renew.set_defaults(func=run_renew)


def run_renew(args: argparse.Namespace) -> int:
    key = signing.ensure_key(args.key)
    renew_channel(args.channel, key, args.valid_days)
    print(args.channel.absolute())
    return 0
