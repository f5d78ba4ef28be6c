"""FleetLock: reboot coordination for a fleet, as Zincati's FleetLock protocol defines it.

A machine asks for a reboot slot before it reboots into an update (`POST /v1/pre-reboot`) and
gives it back once it runs well again (`POST /v1/steady-state`). Each reboot group has a number
of slots; the slots' holders are kept in etcd, so several lock servers can serve one fleet.

- `etcd.py`: a small etcd v3 client (HTTP/JSON gateway, standard library only).
- `semaphore.py`: the slots per group, changed by compare-and-swap in etcd.
- `server.py`: the HTTP server (`sonix fleetlock-server`).

Documentation: docs/updates.md, section "FleetLock server".
"""

from sonix.fleetlock.etcd import EtcdClient, EtcdError, EtcdUnavailable
from sonix.fleetlock.semaphore import Decision, Outcome, Semaphore, SlotConfig
from sonix.fleetlock.server import FleetLockServer, parse_request

__all__ = [
    "Decision",
    "EtcdClient",
    "EtcdError",
    "EtcdUnavailable",
    "FleetLockServer",
    "Outcome",
    "Semaphore",
    "SlotConfig",
    "parse_request",
]
