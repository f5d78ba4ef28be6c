"""Trial boots that hang end on their own (issue 14, section 4), on one VM, in order:

1. The usr partition is never found (a wrong `usrhash=`): the initrd gives up waiting for the
   device and enters emergency mode; on trial, `health.emergencyTimeLimit` reboots it.
2. A unit in sysinit never finishes: `health.bootTimeLimit` (JobTimeoutSec= on
   boot-complete.target, armed by sonix-trial-generator on trial boots only) reboots it.
3. The kernel panics early in sysinit: `panic=` (boot.kernel.panicTimeout) reboots it.
4. A trial activated by soft-reboot fails its health check: health.nix reboots it through the
   firmware (the update agent's trial file names the booted version).

Each ends back on the previous boot entry with no one at the console. The bad "releases" of
1 to 3 are boot loader entries (Type #1, `loader/entries/<name>+1.conf`, with a boot counter)
that start the machine's own UKI with a changed command line: systemd-stub takes the boot
loader's command line when Secure Boot is off. That costs no image builds and no installs,
and what is tested, what ends a boot that never reaches boot-complete.target, is the same as
for a release installed by the agent (the counter, LoaderBootCountPath and the fallback are
systemd-boot's). The faults of 2 and 3 are units of the test image that run only when their
word is on the command line (configs/hung-boots-test.nix). A kexec trial needs kexec-tools
and a second initrd; it is not covered here (test_updates.py covers a good kexec trial).

QEMU gets an i6300esb watchdog (Machine extra_args); test 0 checks that PID 1 armed it
already in the initrd. A watchdog reset itself is not provoked: the driver power-cycles the
guest only on a reboot or panic it saw on the console.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sonix.build import BuildResult
from sonix.testing.driver import Driver
from sonix.testing.machine import Machine, MachineError

pytestmark = pytest.mark.vm

CONFIG = Path(__file__).parent / "configs" / "hung-boots-test.nix"
BOOT_TIMEOUT = 900
FAULT = "sonix.test."
ESP_ENTRIES = "/boot/loader/entries"


@pytest.fixture(scope="module")
def machine(build_config: Callable[[Path], BuildResult], driver: Driver) -> Machine:
    m = driver.machine(
        "hung", image=build_config(CONFIG).image, memory_mib=1024,
        extra_args=("-device", "i6300esb"),
    )  # fmt: skip
    m.start()
    m.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    # The image's own entry is on trial at its first boot; wait until it is blessed, so that
    # every later fallback lands on a good, counter-less entry.
    m.wait_until_succeeds("test -e /boot/EFI/Linux/sonix_1.efi", timeout=BOOT_TIMEOUT)
    return m


def serial_log_size(machine: Machine) -> int:
    return machine.serial_log.stat().st_size


def serial_log_since(machine: Machine, offset: int) -> str:
    """The serial console of every boot since `offset` (the log survives power cycles)."""
    with machine.serial_log.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def good_cmdline(machine: Machine) -> str:
    cmdline = machine.succeed("cat /proc/cmdline").strip()
    assert FAULT not in cmdline
    return cmdline


def boot_bad_entry(machine: Machine, name: str, cmdline: str) -> None:
    """Install a boot entry with one try that starts the machine's UKI with `cmdline`, make
    it the next boot, and reboot into it."""
    entry = (
        f"title hung-boots test: {name}\n"
        "sort-key sonix\n"
        "version 9999\n"
        "efi /EFI/Linux/sonix_1.efi\n"
        f"options {cmdline}\n"
    )
    machine.succeed(
        f"mkdir -p {ESP_ENTRIES}",
        f"printf '%s' '{entry}' > {ESP_ENTRIES}/hung-{name}+1.conf",
        f"bootctl set-oneshot hung-{name}.conf",
        "sync",
    )
    machine.succeed("systemctl --no-block reboot")


def wait_for_good_boot(machine: Machine, timeout: float = 3 * BOOT_TIMEOUT) -> None:
    """Wait through the bad boot (whose backdoor may answer, or never come up) until a boot
    without an injected fault answers."""
    deadline = time.monotonic() + timeout
    while True:
        machine.wait_for_reboot(timeout=max(1.0, deadline - time.monotonic()))
        try:
            cmdline = machine.succeed("cat /proc/cmdline", timeout=60)
        except MachineError:
            continue  # the bad boot went down while we asked
        if FAULT not in cmdline:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still in a bad boot after {timeout:.0f}s: {cmdline}")


def entries(machine: Machine) -> list[str]:
    return machine.succeed(f"ls {ESP_ENTRIES}").split()


def assert_tries_used_up(machine: Machine, name: str) -> None:
    """systemd-boot counted the bad entry's one try (+1 became +0-1) and did not boot it again."""
    assert f"hung-{name}+0-1.conf" in entries(machine)
    machine.succeed(f"rm {ESP_ENTRIES}/hung-{name}+0-1.conf")


