"""`sonix provision validate|apply`: Ignition configs checked, and applied to a directory tree,
exactly as a machine's initrd does.

`validate` runs the checks of the on-machine parser (sonix.agents.ignition.validate) and prints
each problem as `FILE: $.path: message` on stderr; stdout stays empty. Exit status 0 means the
config would be applied, 1 that it would be rejected as a whole.

`apply` runs the initrd's apply stage (sonix.agents.provision) on a directory: image builders
use it, and it is how the hostile-input corpus is tried from the command line. It must run as
root to give files their owners.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sonix import ui
from sonix.agents import common, ignition, provision


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "provision",
        help="provisioning configs (Ignition v3): validate, or apply to a directory tree",
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
    apply = actions.add_parser(
        "apply",
        help="apply an Ignition config to a directory tree as the initrd does",
        description="Applies CONFIG to the root file system at DIR exactly as a sonix "
        "machine's initrd does (docs/provisioning.md): accounts, directories, files, links, "
        "units, SSH keys. Nothing is written through a symbolic link, and a config that "
        "fails leaves DIR as it was. The state goes to DIR/var/lib/sonix/provision, the "
        "attributes to DIR/run/metadata/sonix. A tree provisioned before is left alone unless "
        "--every-boot is given. Exit status 0: applied (or nothing to do); 1: rejected, "
        "nothing written.",
    )
    apply.add_argument("file", metavar="CONFIG", help="the config (JSON), or - for stdin")
    apply.add_argument("--root", required=True, type=Path, metavar="DIR",
                       help="the root file system to provision")
    apply.add_argument("--every-boot", action="store_true",
                       help="apply again on a provisioned tree, removing what the config no "
                       "longer names (provisioning.everyBoot)")
    apply.set_defaults(func=run_apply)


def read_config(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as error:
        raise ui.die(f"cannot read {name}: {error.strerror}",
                     hint="give the path of an Ignition config, or - to read stdin") from None


def run_validate(args: argparse.Namespace) -> int:
    name: str = args.file
    problems = ignition.validate(read_config(name))
    for problem in problems:
        print(f"{name}: {problem}", file=sys.stderr)
    return 1 if problems else 0


def run_apply(args: argparse.Namespace) -> int:
    name: str = args.file
    root: Path = args.root
    data = read_config(name)
    if not root.is_dir():
        raise ui.die(f"{root} is not a directory", hint="give the root of an unpacked image "
                     "(the directory that holds etc/ and usr/)")
    if os.geteuid() != 0:
        raise ui.die("sonix provision apply must run as root",
                     hint="files and accounts get their owners; run it with sudo")
    common.Logger.journal = False
    try:
        state = provision.apply_config(root, data, every_boot=args.every_boot)
    except ignition.ConfigError as error:
        for problem in error.problems:
            print(f"{name}: {problem}", file=sys.stderr)
        print(f"{name}: rejected; nothing was written to {root}", file=sys.stderr)
        return 1
    except provision.ProvisionError as error:
        print(f"{name}: {error}; nothing was written to {root}", file=sys.stderr)
        for line in error.problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    if state is None:
        print(f"{root} was provisioned before (first-boot policy): nothing to do; "
              "--every-boot applies the config again", file=sys.stderr)
    return 0
