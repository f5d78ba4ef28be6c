"""`sonix provision validate FILE`: would a machine apply this Ignition config?

Runs exactly the checks of the on-machine parser (sonix.agents.ignition.validate) and prints
each problem as `FILE: $.path: message` on stderr; stdout stays empty. Exit status 0 means the
config would be applied, 1 that it would be rejected as a whole.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sonix import ui
from sonix.agents import ignition


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "provision",
        help="provisioning configs (Ignition v3) for first boot",
        description="Provisioning configs are Ignition v3 configs (specs 3.0.0 to "
        f"{ignition.LATEST}) restricted to files, directories, links, systemd units, users and "
        "groups: see docs/ignition.md.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    validate = actions.add_parser(
        "validate",
        help="check an Ignition config as a sonix machine would",
        description="Checks FILE exactly as a sonix machine does before applying it and "
        "prints every problem as `FILE: $.json.path: message` on stderr. Exit status 0: the "
        "config would be applied; 1: it would be rejected.",
    )
    validate.add_argument("file", metavar="FILE", help="the config (JSON), or - for stdin")
    validate.set_defaults(func=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    name: str = args.file
    if name == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(name).read_bytes()
        except OSError as error:
            raise ui.die(f"cannot read {name}: {error.strerror}",
                         hint="give the path of an Ignition config, or - to read stdin") from None
    problems = ignition.validate(data)
    for problem in problems:
        print(f"{name}: {problem}", file=sys.stderr)
    return 1 if problems else 0
