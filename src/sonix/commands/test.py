"""`sonix test`: the whole test suite (lint, types, module-system cases, unit and VM tests)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from sonix import nix, paths, ui

# What one whole test session adds to the Nix store and its temporary directory, with room to
# spare: about a dozen system images, their unpacked package trees, the update channels and
# the VM disks (measured: docs/test-driver.md, "Disk space").
SUITE_NEEDS_BYTES = 25 << 30
NIX_STORE = Path("/nix/store")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "test",
        help="run the whole test suite, VM tests included",
        description="Runs pytest over tests/: ruff and mypy, the module-system cases, the "
        "Python unit tests and the VM tests. Extra arguments go to pytest "
        "(e.g. `sonix test -- -k modules -x`). When the disk holding the Nix store has less "
        f"than {SUITE_NEEDS_BYTES >> 30} GiB free, Nix garbage (store paths no build result "
        "links to) is collected first.",
    )
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="arguments for pytest")
    parser.set_defaults(func=run)


def make_room(store: Path = NIX_STORE, need: int = SUITE_NEEDS_BYTES) -> None:
    """Collect Nix garbage when the store's disk has less free space than a session needs.
    A machine that runs the suite again and again (CI, a developer's) otherwise fills its disk
    with the images of earlier sessions, and the next build fails halfway."""
    if not store.is_dir():
        return
    free = shutil.disk_usage(store).free
    if free >= need:
        return
    with ui.step(f"Only {free >> 30} GiB free for {store}, the suite needs about "
                 f"{need >> 30} GiB: collecting Nix garbage"):
        ui.info(nix.collect_garbage())
    free = shutil.disk_usage(store).free
    if free < need:
        raise ui.die(
            f"only {free >> 30} GiB free for {store} after collecting Nix garbage; the test "
            f"suite needs about {need >> 30} GiB",
            hint="remove old build results (.sonix/build/*/system links, `result` links) and "
            "run `nix-store --gc`, or free space elsewhere on that disk",
        )


def run(args: argparse.Namespace) -> int:
    extra = [a for a in args.pytest_args if a != "--"]
    os.chdir(paths.source_root())
    make_room()
    argv = [sys.executable, "-m", "pytest", *extra]
    # Replace this process: pytest's output and exit status are the suite's.
    os.execv(sys.executable, argv)
