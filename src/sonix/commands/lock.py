"""`sonix lock`: re-resolve the Debian package set (pkgs/packages.toml → pkgs/lock.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonix import ui
from sonix.debian import apt, lock


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "lock",
        help="re-resolve the Debian package set into pkgs/lock.json",
        description="Resolves the dependency closure of every set of roots in "
        "pkgs/packages.toml with apt (Debian 13 trixie, amd64, no recommends) against the "
        "mirror the host's apt uses ($SONIX_DEBIAN_MIRROR overrides it) and writes the lock "
        "file: per package its version, file, size, sha256 and resolved dependencies. "
        "Unchanged input and mirror give an unchanged file. Prints the lock file's path.",
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="write the lock here instead of pkgs/lock.json"
    )
    parser.add_argument(
        "--no-update",
        action="store_true",
        help="use the package index from the last run instead of downloading it again",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    roots = lock.read_roots()
    cfg = apt.configure(apt.find_mirror(), roots.stubs)
    result = lock.lock(roots, cfg, update=not args.no_update)
    for name in sorted(result.sets):
        closure = result.set_closure(name)
        size = sum(result.packages[n].size for n in closure)
        ui.info(f"{name}: {len(closure)} packages, {size / (1 << 20):.1f} MiB of .debs")
    path: Path = args.output or lock.lock_file()
    previous = lock.lock_file() if args.output is None or not args.output.exists() else args.output
    if previous.exists():
        for line in lock.changes(lock.read_lock(previous), result):
            ui.info(f"  {line}")
    changed = lock.write_lock(result, path)
    ui.info(f"{path} {'updated' if changed else 'unchanged'}")
    print(path)
    return 0
