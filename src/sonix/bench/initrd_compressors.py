"""`sonix bench initrd-compressors` (issue 8): the boot cost of the initrd's compression, xz
against zstd, in one run.

Builds the initrd of examples/minimal.nix with each `boot.initrd.compressor`, then boots each
with the locked kernel and no disk, `--runs` times, as `sonix bench compare` boots its initrd
floor (compare.measure_initrd_floor): host wall clock from QEMU's start to /init (the kernel
unpacks the initrd before it), and from /init to sysinit.target. Prints the size and the
medians of each, and the differences.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from sonix import build, paths
from sonix.bench import add_workload, compare, floor
from sonix.testing.driver import Driver

MINIMAL = paths.source_root() / "examples/minimal.nix"
COMPRESSORS = ("xz", "zstd")


def register(workloads: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_workload(
        workloads, "initrd-compressors",
        "boot cost of the initrd's compression: xz against zstd",
        __doc__, run, runs=(5, "boots per initrd"),
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def initrd_with(tmp: Path, compressor: str) -> Path:
    config = tmp / f"{compressor}.nix"
    config.write_text(
        f'{{ ... }}: {{ imports = [ {MINIMAL} ]; boot.initrd.compressor = "{compressor}"; }}\n')
    return build.build_system(config, tmp / compressor).initrd


def run(args: argparse.Namespace) -> int:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sonix-bench-initrd-") as tmp_name:
        tmp = Path(tmp_name)
        initrds = {c: initrd_with(tmp, c) for c in COMPRESSORS}
        kernel = floor.build_floor(paths.state_dir() / "bench")
        for compressor, initrd in initrds.items():
            with Driver(tmp / f"vms-{compressor}") as driver:  # machine names are per driver
                measured = compare.measure_initrd_floor(driver, kernel, initrd, args.runs)
                figures[compressor] = {
                    "initrd_mib": round(measured.initrd_bytes / 2**20, 2),
                    "wall_to_init_s": round(statistics.median(measured.wall_to_init), 3),
                    "init_to_sysinit_s": round(statistics.median(measured.init_to_sysinit), 3),
                    "wall_to_init_runs": measured.wall_to_init,
                }
    figures["zstd_saves_to_init_s"] = round(
        figures["xz"]["wall_to_init_s"] - figures["zstd"]["wall_to_init_s"], 3)
    figures["zstd_adds_mib"] = round(
        figures["zstd"]["initrd_mib"] - figures["xz"]["initrd_mib"], 2)

    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")
    return 0
