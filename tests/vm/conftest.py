"""VM tests: QEMU machines driven by sonix.testing. Every test here is marked `vm`.

Fixtures share one boot between many checks: a module-scoped `driver` (sonix.testing.Driver)
and machines created from it. Deselect with `-m "not vm"`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonix import nix
from sonix.testing import Driver, driver_for

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.vm)


@pytest.fixture(scope="session")
def selftest_system() -> Path:
    """The driver self-test system (tests/vm/fixtures/selftest.nix): `kernel` and `initrd`."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    (out,) = nix.build(FIXTURES / "selftest.nix", what="building the self-test system")
    return out


@pytest.fixture(scope="module")
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    """One Driver per test module; state kept under .sonix/vm-tests/ only when a test failed."""
    yield from driver_for(request)
