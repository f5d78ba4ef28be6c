"""The `sonix` command line. Each subcommand lives in its own module under sonix.commands and
registers itself there (`register(subparsers)`), so features stay apart."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from sonix import commands, ui


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sonix",
        description="Build, boot, test and update sonix systems described by Nix modules.",
    )
    parser.add_argument("--debug", action="store_true", help="echo commands, show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"sonix.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ui.set_debug(args.debug)
    try:
        result: int = args.func(args)
        return result
    except ui.SonixError as error:
        if args.debug:
            raise
        print(f"sonix: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sonix: interrupted", file=sys.stderr)
        return 130
