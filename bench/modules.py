#!/usr/bin/env python3
"""Module-system benchmark: wall time and peak memory of evaluating with our lib.

Workloads (bench/modules/*.nix, each evaluated with `nix-instantiate --eval --strict --json`,
median of --runs):
  options-1k / options-10k       N declared int options, half of them defined
  submodules-1k / submodules-10k  attrsOf (submodule ...) with N entries of 5 options each
  server-shaped                  a synthetic server: 150 systemd-like services of 25 options
                                 (nested attrsOf/listOf), 40 users, 60 files, networking
  examples/*.nix                 every example configuration in the repository, if any

Peak memory is the peak resident set size of the nix-instantiate process (os.wait4), so it
includes Nix's own heap reservation: Nix 2.8 starts Boehm GC with up to 384 MiB of initial heap,
so a run that allocates more than that in total touches all of it.

Usage: bench/modules.py [--runs N] [--write docs/benchmarks/module-system.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKLOADS = Path(__file__).resolve().parent / "modules"


@dataclass(frozen=True)
class Measurement:
    name: str
    seconds: float
    peak_mib: float
    runs: int


def measure(name: str, argv: list[str], runs: int) -> Measurement:
    times: list[float] = []
    peaks: list[float] = []
    for _ in range(runs):
        start = time.monotonic()
        proc = subprocess.Popen(
            ["nix-instantiate", "--eval", "--strict", "--json", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - start
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{name}: evaluation failed:\n{stderr}")
        times.append(elapsed)
        peaks.append(usage.ru_maxrss / 1024)
    return Measurement(name, statistics.median(times), statistics.median(peaks), runs)


def workloads() -> list[tuple[str, list[str]]]:
    items: list[tuple[str, list[str]]] = []
    for stem, name in (("plain-options", "options"), ("submodules", "submodules")):
        for n, label in ((1000, "1k"), (10000, "10k")):
            argv = [str(WORKLOADS / f"{stem}.nix"), "--arg", "n", str(n)]
            items.append((f"{name}-{label}", argv))
    items.append(("server-shaped", [str(WORKLOADS / "server-shaped.nix")]))
    for example in sorted((ROOT / "examples").glob("*.nix")):
        # Everything a build needs: the configuration down to the system's derivation.
        expr = (
            f"(import {ROOT}/default.nix {{ configuration = {example}; }})"
            ".config.system.build.toplevel.drvPath"
        )
        items.append((f"examples/{example.name}", ["--expr", expr]))
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per workload (median)")
    parser.add_argument("--write", type=Path, help="also write the Markdown table here")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args()

    results = [measure(name, argv, args.runs) for name, argv in workloads()]

    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
        return 0
    nix_version = subprocess.run(
        ["nix-instantiate", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    lines = [
        f"Module-system evaluation, median of {args.runs} runs ({nix_version}, "
        f"{os.cpu_count()} cores):",
        "",
        "| workload | wall time | peak RSS |",
        "|---|---:|---:|",
    ]
    lines += [f"| {r.name} | {r.seconds:.2f} s | {r.peak_mib:.0f} MiB |" for r in results]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        header = "# Module-system benchmark\n\nMade by `bench/modules.py`.\n\n"
        args.write.write_text(header + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
