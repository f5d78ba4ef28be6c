"""`sonix docs`: the options reference as Markdown, HTML and a man page."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonix import docs, paths, ui


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "docs",
        help="render the options reference (Markdown, HTML, man page)",
        description="Evaluates every module in modules/ and writes options.md, options.html and "
        "sonix-options.5 to the output directory. Fails, naming them, when a visible option "
        "has no description.",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=None,
        help="output directory (default: .sonix/docs in the checkout)",
    )
    parser.add_argument(
        "--module", dest="modules", type=Path, action="append", default=[],
        help="also document this module file (repeatable)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out_dir: Path = args.output or paths.state_dir() / "docs"
    with ui.step("Evaluating option documentation"):
        options = docs.load_options(args.modules)
    with ui.step(f"Writing the reference for {len(options)} options"):
        written = docs.write_reference(options, out_dir)
    for path in written:
        print(path)
    return 0
