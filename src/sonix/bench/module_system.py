"""`sonix bench modules`: wall time and peak memory of evaluating with our module system.

Workloads (the Nix files next to this module, in module-system/, each evaluated with
`nix-instantiate --eval --strict --json`, median of --runs):
  options-1k / options-10k       N declared int options, half of them defined
  submodules-1k / submodules-10k  attrsOf (submodule ...) with N entries of 5 options each
  server-shaped                  a synthetic server: 150 systemd-like services of 25 options
                                 (nested attrsOf/listOf), 40 users, 60 files, networking
  examples/*.nix                 every example configuration in the repository, if any

Peak memory is the peak resident set size of the nix-instantiate process (nix.eval_measured),
so it includes Nix's own heap reservation: Nix 2.8 starts Boehm GC with up to 384 MiB of
initial heap, so a run that allocates more than that in total touches all of it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from sonix import nix, paths
from sonix.bench import add_workload

WORKLOADS = Path(__file__).resolve().parent / "module-system"


def register(workloads: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_workload(
        workloads, "modules",
        "evaluation time and peak memory of the module system",
        __doc__, run, runs=(5, "runs per workload"),
    )
    parser.add_argument("--write", type=Path, help="also write the Markdown table here")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")


@dataclass(frozen=True)
class Measurement:
    name: str
    seconds: float
    peak_mib: float
    runs: int


def measure(name: str, args: list[str], runs: int) -> Measurement:
    figures = [nix.eval_measured(args, strict=True, what=name) for _ in range(runs)]
    return Measurement(
        name,
        statistics.median(f.seconds for f in figures),
        statistics.median(f.peak_rss / 2**20 for f in figures),
        runs,
    )


def workloads() -> list[tuple[str, list[str]]]:
    root = paths.source_root()
    items: list[tuple[str, list[str]]] = []
    for stem, name in (("plain-options", "options"), ("submodules", "submodules")):
        for n, label in ((1000, "1k"), (10000, "10k")):
            args = [str(WORKLOADS / f"{stem}.nix"), "--arg", "n", str(n)]
            items.append((f"{name}-{label}", args))
    items.append(("server-shaped", [str(WORKLOADS / "server-shaped.nix")]))
    for example in sorted((root / "examples").glob("*.nix")):
        # Everything a build needs: the configuration down to the system's derivation.
        expr = (
            f"(import {root}/default.nix {{ configuration = {example}; }})"
            ".config.system.build.toplevel.drvPath"
        )
        items.append((f"examples/{example.name}", ["--expr", expr]))
    return items


def run(args: argparse.Namespace) -> int:
    results = [measure(name, argv, args.runs) for name, argv in workloads()]
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return 0
    lines = [
        f"Module-system evaluation, median of {args.runs} runs ({nix.version()}, "
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
        header = "# Module-system benchmark\n\nMade by `./sonix bench modules`.\n\n"
        args.write.write_text(header + table)
    return 0
