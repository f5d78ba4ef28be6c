"""The VM test driver: NixOS-style `Machine` API over QEMU, used by the project's VM tests.

    from sonix.testing import Driver, Machine

    with Driver(state_dir) as driver:
        server = driver.machine("server", image=image, networks=(1,))
        server.wait_for_unit("multi-user.target")
        server.succeed("systemctl is-system-running --wait")

Reference: docs/test-driver.md (generated from the docstrings: sonix.testing.reference).
"""

from sonix.testing.driver import Driver, driver_for
from sonix.testing.machine import CommandFailed, Machine, MachineError, UnitFailed
from sonix.testing.retry import WaitTimeout, retry

__all__ = [
    "CommandFailed",
    "Driver",
    "Machine",
    "MachineError",
    "UnitFailed",
    "WaitTimeout",
    "driver_for",
    "retry",
]
