"""`sonix build CONFIG`: the disk image and release artifacts of a configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonix import build, ui


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "build",
        help="build the disk image of a configuration",
        description="Builds the system described by CONFIG (a module file) and prints the "
        "output directory: disk.raw (GPT: ESP with systemd-boot and the UKI, usr + verity), "
        "the UKI, the initrd and manifest.json (version, sizes, usr root hash).",
    )
    parser.add_argument("config", type=Path, help="the configuration, e.g. examples/minimal.nix")
    parser.add_argument(
        "-o", "--output", type=Path, default=None,
        help="output directory (default: .sonix/build/<config name>)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = build.build_system(args.config, args.output)
    sizes = result.manifest["bytes"]
    ui.info(
        f"usr {sizes['usr_fs'] / 2**20:.1f} MiB, initrd {sizes['initrd'] / 2**20:.1f} MiB, "
        f"UKI {sizes['uki'] / 2**20:.1f} MiB, disk {sizes['disk_allocated'] / 2**20:.1f} MiB "
        f"allocated ({sizes['disk'] / 2**20:.0f} MiB apparent)"
    )
    print(result.out_dir)
    return 0
