"""`sonix serve-metadata`: a fake EC2 / GCE / matchbox metadata server for tests and local use
(sonix.provisioning.metadata_server); prints the URL on stdout once listening, logs requests
to stderr."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from sonix import ui
from sonix.commands.serve import parse_listen
from sonix.provisioning.metadata_server import (
    ConfigError,
    Ec2Instance,
    GceInstance,
    Matchbox,
    MetadataServer,
    ServerConfig,
    load_config,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "serve-metadata",
        help="serve fake EC2 / GCE / matchbox metadata for provisioning tests",
        description="Plays an EC2 instance metadata service (IMDSv2, under /latest/), a GCE "
        "metadata server (under /computeMetadata/v1/) and a matchbox server (/ignition, "
        "/metadata), each only when configured, all on one port. A VM reaches it through "
        "QEMU's guestfwd (guest 169.254.169.254:80 -> this address). Prints the URL once "
        "listening; logs requests to stderr. See docs/metadata-sources.md.",
    )
    parser.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 8080),
                        metavar="HOST:PORT",
                        help="address to listen on (default 127.0.0.1:8080; port 0: any)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="JSON or TOML file with sections ec2, gce, matchbox "
                        "(docs/metadata-sources.md); the flags below add to it")
    parser.add_argument("--ec2", action="store_true", help="play EC2 (implied by --ec2-user-data)")
    parser.add_argument("--ec2-user-data", type=Path, metavar="FILE",
                        help="EC2 user data (served at /latest/user-data)")
    parser.add_argument("--imdsv1", action="store_true",
                        help="EC2: also answer requests without an IMDSv2 token")
    parser.add_argument("--gce", action="store_true", help="play GCE (implied by --gce-user-data)")
    parser.add_argument("--gce-user-data", type=Path, metavar="FILE",
                        help="GCE user data (instance/attributes/user-data)")
    parser.add_argument("--hostname", metavar="NAME", help="EC2 / GCE instance hostname")
    parser.add_argument("--instance-id", metavar="ID", help="EC2 / GCE instance id")
    parser.add_argument("--ssh-key", action="append", default=[], metavar="KEY",
                        help="an SSH public key of the EC2 / GCE instance (repeatable)")
    parser.add_argument("--matchbox", type=Path, metavar="DIR",
                        help="play matchbox with DIR/profiles, DIR/groups and DIR/ignition")
    parser.set_defaults(func=run)


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The configuration file (if any) with the flags applied on top."""
    try:
        config = load_config(args.config) if args.config else ServerConfig()
        matchbox = Matchbox.load(args.matchbox) if args.matchbox else config.matchbox
    except ConfigError as error:
        raise ui.die(str(error), hint="see docs/metadata-sources.md for the format") from None
    overrides: dict[str, Any] = {}  # fields both instance kinds have
    if args.hostname:
        overrides["hostname"] = args.hostname
    if args.instance_id:
        overrides["instance_id"] = args.instance_id
    if args.ssh_key:
        overrides["ssh_keys"] = tuple(args.ssh_key)

    ec2 = config.ec2
    if ec2 is None and (args.ec2 or args.ec2_user_data or args.imdsv1):
        ec2 = Ec2Instance()
    if ec2 is not None:
        ec2 = dataclasses.replace(ec2, **overrides)
        if args.ec2_user_data:
            ec2 = dataclasses.replace(ec2, user_data=read(args.ec2_user_data))
        if args.imdsv1:
            ec2 = dataclasses.replace(ec2, imdsv1=True)
    gce = config.gce
    if gce is None and (args.gce or args.gce_user_data):
        gce = GceInstance()
    if gce is not None:
        gce = dataclasses.replace(gce, **overrides)
        if args.gce_user_data:
            gce = dataclasses.replace(gce, user_data=read(args.gce_user_data))
    return ServerConfig(ec2, gce, matchbox)


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ui.die(f"cannot read {path}: {error.strerror}") from None


def run(args: argparse.Namespace) -> int:
    config = server_config(args)
    if not (config.ec2 or config.gce or config.matchbox):
        raise ui.die("nothing to serve",
                     hint="give --ec2, --gce or --matchbox DIR (or a --config file)")
    host, port = args.listen
    try:
        server = MetadataServer((host, port), ec2=config.ec2, gce=config.gce,
                                matchbox=config.matchbox)
    except OSError as error:
        raise ui.die(f"cannot listen on {host}:{port}: {error.strerror}",
                     hint="choose another address with --listen") from None
    ui.info(f"serve-metadata on {server.url}: {', '.join(server.roles())}")
    print(server.url, flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # systemd and test harnesses stop with SIGTERM
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends serving, not an error
            server.serve_forever()
    finally:
        server.server_close()
    return 0
