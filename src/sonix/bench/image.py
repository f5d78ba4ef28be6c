"""`sonix bench image` (issue 4): evaluation, builds, sizes and boot phases of the examples.

Prints, for examples/server.nix (evaluation) and the minimal test system (everything else):
  - evaluation time of the configuration (median of --runs),
  - cold build: a new image version, so usr, initrd and image are built from scratch (the
    unpacked package tree stays cached; `sonix bench pkgs` measures that part),
  - warm rebuild after changing one option (networking.hostName),
  - sizes: usr file system (erofs), initrd, UKI, disk image (allocated and apparent),
  - boot phases under the machine's accelerator (TCG here): host wall clock from QEMU start
    to multi-user.target, and systemd-analyze's firmware/loader/kernel/initrd/userspace.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sonix import build, paths
from sonix.bench import add_workload, compare
from sonix.testing.driver import Driver

MINIMAL = paths.source_root() / "tests/vm/configs/minimal-test.nix"
SERVER = paths.source_root() / "examples/server.nix"


def register(workloads: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_workload(
        workloads, "image",
        "evaluation, builds, sizes and boot phases of the test system",
        __doc__, run, runs=(3, "evaluations"),
    )
    parser.add_argument("--no-boot", action="store_true", help="skip the boot measurement")
    parser.add_argument("--json", action="store_true", help="print JSON")


def eval_seconds(config: Path, runs: int) -> float:
    return statistics.median(compare.eval_figures(config)[0] for _ in range(runs))


def variant(tmp: Path, name: str, settings: str) -> Path:
    """A configuration that imports the minimal test system and changes some options."""
    path = tmp / f"{name}.nix"
    # The test system ships uncompressed (its verity test searches the usr bytes); the
    # benchmark measures the default compression.
    settings = f'image.compression = lib.mkForce "lz4"; {settings}'
    path.write_text(f"{{ lib, ... }}: {{ imports = [ {MINIMAL} ]; {settings} }}\n")
    return path


def timed_build(config: Path, out: Path) -> tuple[float, build.BuildResult]:
    start = time.monotonic()
    result = build.build_system(config, out)
    return time.monotonic() - start, result


def boot_phases(image: Path, state: Path) -> dict[str, Any]:
    with Driver(state) as driver:
        machine = driver.machine("bench", image=image, disk_size=4 << 30, memory_mib=1536)
        start = time.monotonic()
        machine.start()
        machine.wait_for_unit("multi-user.target", timeout=900)
        wall = time.monotonic() - start
        analyze = machine.succeed("systemd-analyze time --no-pager || true", timeout=300)
        machine.shutdown()
    return {
        "wall_to_multi_user_s": round(wall, 1),
        "systemd_analyze": compare.analyze_phases(analyze),
        "analyze_text": analyze.strip(),
    }


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="sonix-bench-image-") as tmp_name:
        tmp = Path(tmp_name)
        stamp = str(int(time.time()))
        cold_cfg = variant(tmp, "cold", f'image.version = "bench.{stamp}";')
        warm = f'image.version = "bench.{stamp}"; networking.hostName = lib.mkForce "warm";'
        warm_cfg = variant(tmp, "warm", warm)
        figures: dict[str, Any] = {
            "eval_server_s": round(eval_seconds(SERVER, args.runs), 3),
            "eval_minimal_s": round(eval_seconds(MINIMAL, args.runs), 3),
        }
        cold_s, cold = timed_build(cold_cfg, tmp / "cold-out")
        warm_s, _ = timed_build(warm_cfg, tmp / "warm-out")
        noop_s, _ = timed_build(warm_cfg, tmp / "warm-out")
        sizes = cold.manifest["bytes"]
        figures.update({
            "build_cold_s": round(cold_s, 1),
            "build_warm_one_option_s": round(warm_s, 1),
            "build_nothing_changed_s": round(noop_s, 1),
            "usr_fs_mib": round(sizes["usr_fs"] / 2**20, 1),
            "initrd_mib": round(sizes["initrd"] / 2**20, 1),
            "uki_mib": round(sizes["uki"] / 2**20, 1),
            "disk_allocated_mib": round(sizes["disk_allocated"] / 2**20, 1),
            "disk_apparent_mib": round(sizes["disk"] / 2**20, 1),
        })
        if not args.no_boot:
            figures["boot"] = boot_phases(cold.image, tmp / "vm")

    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")
    return 0
