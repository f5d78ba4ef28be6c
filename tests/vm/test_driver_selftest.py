"""Self-test of the VM test driver on a tiny direct-boot system (no sonix image needed).

Two machines share VM-to-VM network 1. `alpha` boots once for the whole module; `beta` joins
for the network test. Under TCG each boot takes ~10-40 s depending on the host's load.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sonix.testing import CommandFailed, Driver, Machine, WaitTimeout
from sonix.vm.qemu import DirectBoot

pytestmark = pytest.mark.vm

# Without systemd in the self-test system, power-off goes through the kernel's SysRq.
POWEROFF = "echo o > /proc/sysrq-trigger"


def boot(system: Path, name: str, ip: str) -> DirectBoot:
    append = f"console=ttyS0,115200 panic=-1 quiet selftest.hostname={name} selftest.ip={ip}"
    return DirectBoot(kernel=system / "kernel", initrd=system / "initrd", append=append)


@pytest.fixture(scope="module")
def alpha(driver: Driver, selftest_system: Path) -> Machine:
    machine = driver.machine(
        "alpha", direct_boot=boot(selftest_system, "alpha", "10.0.1.1/24"), networks=(1,),
        memory_mib=512, cpus=1, user_net=False, poweroff_command=POWEROFF,
    )
    machine.start()
    return machine


@pytest.fixture(scope="module")
def beta(driver: Driver, selftest_system: Path) -> Machine:
    machine = driver.machine(
        "beta", direct_boot=boot(selftest_system, "beta", "10.0.1.2/24"), networks=(1,),
        memory_mib=512, cpus=1, user_net=False, poweroff_command=POWEROFF,
    )
    machine.start()
    return machine


def test_succeed_fail_execute(alpha: Machine) -> None:
    assert alpha.succeed("cat /proc/sys/kernel/hostname").strip() == "alpha"
    assert alpha.succeed("echo one", "echo two") == "one\ntwo\n"
    assert alpha.execute("echo out; echo err >&2; exit 7") == (7, "out\n")
    alpha.fail("false", "test -e /nonexistent")
    with pytest.raises(CommandFailed) as failure:
        alpha.succeed("echo visible >&2; exit 3")
    assert failure.value.status == 3
    assert "visible" in str(failure.value)
    with pytest.raises(CommandFailed):
        alpha.fail("true")
    # Output of any size and bytes survives the tty (base64 framing), and so do long scripts.
    big = alpha.succeed("head -c 300000 /dev/zero | tr '\\0' x")
    assert big == "x" * 300000
    assert alpha.succeed("echo " + "y" * 20000).strip() == "y" * 20000
    # The guest enforces timeouts.
    status, _ = alpha.execute("sleep 30", timeout=2)
    assert status == 124


def test_wait_until_succeeds(alpha: Machine) -> None:
    alpha.succeed("rm -f /tmp/flag; (sleep 3; echo ready > /tmp/flag) &")
    assert alpha.wait_until_succeeds("cat /tmp/flag", timeout=60).strip() == "ready"
    alpha.wait_until_fails("rm /tmp/flag", timeout=60)
    with pytest.raises(WaitTimeout):
        alpha.wait_until_succeeds("false", timeout=3)


def test_wait_for_console_text(alpha: Machine) -> None:
    assert alpha.wait_for_console_text(r"SELFTEST-INIT-DONE \w+", timeout=60).endswith("alpha")
    alpha.succeed("(sleep 1; echo CONSOLE-MARKER-42 > /dev/ttyS0) &")
    assert alpha.wait_for_console_text(r"CONSOLE-MARKER-\d+", timeout=60) == "CONSOLE-MARKER-42"
    with pytest.raises(WaitTimeout):
        alpha.wait_for_console_text("CONSOLE-MARKER-42", timeout=2)  # consumed above


def test_copy_both_ways(alpha: Machine, tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    payload = bytes(range(256)) * 1000
    (source / "sub" / "data.bin").write_bytes(payload)
    (source / "run.sh").write_text("#!/bin/bash\necho ran\n")
    os.chmod(source / "run.sh", 0o755)
    alpha.copy_from_host(source, "/tmp/copied")
    digest = hashlib.sha256(payload).hexdigest()
    assert alpha.succeed("sha256sum < /tmp/copied/sub/data.bin").split()[0] == digest
    assert alpha.succeed("/tmp/copied/run.sh") == "ran\n"

    alpha.succeed("echo from-guest > /tmp/copied/new.txt")
    back = tmp_path / "back"
    alpha.copy_from_machine("/tmp/copied", back)
    assert (back / "sub" / "data.bin").read_bytes() == payload
    assert (back / "new.txt").read_text() == "from-guest\n"
    assert os.stat(back / "run.sh").st_mode & 0o777 == 0o755
    single = tmp_path / "single.txt"
    alpha.copy_from_machine("/tmp/copied/new.txt", single)
    assert single.read_text() == "from-guest\n"


def test_network_between_machines(alpha: Machine, beta: Machine) -> None:
    # No ping in the self-test system: a TCP connect to a closed port is answered with a RST
    # ("Connection refused") by the other kernel, which proves the path both ways.
    for machine, peer, peer_mac in ((alpha, "10.0.1.2", "52:54:00:12:01:02"),
                                    (beta, "10.0.1.1", "52:54:00:12:01:01")):
        machine.wait_until_succeeds(
            f"out=$(timeout 5 bash -c 'exec 3<>/dev/tcp/{peer}/9' 2>&1);"
            ' [[ $out == *"Connection refused"* ]]',
            timeout=120,
        )
        assert peer_mac in machine.succeed(f"ip neigh show {peer}")
    beta.shutdown(timeout=120)
    assert not beta.is_running()


def test_crash_and_restart(alpha: Machine) -> None:
    alpha.succeed("echo before > /run/state")
    alpha.crash()
    assert not alpha.is_running()
    alpha.start()
    # A fresh boot: the initramfs' /run is new (direct boot has no persistent disk).
    alpha.fail("test -e /run/state")
    assert alpha.succeed("cat /proc/sys/kernel/hostname").strip() == "alpha"


def test_reboot(alpha: Machine) -> None:
    alpha.succeed("echo before > /run/state")
    alpha.reboot()
    alpha.fail("test -e /run/state")
    alpha.wait_for_console_text("SELFTEST-INIT-DONE alpha", timeout=120)


def test_shutdown(alpha: Machine) -> None:
    alpha.shutdown(timeout=120)
    assert not alpha.is_running()
    assert "Power down" in alpha.serial_log.read_text(errors="replace")
