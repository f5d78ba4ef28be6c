"""Trial boots that hang end on their own (issue 14, section 4). One VM goes through four
bad trial boots in a row, with no one at the console, and ends on its previous boot entry:

1. A trial activated by soft-reboot fails its health check: health.nix reboots it through the
   firmware (the update agent's trial file names the booted version).
2. The usr partition is never found (a wrong `usrhash=`): the initrd gives up waiting for the
   device and enters emergency mode; on trial, `health.emergencyTimeLimit` reboots it.
3. A unit in sysinit never finishes: `health.bootTimeLimit` (JobTimeoutSec= on
   boot-complete.target, armed by sonix-trial-generator on trial boots only) reboots it.
4. The kernel panics early in sysinit: `panic=` (boot.kernel.panicTimeout) reboots it.

systemd-boot tries the entries of 2 to 4 newest first, each once (tries 1), and then boots the
machine's own, blessed entry again. Chaining them costs one good boot instead of four; the
tests after the chain check what each bad boot left (serial console, persistent journal, the
entries' counters).

The bad "releases" of 2 to 4 are boot loader entries (Type #1, `loader/entries/<name>+1.conf`,
with a boot counter) that start the machine's own UKI with a changed command line:
systemd-stub takes the boot loader's command line when Secure Boot is off. That costs no image
builds and no installs, and what is tested, what ends a boot that never reaches
boot-complete.target, is the same as for a release installed by the agent (the counter,
LoaderBootCountPath and the fallback are systemd-boot's). The faults of 3 and 4 are units of
the test image that run only when their word is on the command line
(configs/hung-boots-test.nix). A kexec trial needs kexec-tools and a second initrd; it is not
covered here (test_updates.py covers a good kexec trial, and the generator's decision is the
same as after a soft-reboot).

QEMU gives every machine an i6300esb watchdog (src/sonix/vm/qemu.py); the first test checks
that PID 1 armed it already in the initrd. A watchdog reset itself is not provoked here (the
driver's handling of one is in tests/unit/test_testing_driver.py and docs/test-driver.md).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
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
    )
    m.start()
    m.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    # The image's own entry is on trial at its first boot; wait until it is blessed, so that
    # every later fallback lands on a good, counter-less entry.
    m.wait_until_succeeds("test -e /boot/EFI/Linux/sonix_1.efi", timeout=BOOT_TIMEOUT)
    return m


def serial_log_since(machine: Machine, offset: int) -> str:
    """The serial console of every boot since `offset` (the log survives power cycles)."""
    with machine.serial_log.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def entry_text(name: str, version: int, cmdline: str) -> str:
    """A boot entry that starts the machine's UKI with `cmdline`; the same sort key as the UKI
    (its IMAGE_ID) and a higher version, so systemd-boot prefers it while it has tries left."""
    return (
        f"title hung-boots test: {name}\n"
        "sort-key sonix\n"
        f"version {version}\n"
        "efi /EFI/Linux/sonix_1.efi\n"
        f"options {cmdline}\n"
    )


def bad_entries(cmdline: str) -> dict[str, str]:
    """The bad entries by name, in the order systemd-boot tries them."""
    usrhash = re.sub(r"usrhash=[0-9a-f]+", "usrhash=" + "5" * 64, cmdline)
    assert usrhash != cmdline
    # Only to be quicker: the device wait that ends in emergency mode (default 90 s).
    usrhash += " systemd.default_device_timeout_sec=20"
    return {
        "usrhash": entry_text("usrhash", 9003, usrhash),
        "hang": entry_text("hang", 9002, f"{cmdline} {FAULT}hang sonix.boot_time_limit=60"),
        "panic": entry_text("panic", 9001, f"{cmdline} {FAULT}panic"),
    }


def wait_for_good_boot(machine: Machine, old_boot_id: str, timeout: float) -> None:
    """Wait through the bad boots (whose backdoor may answer for a while, or never come up)
    until a new boot without an injected fault answers, and let it reach multi-user.target
    (the backdoor starts early in sysinit, before /boot is mounted)."""
    deadline = time.monotonic() + timeout
    while True:
        machine.wait_for_reboot(timeout=max(1.0, deadline - time.monotonic()))
        try:
            state = machine.succeed(
                "cat /proc/sys/kernel/random/boot_id /proc/cmdline", timeout=60)
        except MachineError:
            continue  # that boot went down while we asked
        if old_boot_id not in state and FAULT not in state:
            break
        assert time.monotonic() < deadline, f"still in a bad boot after {timeout:.0f}s: {state}"
    machine.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)


@dataclass(frozen=True)
class Chain:
    console: str  # the serial console of every boot of the chain
    seconds: float  # from the soft-reboot to the good boot's backdoor


@pytest.fixture(scope="module")
def chain(machine: Machine) -> Chain:
    """Arm all the bad trials and set them off with one soft-reboot."""
    boot_id = machine.succeed("cat /proc/sys/kernel/random/boot_id").strip()
    cmdline = machine.succeed("cat /proc/cmdline").strip()
    machine.succeed(f"mkdir -p {ESP_ENTRIES}")
    for name, text in bad_entries(cmdline).items():
        machine.succeed(f"printf '%s' '{text}' > {ESP_ENTRIES}/hung-{name}+1.conf")
    # systemd-boot's order (bootctl sorts like it): the bad entries first, newest first.
    listed = [e["id"] for e in json.loads(machine.succeed("bootctl list --json=short"))]
    assert listed[:3] == ["hung-usrhash.conf", "hung-hang.conf", "hung-panic.conf"], listed
    # 1: as the update agent leaves a soft-reboot activation; the check fails while /run
    # (which soft-reboot keeps) has the mark.
    machine.succeed(
        "mkdir -p /var/lib/sonix-update && echo 1 > /var/lib/sonix-update/trial",
        "touch /run/sonix-test-unhealthy",
        "sync",
    )
    offset = machine.serial_log.stat().st_size
    started = time.monotonic()
    # Later, from PID 1: a soft-reboot started by the backdoor's own command would cut it off
    # before it answers.
    machine.succeed("systemd-run --on-active=2 systemctl soft-reboot")
    wait_for_good_boot(machine, boot_id, timeout=4 * BOOT_TIMEOUT)
    seconds = time.monotonic() - started
    machine.log(f"five bad trial boots, back on the previous entry after {seconds:.0f}s")
    return Chain(serial_log_since(machine, offset), seconds)


def test_watchdog_is_armed_from_stage_1(machine: Machine) -> None:
    assert machine.succeed("systemctl show -P RuntimeWatchdogUSec").strip() == "1min"
    assert machine.succeed("cat /sys/class/watchdog/watchdog0/state").strip() == "active"
    # PID 1 of the initrd opened it before journald ran (the journal has it from kmsg).
    journal = machine.succeed("journalctl -b -o cat --no-pager")
    armed = journal.find("Using hardware watchdog 'i6300ESB timer'")
    switched = journal.find("Switching root.")
    assert 0 <= armed < switched, journal[:3000]


def test_back_on_the_previous_entry_with_every_try_used_up(machine: Machine, chain: Chain) -> None:
    assert FAULT not in machine.succeed("cat /proc/cmdline")
    listed = machine.succeed(f"ls {ESP_ENTRIES}").split()
    assert sorted(listed) == ["hung-hang+0-1.conf", "hung-panic+0-1.conf",
                              "hung-usrhash+0-1.conf"], listed
    assert machine.succeed("ls /boot/EFI/Linux").split() == ["sonix_1.efi"]
    # Soft-reboot, then four firmware boots: usrhash, hang, panic, and this one.
    assert chain.console.count("BdsDxe: starting") == 4, chain.console[-3000:]


def test_soft_reboot_trial_that_fails_its_check_reboots(machine: Machine, chain: Chain) -> None:
    assert "Soft-rebooting." in chain.console
    journal = machine.succeed(
        "journalctl -o cat --no-pager | grep -F -e 'health check' -e 'on trial'")
    assert "health check sonix-health-unmarked.service failed on sonix 1" in journal
    assert "this release is on trial" in journal
    # This boot is a trial too (the file still names the version; the update agent's
    # steady-state would remove it): the generator armed its limits from that file alone.
    dropin = machine.succeed(
        "cat /run/systemd/generator/boot-complete.target.d/50-sonix-trial.conf")
    assert "on trial (activated by the update agent)" in dropin
    assert "JobTimeoutSec=10min" in dropin
    machine.succeed("rm /var/lib/sonix-update/trial")


def test_usr_never_found_reboots_from_emergency_mode(chain: Chain) -> None:
    assert "usrhash=" + "5" * 64 in chain.console
    assert ("sonix: this boot is on trial (boot counting) and was in emergency or rescue mode "
            "for 20s") in chain.console


def test_hang_in_sysinit_reboots_at_the_boot_time_limit(machine: Machine, chain: Chain) -> None:
    assert f"{FAULT}hang sonix.boot_time_limit=60" in chain.console
    # The hung boot's journal is kept (persistent): the limit ran out and forced the reboot.
    journal = machine.succeed("journalctl -o cat --no-pager | grep -F boot-complete.target")
    assert "Job boot-complete.target/start timed out" in journal, journal[-3000:]


def test_kernel_panic_reboots(chain: Chain) -> None:
    assert "Kernel panic - not syncing: sysrq triggered crash" in chain.console
