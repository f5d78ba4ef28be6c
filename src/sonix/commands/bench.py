"""`sonix bench`: sonix, a Debian installation of the same packages and the kernel-only floor,
built, booted and measured in one run (sonix.bench.compare); writes docs/benchmarks.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonix import paths, ui
from sonix.bench import compare


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "bench",
        help="measure sonix against a Debian installation of the same packages",
        description="Builds and boots, in one run on this machine, the minimal sonix server, "
        "a peer made from the same locked Debian 13 packages the way a Debian user installs "
        "them (dpkg/apt with maintainer scripts, initramfs-tools, ext4, systemd-boot) and the "
        "same kernel booting straight into a trivial init. Writes medians and sonix/peer "
        "ratios to OUT/benchmarks.md, the raw figures to OUT/benchmarks/results.json and a "
        "boot chart per system to OUT/benchmarks/bootchart-*.png.",
    )
    parser.add_argument("--runs", type=int, default=5,
                        help="measured boots per system, after one that is not counted (5)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: one boot each (the first, uncounted one is "
                        "skipped), the peer from the cache")
    parser.add_argument("--out", type=Path, default=paths.source_root() / "docs",
                        help="where benchmarks.md and benchmarks/ go (default: docs/)")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep builds and VM disks here (default: a temporary directory)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    runs = 1 if args.quick else args.runs
    report = compare.run(args.out, runs=runs, cold_peer=not args.quick, warmup=not args.quick,
                         work=args.work)
    for name, value in report["summary"]["targets"].items():
        ui.info(f"{name}: {value}")
    print(args.out / "benchmarks.md")
    return 0
