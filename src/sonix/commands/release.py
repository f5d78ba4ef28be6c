"""`sonix release CONFIG --channel DIR`: build CONFIG and publish it into a signed channel."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonix import build, ui
from sonix.release import channel, diff_releases, release_build, signing


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
        "signs it again without a release. Prints the channel directory. "
        "`sonix release diff CHANNEL FROM TO` prints what a machine on release FROM downloads "
        "to reach TO with delta updates (the agent's own planning), against the full download.",
    )
    parser.add_argument("config", type=Path, help="the configuration, e.g. examples/server.nix "
                        "(`diff`: see above; a configuration named so is ./diff)")
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)  # diff's arguments
    parser.add_argument("--channel", type=Path, metavar="DIR",
                        help="the channel directory (created if missing; required)")
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


def diff_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sonix release diff",
        description="What a machine on release FROM downloads to reach TO: the chunks its "
        "booted usr slot, verity data and UKI do not hold (planned by the agent's own code) "
        "and the chunk index, against the full download of the release's files.",
    )
    parser.add_argument("channel", type=Path, help="the channel directory")
    parser.add_argument("source", metavar="FROM", help="a version (or NAME_VERSION)")
    parser.add_argument("target", metavar="TO", help="a version (or NAME_VERSION)")
    return parser


def run_diff(argv: list[str]) -> int:
    args = diff_parser().parse_args(argv)
    result = diff_releases(args.channel, args.source, args.target)
    for note in result.notes:
        ui.info(f"note: {note}")
    print(f"chunks:  {result.chunk_bytes} bytes in {result.chunk_count} chunks "
          f"({result.seeded} bytes from the machine's own files)")
    print(f"delta:   {result.delta} bytes (chunks and the chunk index)")
    print(f"full:    {result.full} bytes (usr image, UKI, verity data)")
    print(f"ratio:   {100 * result.ratio:.2f} %")
    return 0


def run(args: argparse.Namespace) -> int:
    if str(args.config) == "diff":
        return run_diff(args.rest)
    if args.rest:
        raise ui.die(f"unexpected arguments: {' '.join(args.rest)}",
                     hint="sonix release CONFIG --channel DIR, or sonix release diff CHANNEL "
                     "FROM TO")
    if args.channel is None:
        raise ui.die("sonix release needs --channel DIR")
    with ui.step("Checking the signing key"):
        key = signing.ensure_key(args.key)
    result = build.build_system(args.config)
    release_build(result, args.channel, key, args.keep, args.valid_days)
    ui.info(f"machines check it with updates.trustedKeys = [ {key.trusted} ]")
    print(args.channel.absolute())
    return 0
