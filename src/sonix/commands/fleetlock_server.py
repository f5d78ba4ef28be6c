"""`sonix fleetlock-server`: Zincati's FleetLock protocol, with the reboot slots kept in etcd."""

from __future__ import annotations

import argparse
import re
import signal
import sys
from pathlib import Path
from types import FrameType

from sonix import ui
from sonix.commands.serve import parse_listen
from sonix.fleetlock.etcd import EtcdClient, EtcdError, EtcdUnavailable
from sonix.fleetlock.semaphore import DEFAULT_PREFIX, Semaphore, SlotConfig, StateError
from sonix.fleetlock.server import GROUP_PATTERN, FleetLockServer
from sonix.httpguard import REQUEST_TIMEOUT, positive_seconds

DEFAULT_ETCD = "http://127.0.0.1:2379"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "fleetlock-server",
        help="serve reboot slots to Zincati-style FleetLock clients, state in etcd",
        description="Serves the FleetLock protocol (POST /v1/pre-reboot, POST /v1/steady-state, "
        "GET /v1/status) with the holders of each group's reboot slots kept in etcd, so that "
        "several servers can share one etcd and a restart loses no lock. Prints its URL on "
        "stdout once it listens and logs one line per decision on stderr. See docs/updates.md.",
    )
    parser.add_argument(
        "--listen", metavar="HOST:PORT", type=parse_listen, default=("127.0.0.1", 3333),
        help="address to listen on (default 127.0.0.1:3333; port 0 picks a free port)",
    )
    parser.add_argument(
        "--etcd", metavar="URL", action="append", default=None,
        help=f"etcd client URL; repeat for the members of a cluster (default {DEFAULT_ETCD})",
    )
    parser.add_argument(
        "--group", metavar="NAME=SLOTS", type=group_slots, action="append", default=[],
        help="reboot slots of a group, e.g. --group web=2 (repeatable)",
    )
    parser.add_argument(
        "--slots", metavar="N", type=slot_count, default=1,
        help="reboot slots of every group not given with --group (default 1)",
    )
    parser.add_argument(
        "--prefix", default=DEFAULT_PREFIX,
        help=f"etcd key prefix of the groups' keys (default {DEFAULT_PREFIX})",
    )
    parser.add_argument(
        "--token-file", metavar="FILE", type=Path, default=None,
        help="require 'Authorization: Bearer <token>' on every request, the token being the "
        "file's content (read once at start; off by default: Zincati sends no token)",
    )
    parser.add_argument(
        "--only-configured-groups", action="store_true",
        help="grant slots only in the groups given with --group; others get 403 unknown_group",
    )
    parser.add_argument(
        "--request-timeout", metavar="SECONDS", type=positive_seconds, default=REQUEST_TIMEOUT,
        help=f"seconds a client has for each request before the connection is closed "
        f"(default {REQUEST_TIMEOUT:g})",
    )
    parser.set_defaults(func=run)


# A token goes into a header: visible ASCII, and long enough not to be guessed.
TOKEN_PATTERN = re.compile(r"[!-~]{16,4096}")


def read_token(path: Path) -> bytes:
    """The shared token of --token-file: the file's content without surrounding white space."""
    try:
        text = path.read_bytes().decode("ascii").strip()
    except OSError as error:
        raise ui.die(f"cannot read the token file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        text = "\0"
    if path.stat().st_mode & 0o077:
        ui.info(f"warning: the token file {path} can be read by other users: chmod 600 it")
    if not TOKEN_PATTERN.fullmatch(text):
        raise ui.die(
            f"the token file {path} must hold one token of 16 to 4096 visible ASCII characters "
            "(no spaces)",
            hint=f"make one with `head -c 32 /dev/urandom | base64 > {path}`",
        )
    return text.encode()


def slot_count(text: str) -> int:
    """A number of slots; 0 is allowed and stops reboots in the group."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of slots (0 or more), not {text!r}")
    return int(text)


def group_slots(text: str) -> tuple[str, int]:
    """`NAME=SLOTS`."""
    name, sep, slots = text.partition("=")
    if not sep or not GROUP_PATTERN.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"expected NAME=SLOTS with NAME matching [a-zA-Z0-9.-]+, not {text!r}"
        )
    return name, slot_count(slots)


def run(args: argparse.Namespace) -> int:
    groups: dict[str, int] = {}
    for name, slots in args.group:
        if name in groups:
            raise ui.die(f"group {name} is given twice (--group {name}=…)")
        groups[name] = slots
    if args.only_configured_groups and not groups:
        raise ui.die("--only-configured-groups needs the groups: give them with --group NAME=SLOTS")
    token = read_token(args.token_file) if args.token_file else None
    endpoints: list[str] = args.etcd or [DEFAULT_ETCD]
    config = SlotConfig(groups, args.slots)
    semaphore = Semaphore(EtcdClient(endpoints), config, prefix=args.prefix)
    check_etcd(semaphore, endpoints)

    try:
        server = FleetLockServer(
            args.listen, semaphore, token=token,
            only_groups=groups if args.only_configured_groups else None,
            request_timeout=args.request_timeout,
        )
    except OSError as error:
        host, port = args.listen
        raise ui.die(
            f"cannot listen on {host}:{port}: {error.strerror or error}",
            hint="pick another --listen address, or stop what already listens there",
        ) from None
    listed = ", ".join(f"{name}={slots}" for name, slots in sorted(groups.items()))
    others = "no other groups" if args.only_configured_groups else f"other groups {args.slots}"
    ui.info(
        f"fleetlock-server on {server.url}, etcd {', '.join(endpoints)} (keys {args.prefix}*), "
        f"slots: {listed + ', ' if listed else ''}{others}, "
        f"{'token required' if token else 'no authentication'}"
    )
    print(server.url, flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    # systemd stops services with SIGTERM: leave serve_forever and close the socket.
    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print("fleetlock-server: stopped", file=sys.stderr, flush=True)
    return 0


def check_etcd(semaphore: Semaphore, endpoints: list[str]) -> None:
    """Read the current holders once: etcd is reachable and its JSON gateway answers."""
    try:
        groups = semaphore.status()
    except EtcdUnavailable as error:
        raise ui.die(
            f"etcd is not reachable at {', '.join(endpoints)}: {error}",
            hint="start etcd first, e.g. `etcd --data-dir /var/lib/etcd --listen-client-urls "
            f"{endpoints[0]} --advertise-client-urls {endpoints[0]}` (Debian package "
            "etcd-server), or a throwaway one for trying things out: "
            "`.venv/bin/python -m sonix.testing.etcd`",
        ) from None
    except EtcdError as error:
        raise ui.die(
            f"etcd at {', '.join(endpoints)} did not answer a v3 range request: {error}",
            hint="the lock server needs etcd 3.4 or later with its gRPC gateway "
            "(--enable-grpc-gateway, on by default)",
        ) from None
    except StateError as error:
        raise ui.die(
            str(error), hint=f"look at it with `etcdctl get --prefix {semaphore.prefix}`; "
            "delete it to free the group's slots, or pick another --prefix",
        ) from None
    for name, state in groups.items():
        if state.holders:
            ui.info(f"  group {name}: {', '.join(state.holders)} hold slots")
