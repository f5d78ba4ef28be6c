"""`sonix fleetlock-server`: Zincati's FleetLock protocol, with the reboot slots kept in etcd."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from sonix import ui
from sonix.fleetlock.etcd import EtcdClient, EtcdError, EtcdUnavailable
from sonix.fleetlock.semaphore import DEFAULT_PREFIX, Semaphore, SlotConfig, StateError
from sonix.fleetlock.server import GROUP_PATTERN, FleetLockServer

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
        "--listen", metavar="HOST:PORT", type=listen_address, default=("127.0.0.1", 3333),
        help="address to listen on (default 127.0.0.1:3333; port 0 picks a free port)",
    )  # fmt: skip
    parser.add_argument(
        "--etcd", metavar="URL", action="append", default=None,
        help=f"etcd client URL; repeat for the members of a cluster (default {DEFAULT_ETCD})",
    )  # fmt: skip
    parser.add_argument(
        "--group", metavar="NAME=SLOTS", type=group_slots, action="append", default=[],
        help="reboot slots of a group, e.g. --group web=2 (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--slots", metavar="N", type=slot_count, default=1,
        help="reboot slots of every group not given with --group (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--prefix", default=DEFAULT_PREFIX,
        help=f"etcd key prefix of the groups' keys (default {DEFAULT_PREFIX})",
    )  # fmt: skip
    parser.set_defaults(func=run)


def listen_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT`."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:3333, not {text!r}")
    return host, int(port)


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
    endpoints: list[str] = args.etcd or [DEFAULT_ETCD]
    config = SlotConfig(groups, args.slots)
    semaphore = Semaphore(EtcdClient(endpoints), config, prefix=args.prefix)
    check_etcd(semaphore, endpoints)

    try:
        server = FleetLockServer(args.listen, semaphore)
    except OSError as error:
        host, port = args.listen
        raise ui.die(
            f"cannot listen on {host}:{port}: {error.strerror or error}",
            hint="pick another --listen address, or stop what already listens there",
        ) from None
    listed = ", ".join(f"{name}={slots}" for name, slots in sorted(groups.items()))
    ui.info(
        f"fleetlock-server on {server.url}, etcd {', '.join(endpoints)} (keys {args.prefix}*), "
        f"slots: {listed + ', ' if listed else ''}other groups {args.slots}"
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
