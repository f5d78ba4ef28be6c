"""VM tests: QEMU machines driven by sonix.testing. Every test here is marked `vm`.

Fixtures share one boot between many checks: a module-scoped `driver` (sonix.testing.Driver)
and machines created from it. Deselect with `-m "not vm"`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sonix import nix, secureboot
from sonix.build import BuildResult
from sonix.release import signing
from sonix.testing import Driver, driver_for

FIXTURES = Path(__file__).parent / "fixtures"
CONFIGS = Path(__file__).parent / "configs"


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


# ---- updates: one signing key and one build per release version for the whole session -------


@pytest.fixture(scope="session")
def channel_key(tmp_path_factory: pytest.TempPathFactory) -> signing.Key:
    return signing.ensure_key(tmp_path_factory.mktemp("key") / "channel")


# Release versions of configs/updates-test.nix, and what each adds to it.
RELEASE_EXTRAS = {
    "4": '  health.checks.broken.command = "echo this release is broken; exit 1";\n',
    # Only /usr changes (an /etc file): soft-reboot.
    "5": '  environment.etc."sonix-test/release".text = "five\\n";\n',
    # The initrd changes (vfat and its dependencies in it; nvme would not do, the cloud
    # kernel has it built in): kexec.
    "6": '  boot.initrd.availableKernelModules = [ "vfat" ];\n',
}


@pytest.fixture(scope="session")
def secure_boot_keys() -> Iterator[secureboot.KeySet]:
    """This session's Secure Boot and PCR-policy keys (`sonix keygen --secure-boot`), in a
    directory beside pytest's 0700 tree so that Nix's build users can read them."""
    directory = Path(tempfile.mkdtemp(prefix="sonix-vm-sb-keys-", dir="/tmp"))
    keys, _ = secureboot.ensure_keys(directory)
    yield keys
    shutil.rmtree(directory)


@pytest.fixture(scope="session")
def update_release(
    build_config: Callable[[Path], BuildResult], channel_key: signing.Key,
    secure_boot_keys: secureboot.KeySet, tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], BuildResult]:
    """The build of release `version` of the updates test machine (configs/updates-test.nix
    with image.version, this session's channel key and its Secure Boot keys; v4 has a
    failing health check). Every release is signed and has sealed state (boot.encryption):
    its machines boot with Secure Boot firmware and a TPM (`secure_boot=True, tpm=True`)."""
    directory = tmp_path_factory.mktemp("update-configs")

    def release(version: str) -> BuildResult:
        path = directory / f"updates-{version}.nix"
        path.write_text(
            "{ ... }: {\n"
            f"  imports = [ {CONFIGS / 'updates-test.nix'} ];\n"
            f'  image.version = "{version}";\n'
            f"  updates.trustedKeys = [ {channel_key.trusted} ];\n"
            "  boot.secureBoot.enable = true;\n"
            "  boot.encryption.enable = true;\n"
            f'  boot.secureBoot.keyDirectory = "{secure_boot_keys.directory}";\n'
            f"{RELEASE_EXTRAS.get(version, '')}}}\n"
        )
        return build_config(path)

    return release
