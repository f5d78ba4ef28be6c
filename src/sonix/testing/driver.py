"""`Driver`: the machines and networks of one VM test, and their clean-up.

A pytest module (or session) creates one Driver, boots its machines once and runs many checks
against them. On success the machines' state directories are removed; on failure they are kept
(serial.log, qemu.log, the disk) and their paths are printed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sonix import paths, ui
from sonix.testing.machine import Machine, MachineError
from sonix.vm import qemu
from sonix.vm.network import Hub

# The hosts these tests run on have two cores and are shared: never more VMs than this at once.
MAX_RUNNING = int(os.environ.get("SONIX_MAX_VMS", "2"))


class Driver:
    """Machines and VM-to-VM networks of one test, created under `state_dir`."""

    def __init__(self, state_dir: Path, *, max_running: int = MAX_RUNNING) -> None:
        self.state_dir = state_dir
        self.max_running = max_running
        self.machines: list[Machine] = []
        self._hubs: dict[int, Hub] = {}
        self._runtime = Path(tempfile.mkdtemp(prefix="sonix-net-"))

    def machine(self, name: str, *, networks: tuple[int, ...] = (), **options: Any) -> Machine:
        """A new Machine called `name`, with a NIC on each VM-to-VM network in `networks`.

        `options` are Machine's keyword arguments (image or direct_boot, memory_mib, …). A NIC
        on network N of the i-th machine gets the MAC 52:54:00:12:N:i.
        """
        if any(m.name == name for m in self.machines):
            raise ValueError(f"there is already a machine called {name}")
        index = len(self.machines) + 1
        nics = tuple(self.nic(network, index) for network in networks)
        machine = _GuardedMachine(
            self, name, self.state_dir / name, nics=nics + tuple(options.pop("nics", ())),
            **options,
        )
        self.machines.append(machine)
        return machine

    def nic(self, network: int, index: int) -> qemu.Nic:
        """A NIC for machine number `index` on VM-to-VM network `network` (hub started once)."""
        if network not in self._hubs:
            self._hubs[network] = Hub(self._runtime / f"vlan{network}").start()
        return qemu.Nic(socket=self._hubs[network].path, mac=qemu.mac_address(network, index))

    def running(self) -> list[Machine]:
        """The machines whose QEMU runs."""
        return [m for m in self.machines if m.is_running()]

    def start_all(self) -> None:
        """Start every machine (they boot in parallel; commands wait for each backdoor)."""
        for machine in self.machines:
            machine.start()

    def close(self, *, failed: bool) -> None:
        """Stop every VM and network; keep the state (logs, disks) only when a test failed."""
        for machine in self.machines:
            machine.stop()
        for hub in self._hubs.values():
            hub.close()
        shutil.rmtree(self._runtime, ignore_errors=True)
        if failed:
            for machine in self.machines:
                ui.info(f"{machine.name}: kept {machine.serial_log} and {machine.qemu_log}")
        else:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(failed=exc_type is not None)


class _GuardedMachine(Machine):
    """A Machine that refuses to start more VMs than the driver allows at once."""

    def __init__(self, driver: Driver, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._driver = driver

    def start(self) -> None:
        if not self.is_running():
            others = [m for m in self._driver.running() if m is not self]
            if len(others) >= self._driver.max_running:
                raise MachineError(
                    f"{self.name}: {len(others)} VMs already run "
                    f"({', '.join(m.name for m in others)}); at most {self._driver.max_running} "
                    "at once on this host (SONIX_MAX_VMS)"
                )
        super().start()


def driver_for(request: Any, name: str | None = None) -> Iterator[Driver]:
    """A Driver for a pytest fixture (module or session scope), as a generator:

        @pytest.fixture(scope="module")
        def driver(request):
            yield from driver_for(request)

    State lives in `.sonix/vm-tests/<name>`; it is removed when every test that ran while the
    fixture lived passed, and kept (with the logs' paths printed) when one failed.
    """
    node = getattr(request, "node", None)
    label = name or str(getattr(node, "name", "vm-test"))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    state = paths.state_dir() / "vm-tests" / safe
    if state.exists():
        shutil.rmtree(state)
    session = request.session
    failed_before = int(session.testsfailed)
    driver = Driver(state)
    try:
        yield driver
    finally:
        failed = int(session.testsfailed) > failed_before
        driver.close(failed=failed)
