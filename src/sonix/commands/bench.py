"""`sonix bench WORKLOAD`: the benchmarks. Each workload is a module of sonix.bench with its
own `register(workloads)`; `sonix bench compare` measures sonix against a Debian installation
of the same packages and writes docs/benchmarks.md."""

from __future__ import annotations

import argparse
import importlib

# sonix.bench modules that are workloads, in the order of `sonix bench --help`.
WORKLOADS = ("compare", "image", "initrd_compressors", "module_system", "packages", "secure_boot",
             "updates")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "bench",
        help="benchmarks: sonix against a Debian installation, images, packages, updates",
        description="Runs one benchmark workload on this machine and prints (or writes) its "
        "figures. `sonix bench compare` is the one docs/benchmarks.md comes from.",
    )
    workloads = parser.add_subparsers(dest="workload", metavar="WORKLOAD", required=True)
    for name in WORKLOADS:
        importlib.import_module(f"sonix.bench.{name}").register(workloads)
