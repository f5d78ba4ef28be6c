"""The examples build and boot: examples/server.nix through the test driver, and the README's
`sonix run examples/minimal.nix` both on a terminal (log in at the serial console) and in its
`--check` form (headless, exit status = health)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
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
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "userspace" in output


class Terminal:
    """A process on a pseudo-terminal, as a person at a real terminal would run it."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        # A 80x24 terminal in raw mode would be what QEMU sets up itself; give it a size.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.process = subprocess.Popen(
            argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            env={**os.environ, "TERM": "vt100"},
        )
        os.close(slave)
        self.output = b""

    def expect(self, pattern: bytes, timeout: float, since: int = 0) -> bytes:
        """Read until pattern shows up (regex) in the output after offset `since`; the text
        read so far on failure."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output[since:]):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(0.0, min(left, 5.0)))
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:  # the other side closed: the process ended
                    break
            elif left <= 0 or self.process.poll() is not None:
                break
        tail = self.output[-3000:].decode(errors="replace")
        assert re.search(pattern, self.output[since:]), (
            f"no {pattern!r} on the terminal; it shows:\n{tail}")
        return self.output

    def type(self, text: str) -> None:
        # One key at a time, as typed: a serial line at 115200 baud under TCG drops bursts.
        for char in text.encode():
            os.write(self.master, bytes([char]))
            time.sleep(0.05)

    def close(self) -> int:
        try:
            return self.process.wait(timeout=60)
        finally:
            os.close(self.master)


def test_readme_run_minimal_interactively(tmp_path: Path) -> None:
    """`sonix run examples/minimal.nix` on a terminal: log in on the serial console as the
    example's user, run a command, become root with `su -`, leave with Ctrl-a x; the VM's
    disk stays for the next run."""
    state = tmp_path / "vm"
    terminal = Terminal(
        [sys.executable, "-m", "sonix", "run", "examples/minimal.nix", "--state-dir", str(state)],
        cwd=paths.source_root(),
    )
    try:
        terminal.expect(rb"minimal login: ", timeout=BOOT_TIMEOUT)
        terminal.type("admin\r")
        terminal.expect(rb"Password: ", timeout=120)
        terminal.type("sonix\r")
        terminal.expect(rb"admin@minimal[^\n]*\$ ", timeout=120)
        terminal.type("echo sum=$((6*7)) user=$(id -un) usr=$(findmnt -no SOURCE /usr)\r")
        terminal.expect(rb"sum=42 user=admin usr=/dev/mapper/usr", timeout=120)
        # Becoming root as the README says: `su -` with root's password (docs/modules.md).
        # (The login's own "Password: " is on the terminal already: look after the command.)
        mark = len(terminal.output)
        terminal.type("su -\r")
        terminal.expect(rb"Password: ", timeout=120, since=mark)
        mark = len(terminal.output)
        terminal.type("sonix\r")
        terminal.expect(rb"# ", timeout=120, since=mark)  # root's prompt
        terminal.type("echo root-shell=$(id -un)\r")
        terminal.expect(rb"root-shell=root", timeout=120, since=mark)
    finally:
        terminal.type("\x01x")  # QEMU's escape: Ctrl-a x quits
        status = terminal.close()
    assert status == 0, terminal.output[-3000:].decode(errors="replace")
    assert (state / "disk.raw").stat().st_size >= 4 << 30  # the persistent disk, grown to 4G
