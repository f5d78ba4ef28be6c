"""`sonix fetch`: the locked .debs into the Nix store (only what is missing, in one apt run)."""

from __future__ import annotations

import argparse

from sonix.debian import fetch


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "fetch",
        help="download the locked .debs that the Nix store does not have yet",
        description="Adds the .debs of pkgs/lock.json to the Nix store as fixed-output paths "
        "(what pkgs/default.nix refers to). Only missing ones are downloaded, all in one apt "
        "run, and each is checked against its locked sha256 before anything is added. "
        "Prints the store paths it added.",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        metavar="NAME",
        help="only the closure of this package set (repeatable; default: every locked package)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for path in fetch.fetch_sets(args.sets):
        print(path)
    return 0
