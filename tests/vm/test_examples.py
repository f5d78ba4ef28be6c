"""The examples build and boot: examples/server.nix through the test driver, and the README's
`sonix run examples/minimal.nix` in its `--check` form (headless, exit status = health)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sonix import paths
from sonix.build import BuildResult
from sonix.testing.driver import Driver
from sonix.testing.machine import Machine

pytestmark = pytest.mark.vm

CONFIGS = Path(__file__).parent / "configs"
BOOT_TIMEOUT = 900


@pytest.fixture(scope="module")
def server(build_config: Callable[[Path], BuildResult], driver: Driver) -> Machine:
    image = build_config(CONFIGS / "server-test.nix").image
    machine = driver.machine("server", image=image, disk_size=4 << 30, memory_mib=1536)
    machine.start()
    machine.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    return machine


def test_server_comes_up_healthy(server: Machine) -> None:
    state = server.succeed("systemctl is-system-running --wait || true", timeout=BOOT_TIMEOUT)
    failed = server.succeed("systemctl --failed --no-legend --plain")
    assert state.strip() == "running", f"state {state.strip()}, failed units:\n{failed}"
    assert server.succeed("cat /proc/sys/kernel/hostname").strip() == "web-1"


def test_server_partitions_from_first_boot(server: Machine) -> None:
    assert "partition" in server.succeed("cat /proc/swaps")
    assert server.succeed("findmnt -no FSTYPE /srv").strip() == "ext4"
    assert server.succeed("findmnt -no FSTYPE /srv/incoming").strip() == "tmpfs"
    assert server.succeed("stat -c %U /srv/uploads").strip() == "deploy"


def test_server_users_and_timer(server: Machine) -> None:
    server.succeed("grep -q '^alice:' /etc/passwd", "grep -q '^deploy:' /etc/passwd")
    assert "alice@laptop" in server.succeed("cat /etc/ssh/authorized_keys.d/alice")
    server.wait_for_unit("prune-uploads.timer")


def test_readme_run_check_minimal(tmp_path: Path) -> None:
    """`sonix run examples/minimal.nix --check`: boots, reports, exits 0 when healthy."""
    result = subprocess.run(
        [sys.executable, "-m", "sonix", "run", "examples/minimal.nix", "--check",
         "--state-dir", str(tmp_path / "vm"), "--timeout", str(BOOT_TIMEOUT)],
        cwd=paths.source_root(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "userspace" in output
