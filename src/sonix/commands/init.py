"""`sonix init DIR`: a starter configuration repository (host file, README, channel key
settings, .gitignore) that builds with `sonix build DIR/configuration.nix` unchanged."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonix import starter, ui


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "init",
        help="write a starter configuration repository for a new machine",
        description="Writes DIR (new or empty; nothing is written otherwise): "
        "configuration.nix (the host, importing sonix's modules as <sonix/...>), README.md "
        "(build, run, deploy, where keys go), keys/ for the channel's public key and a "
        ".gitignore. Prints the path of configuration.nix.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="the new repository")
    parser.add_argument("--hostname", default=None,
                        help="networking.hostName (default: from DIR's name)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    host = starter.write(args.directory, args.hostname)
    ui.info(f"Wrote a starter configuration to {host.parent}; "
            f"build it with: sonix build {host}")
    print(host)
    return 0
