"""What the boot benchmark (issue 8) compares sonix with, built reproducibly from pkgs/lock.json.

- `peer`: the same Debian 13 packages installed the way a Debian user would (dpkg and apt with
  maintainer scripts, initramfs-tools initrd, ext4 root, systemd-boot): `build_peer_image`.
- `floor`: the same kernel booted straight into a trivial init: `build_floor`.

Both cache their result under the output directory, keyed by the lock file's contents (and the
builder's own inputs), so a second call returns at once. See docs/benchmarks/peer.md.

The workloads of `sonix bench` (compare, image, modules, ...) register through add_workload.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_workload(
    workloads: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    doc: str | None,
    run: Callable[[argparse.Namespace], int],
    *,
    runs: tuple[int, str] | None = None,
) -> argparse.ArgumentParser:
    """`sonix bench NAME`: a workload's parser, its module docstring as the description;
    `runs` = (default, what is counted) adds `--runs` (the median is reported)."""
    parser = workloads.add_parser(
        name, help=summary, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if runs is not None:
        default, counted = runs
        parser.add_argument("--runs", type=int, default=default,
                            help=f"{counted} (median; {default})")
    parser.set_defaults(func=run)
    return parser
