"""Reboot slots per group: a counting semaphore whose whole state lives in etcd.

One key per group, `<prefix><group>` (default prefix `/sonix/fleetlock/`), holds the JSON
`{"holders": ["<id>", ...]}` in the order the slots were taken. Every change is read → decide →
write-if-unchanged (compare on the key's `mod_revision`); a writer that lost the race reads
again and decides again. So any number of lock servers may share one etcd, and a server keeps
nothing in memory between requests: restarting one loses no lock.

Locking is recursive and owned, as the FleetLock protocol asks: taking a slot already held by
the same client id succeeds without taking a second one, and releasing a slot one does not hold
is a success that changes nothing.
"""

from __future__ import annotations

import enum
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sonix.fleetlock.etcd import KeyValue

DEFAULT_PREFIX = "/sonix/fleetlock/"


class Store(Protocol):
    """What the semaphore needs from etcd (sonix.fleetlock.etcd.EtcdClient; fakes in tests)."""

    def get(self, key: str) -> KeyValue | None: ...

    def get_prefix(self, prefix: str) -> list[KeyValue]: ...

    def put_if_unchanged(self, key: str, value: bytes, mod_revision: int) -> bool: ...


class Outcome(enum.Enum):
    ACQUIRED = "granted: slot taken"
    ALREADY_HELD = "granted: slot already held"
    REFUSED = "refused: all slots taken"
    RELEASED = "released"
    NOT_HELD = "nothing to release"


@dataclass(frozen=True)
class Decision:
    """The answer to one request, with the group's holders after it."""

    outcome: Outcome
    group: str
    client_id: str
    slots: int
    holders: tuple[str, ...]

    @property
    def granted(self) -> bool:
        return self.outcome is not Outcome.REFUSED


@dataclass(frozen=True)
class SlotConfig:
    """Slots per group: the listed groups, and `default_slots` for every other group.

    All lock servers sharing an etcd should run with the same configuration: the counts are
    not stored in etcd, each server applies its own when it decides.
    """

    groups: Mapping[str, int] = field(default_factory=dict)
    default_slots: int = 1

    def slots(self, group: str) -> int:
        return self.groups.get(group, self.default_slots)


@dataclass(frozen=True)
class GroupState:
    slots: int
    holders: tuple[str, ...]


class StateError(Exception):
    """A group's key in etcd holds something other than the expected JSON."""


class Contention(Exception):
    """The compare-and-swap lost to other writers too many times in a row."""


def decode_holders(kv: KeyValue | None) -> list[str]:
    """The holder ids stored in a group's key (none when the key does not exist)."""
    if kv is None or not kv.value:
        return []
    try:
        data = json.loads(kv.value)
    except ValueError:
        raise StateError(f"etcd key {kv.key} is not JSON: {kv.value[:100]!r}") from None
    holders = data.get("holders") if isinstance(data, dict) else None
    if not isinstance(holders, list) or not all(isinstance(h, str) for h in holders):
        raise StateError(f'etcd key {kv.key} is not {{"holders": [ids]}}: {kv.value[:100]!r}')
    return holders


def encode_holders(holders: list[str]) -> bytes:
    return json.dumps({"holders": holders}).encode()


# A change of a group's holders: given the current holders, the outcome and the new holders
# (None: nothing to write).
Change = Callable[[list[str]], tuple[Outcome, list[str] | None]]


class Semaphore:
    """Reboot slots per group, kept in `store` under `prefix`."""

    def __init__(
        self,
        store: Store,
        config: SlotConfig,
        *,
        prefix: str = DEFAULT_PREFIX,
        attempts: int = 50,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.config = config
        self.prefix = prefix
        self.attempts = attempts
        self._sleep = sleep

    def key(self, group: str) -> str:
        return self.prefix + group

    def lock(self, group: str, client_id: str) -> Decision:
        """Take a slot in `group` for `client_id` (pre-reboot), if it holds none and one is free."""
        slots = self.config.slots(group)

        def take(holders: list[str]) -> tuple[Outcome, list[str] | None]:
            if client_id in holders:
                return Outcome.ALREADY_HELD, None
            if len(holders) >= slots:
                return Outcome.REFUSED, None
            return Outcome.ACQUIRED, [*holders, client_id]

        return self._update(group, client_id, slots, take)

    def unlock(self, group: str, client_id: str) -> Decision:
        """Release the slot `client_id` holds in `group` (steady-state), if it holds one."""

        def release(holders: list[str]) -> tuple[Outcome, list[str] | None]:
            if client_id not in holders:
                return Outcome.NOT_HELD, None
            return Outcome.RELEASED, [h for h in holders if h != client_id]

        return self._update(group, client_id, self.config.slots(group), release)

    def status(self) -> dict[str, GroupState]:
        """Every configured or used group, by name: its slots and holders (for operators)."""
        used = {
            kv.key.removeprefix(self.prefix): tuple(decode_holders(kv))
            for kv in self.store.get_prefix(self.prefix)
        }
        names = sorted(set(self.config.groups) | set(used))
        return {name: GroupState(self.config.slots(name), used.get(name, ())) for name in names}

    def _update(self, group: str, client_id: str, slots: int, change: Change) -> Decision:
        key = self.key(group)
        delay = 0.005
        for _ in range(self.attempts):
            current = self.store.get(key)
            holders = decode_holders(current)
            outcome, new = change(holders)
            if new is None:
                return Decision(outcome, group, client_id, slots, tuple(holders))
            revision = current.mod_revision if current else 0
            if self.store.put_if_unchanged(key, encode_holders(new), revision):
                return Decision(outcome, group, client_id, slots, tuple(new))
            # Another server wrote first. Random back-off keeps competing servers from
            # colliding again at once.
            self._sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.25)
        raise Contention(
            f"gave up on etcd key {key} after {self.attempts} conflicting writes in a row"
        )
