"""Two machines, strategy `fleet-lock`, one reboot slot (issue 5, test 6).

`sonix fleetlock-server` runs on loopback with its state in a real etcd (Debian's etcd-server
from the locked `testing` set); both VMs reach it at http://10.0.2.101/ and the channel at
http://10.0.2.100/ (QEMU guestfwd). Both install v2 at the same time; only the holder of the
slot reboots, and the other gets the slot only after the first machine's new boot was
assessed good (steady-state). The server's decisions, in order, show that the two never held
the slot at once.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from channels import UpdateRelease, publish, serve_directory

from sonix import paths
from sonix.release import signing
from sonix.testing.driver import Driver
from sonix.testing.etcd import etcd_server
from sonix.testing.machine import Machine
from sonix.vm import qemu

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 900
GROUP = "fleet"


@pytest.fixture(scope="module")
def lock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """`sonix fleetlock-server` with one slot in group `fleet`: (port, its decision log)."""
    log = tmp_path_factory.mktemp("fleetlock") / "server.log"
    with etcd_server() as etcd, log.open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "sonix", "fleetlock-server", "--listen", "127.0.0.1:0",
             "--etcd", etcd, "--group", f"{GROUP}=1"],
            cwd=paths.source_root(), stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            port = int(url.rsplit(":", 1)[1])
            yield port, log
        finally:
            server.terminate()
            server.wait(30)


@pytest.fixture(scope="module")
def machines(
    update_release: UpdateRelease, channel_key: signing.Key, driver: Driver,
    lock_server: tuple[int, Path], tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Machine, Machine]]:
    v1, v2 = update_release("1"), update_release("2")
    directory = tmp_path_factory.mktemp("fleet-channel")
    publish(v2, directory, channel_key)
    for channel_port in serve_directory(directory):
        forwards = (qemu.GuestForward("10.0.2.100", 80, channel_port),
                    qemu.GuestForward("10.0.2.101", 80, lock_server[0]))
        pair = tuple(
            # The releases are signed and their root is sealed to a TPM (conftest.py).
            driver.machine(name, image=v1.image, disk_size=4 << 30, memory_mib=1536,
                           guest_forwards=forwards, secure_boot=True, tpm=True)
            for name in ("node1", "node2")
        )
        # Firmware reboots: the first machine's downtime is long enough that the second one
        # surely asks for the slot while it is held.
        override = json.dumps({"strategy": "fleet-lock", "activation": "reboot",
                               "fleetLock": {"url": "http://10.0.2.101", "group": GROUP}})
        for m in pair:
            m.start()
        for m in pair:
            m.wait_for_unit("sonix-update-steady-state.service", timeout=BOOT_TIMEOUT)
            m.succeed(f"mkdir -p /etc/sonix && echo '{override}' > /etc/sonix/update.json")
        yield pair[0], pair[1]


def holders(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=10) as r:
        status = json.load(r)
    groups = status.get("groups", status)
    group = groups.get(GROUP, {}) if isinstance(groups, dict) else {}
    return list(group.get("holders", []))


def version(machine: Machine) -> str:
    return machine.succeed(". /usr/lib/os-release && echo $IMAGE_VERSION").strip()


def test_one_reboot_at_a_time(
    machines: tuple[Machine, Machine], lock_server: tuple[int, Path]
) -> None:
    port, log = lock_server
    ids = {m.succeed("cat /etc/machine-id").strip(): m for m in machines}
    assert len(ids) == 2, "both machines have the same machine-id"
    # Both install v2 at the same time; whoever finishes first takes the only slot.
    for m in machines:
        m.succeed("systemctl start --no-block sonix-update.service")
    deadline = time.monotonic() + 1200
    while not holders(port):
        assert time.monotonic() < deadline, "nobody took the reboot slot"
        time.sleep(2)
    (first_id,) = holders(port)
    first = ids[first_id]
    second = next(m for m in machines if m is not first)
    first.wait_for_reboot(timeout=BOOT_TIMEOUT, console=r"Welcome to .*sonix 2 ")

    # The second machine installed v2 too, and was refused while the first rebooted.
    second.wait_until_succeeds(
        "journalctl -u sonix-update.service --no-pager | grep -q 'reboot slot not granted'",
        timeout=1200)
    assert version(second) == "1"

    # The first machine's good boot releases the slot; the second takes it at its next check.
    first.wait_for_unit("sonix-update-steady-state.service", timeout=BOOT_TIMEOUT)
    assert version(first) == "2"
    deadline = time.monotonic() + 300
    while holders(port):
        assert time.monotonic() < deadline, f"the slot stayed taken: {holders(port)}"
        time.sleep(2)
    second.succeed("systemctl start --no-block sonix-update.service")
    second.wait_for_reboot(timeout=BOOT_TIMEOUT, console=r"Welcome to .*sonix 2 ")
    second.wait_for_unit("sonix-update-steady-state.service", timeout=BOOT_TIMEOUT)
    assert version(second) == "2"

    # The server's decisions, in order: granted to the first, refused to the second (maybe
    # several times), released by the first, and only then granted to the second.
    second_id = next(i for i, m in ids.items() if m is second)
    decisions = [
        (found[1], found[2], found[3]) for line in log.read_text().splitlines()
        if (found := re.match(rf"(pre-reboot|steady-state) {GROUP}/(\S+) from \S+: (.*)", line))
    ]
    text = "\n".join(map(str, decisions))
    first_grant = decisions.index(("pre-reboot", first_id, "granted: slot taken (1/1 held: "
                                   f"{first_id})"))
    release = next(i for i, d in enumerate(decisions)
                   if d[:2] == ("steady-state", first_id) and d[2].startswith("released"))
    second_grant = next(i for i, d in enumerate(decisions)
                        if d[:2] == ("pre-reboot", second_id) and d[2].startswith("granted"))
    refusals = [i for i, d in enumerate(decisions)
                if d[:2] == ("pre-reboot", second_id) and d[2].startswith("refused")]
    assert first_grant < release < second_grant, text
    assert refusals and all(first_grant < i < release for i in refusals), text
