"""`sonix test`: the whole test suite (lint, types, module-system cases, unit and VM tests)."""

from __future__ import annotations

import argparse
import os
import sys

from sonix import paths


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "test",
        help="run the whole test suite, VM tests included",
        description="Runs pytest over tests/: ruff and mypy, the module-system cases, the "
        "Python unit tests and the VM tests. Extra arguments go to pytest "
        "(e.g. `sonix test -- -k modules -x`).",
    )
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="arguments for pytest")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    extra = [a for a in args.pytest_args if a != "--"]
    os.chdir(paths.source_root())
    argv = [sys.executable, "-m", "pytest", *extra]
    # Replace this process: pytest's output and exit status are the suite's.
    os.execv(sys.executable, argv)
