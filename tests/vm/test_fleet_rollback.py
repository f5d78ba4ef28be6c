"""Two machines, strategy `fleet-lock`, one reboot slot, and a bad release (issue 14): the
rollback keeps the lock, so the second machine never reboots into the bad release.

Both machines run v1 and install v4, whose health check fails. The holder of the slot
reboots into v4, fails twice (boot.loader.tries = 2) and falls back to v1; its assess unit
records the failure and keeps the slot, and its good v1 boots do not release it. The second
machine, refused all along, stays on v1 with v4 waiting in its other slot. Only the operator's
`sonix update release-lock` on the first machine frees the slot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from channels import UpdateRelease, publish, serve_directory
from test_fleet_reboots import GROUP, holders, lock_server, version

from sonix.release import signing
from sonix.testing.driver import Driver
from sonix.testing.machine import Machine
from sonix.vm import qemu

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 900

__all__ = ["lock_server"]  # the module fixture, shared with test_fleet_reboots


@pytest.fixture(scope="module")
def machines(
    update_release: UpdateRelease, channel_key: signing.Key, driver: Driver,
    lock_server: tuple[int, Path], tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Machine, Machine]]:
    v1, v4 = update_release("1"), update_release("4")
    directory = tmp_path_factory.mktemp("rollback-channel")
    publish(v4, directory, channel_key)
    for channel_port in serve_directory(directory):
        forwards = (qemu.GuestForward("10.0.2.100", 80, channel_port),
                    qemu.GuestForward("10.0.2.101", 80, lock_server[0]))
        pair = tuple(
            # The releases are signed and their root is sealed to a TPM (conftest.py).
            driver.machine(name, image=v1.image, disk_size=4 << 30, memory_mib=1536,
                           guest_forwards=forwards, secure_boot=True, tpm=True)
            for name in ("bad1", "bad2")
        )
        override = json.dumps({"strategy": "fleet-lock", "activation": "reboot",
                               "fleetLock": {"url": "http://10.0.2.101", "group": GROUP}})
        for m in pair:
            m.start()
        for m in pair:
            m.wait_for_unit("sonix-update-steady-state.service", timeout=BOOT_TIMEOUT)
            m.succeed(f"mkdir -p /etc/sonix && echo '{override}' > /etc/sonix/update.json")
        yield pair[0], pair[1]


def status(machine: Machine) -> dict[str, object]:
    report: dict[str, object] = json.loads(machine.succeed("sonix status --json"))
    return report


def test_a_rollback_keeps_the_slot_and_the_second_machine_never_reboots(
    machines: tuple[Machine, Machine], lock_server: tuple[int, Path],
) -> None:
    port, _ = lock_server
    ids = {m.succeed("cat /etc/machine-id").strip(): m for m in machines}
    for m in machines:
        m.succeed("systemctl start --no-block sonix-update.service")
    deadline = time.monotonic() + 1200
    while not holders(port):
        assert time.monotonic() < deadline, "nobody took the reboot slot"
        time.sleep(2)
    (first_id,) = holders(port)
    first = ids[first_id]
    second = next(m for m in machines if m is not first)

    # v4 fails its health check on both tries; systemd-boot falls back to v1.
    first.wait_for_reboot(timeout=3 * BOOT_TIMEOUT, console=r"Welcome to .*sonix 1 ")
    first.wait_for_unit("sonix-update-steady-state.service", timeout=BOOT_TIMEOUT)
    assert version(first) == "1"
    report = status(first)
    assert report["last_rollback"]["version"] == "4"  # type: ignore[index]
    assert report["lock_hold"]["version"] == "4"  # type: ignore[index]
    journal = first.succeed("journalctl -b -u sonix-update-steady-state.service --no-pager")
    assert "keeping the reboot slot" in journal
    assert "slot HELD since" in first.succeed("sonix status")
    assert holders(port) == [first_id]

    # The second machine installed v4 and was refused; asked again now, it is refused again:
    # it stays on v1, v4 waiting unused in its other slot.
    second.wait_until_succeeds(
        "journalctl -u sonix-update.service --no-pager | grep -q 'reboot slot not granted'",
        timeout=1200)
    second.wait_until_succeeds("! systemctl -q is-active sonix-update.service", timeout=600)
    assert "reboot slot not granted" in second.succeed("sonix update run 2>&1")
    assert holders(port) == [first_id]
    assert version(second) == "1"
    assert status(second)["pending"]["version"] == "4"  # type: ignore[index]

    # The operator's decision frees the slot.
    first.succeed("sonix update release-lock")
    assert holders(port) == []
    assert "lock_hold" not in status(first)