def test_watchdog_is_armed_from_stage_1(machine: Machine) -> None:
    assert machine.succeed("systemctl show -P RuntimeWatchdogUSec").strip() == "1min"
    assert machine.succeed("cat /sys/class/watchdog/watchdog0/state").strip() == "active"
    journal = machine.succeed("journalctl -b -o cat _PID=1 --no-pager")
    armed = journal.find("Using hardware watchdog")
    switched = journal.find("Switching root.")
    assert 0 <= armed < switched, journal[:3000]


def test_usr_never_found_reboots_from_emergency_mode(machine: Machine) -> None:
    cmdline = good_cmdline(machine)
    bad = re.sub(r"usrhash=[0-9a-f]+", "usrhash=" + "5" * 64, cmdline)
    assert bad != cmdline
    # Only to be quicker: the device wait that ends in emergency mode (default 90 s).
    bad += " rd.systemd.default_device_timeout_sec=20"
    offset = serial_log_size(machine)
    started = time.monotonic()
    boot_bad_entry(machine, "usrhash", bad)
    wait_for_good_boot(machine)
    machine.log(f"back on the previous entry after {time.monotonic() - started:.0f}s")
    console = serial_log_since(machine, offset)
    assert ("sonix: this boot is on trial (boot counting) and was in emergency or rescue mode "
            "for 20s") in console
    assert_tries_used_up(machine, "usrhash")


def test_hang_in_sysinit_reboots_at_the_boot_time_limit(machine: Machine) -> None:
    cmdline = good_cmdline(machine)
    started = time.monotonic()
    boot_bad_entry(machine, "hang", f"{cmdline} {FAULT}hang sonix.boot_time_limit=60")
    wait_for_good_boot(machine)
    machine.log(f"back on the previous entry after {time.monotonic() - started:.0f}s")
    # The hung boot's journal (persistent): the generator armed the limit, and it ran out.
    journal = machine.succeed("journalctl -b -1 -o cat --no-pager")
    assert "test-hang-in-sysinit" in journal
    assert "Job boot-complete.target/start timed out" in journal, journal[-3000:]
    assert_tries_used_up(machine, "hang")


def test_kernel_panic_reboots(machine: Machine) -> None:
    cmdline = good_cmdline(machine)
    offset = serial_log_size(machine)
    boot_bad_entry(machine, "panic", f"{cmdline} {FAULT}panic")
    wait_for_good_boot(machine)
    console = serial_log_since(machine, offset)
    assert "Kernel panic - not syncing: sysrq triggered crash" in console
    assert_tries_used_up(machine, "panic")


def test_failed_soft_reboot_trial_reboots_through_the_firmware(machine: Machine) -> None:
    """As the update agent leaves it after a soft-reboot activation: the trial file names the
    booted version. The health check fails only while /run (kept by soft-reboot) has the mark."""
    boot_id = machine.succeed("cat /proc/sys/kernel/random/boot_id").strip()
    machine.succeed(
        "mkdir -p /var/lib/sonix-update && echo 1 > /var/lib/sonix-update/trial",
        "touch /run/sonix-test-unhealthy",
    )
    machine.succeed("systemctl --no-block soft-reboot")
    deadline = time.monotonic() + 2 * BOOT_TIMEOUT
    while True:
        machine.wait_for_reboot(timeout=max(1.0, deadline - time.monotonic()))
        try:
            now = machine.succeed("cat /proc/sys/kernel/random/boot_id", timeout=60).strip()
        except MachineError:
            continue
        if now != boot_id:
            break
        assert time.monotonic() < deadline, "the soft-rebooted trial never rebooted"
    journal = machine.succeed("journalctl -b -1 -o cat --no-pager")
    assert "health check unmarked failed" in journal
    assert "this release is on trial" in journal
    # This boot is a trial too (the file still names the version; the update agent's
    # steady-state would remove it): the generator armed its limits from that file.
    dropin = machine.succeed(
        "cat /run/systemd/generator/boot-complete.target.d/50-sonix-trial.conf")
    assert "on trial (activated by the update agent)" in dropin
    assert "JobTimeoutSec=10min" in dropin
    machine.succeed("rm /var/lib/sonix-update/trial")
