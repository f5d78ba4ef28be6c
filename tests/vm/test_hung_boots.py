"""Trial boots that fail or hang end on their own (issue 14, section 4). One VM goes through
six bad trial boots, with no one at the console, and ends on its previous boot entry each time:

1. A trial activated by soft-reboot fails its health check: health.nix reboots it through the
   firmware (the update agent's trial file names the booted version).
2. A trial activated by kexec fails its health check: the same, from a kernel that the firmware
   never saw (no boot counter; only the trial file says it is on trial).
3. The usr partition is never found (a wrong `usrhash=`): the initrd gives up waiting for the
   device and enters emergency mode; on trial, `health.emergencyTimeLimit` reboots it.
4. A unit in sysinit never finishes: `health.bootTimeLimit` (JobTimeoutSec= on
   boot-complete.target, armed by sonix-trial-generator on trial boots only) reboots it.
5. The kernel panics early in sysinit: `panic=` (boot.kernel.panicTimeout) reboots it.
6. PID 1 crashes in sysinit: `systemd.crashAction = "reboot"` (sonix's default) reboots it.
   systemd's own default freezes PID 1; in this VM a frozen PID 1 was not reset by the
   hardware watchdog within 400 s (RuntimeWatchdogSec=1min, i6300esb armed), see
   docs/updates.md.

2 to 6 run as one chain: the kexec'd trial reboots into systemd-boot, which tries the entries
of 3 to 6 newest first, each once (tries 1), and then boots the machine's own, blessed entry
again. Chaining them costs one good boot instead of five; the tests after the chain check what
each bad boot left (serial console, persistent journal, the entries' counters), and that none of
them needed the watchdog (QEMU's events).

The bad "releases" of 3 to 6 are boot loader entries (Type #1, `loader/entries/<name>+1.conf`,
with a boot counter) that start the machine's own UKI with a changed command line:
systemd-stub takes the boot loader's command line when Secure Boot is off. That costs no image
builds and no installs, and what is tested, what ends a boot that never reaches
boot-complete.target, is the same as for a release installed by the agent (the counter,
LoaderBootCountPath and the fallback are systemd-boot's). The faults of 4 to 6 are units of
the test image that run only when their word is on the command line
(configs/hung-boots-test.nix). The trials of 1 and 2 are set up as the update agent leaves an
activation (its trial file, and for kexec the UKI's kernel and initrd loaded with
`kexec --kexec-file-syscall`, as agents/update.py's prepare_kexec does); test_updates.py covers
the agent's own soft-reboot and kexec activations of good releases.
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
    # One vCPU: under TCG a guest with two now and then dies in early boot with "Oops: int3"
    # (the kernel patches its own code while the other vCPU runs it; docs/test-driver.md).
    # Elsewhere the driver's power cycle absorbs that; here each bad entry has one try, and a
    # boot lost to the emulator would not show what it was meant to.
    m = driver.machine(
        "hung", image=build_config(CONFIG).image, memory_mib=1024, cpus=1,
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
        "usrhash": entry_text("usrhash", 9004, usrhash),
        "hang": entry_text("hang", 9003, f"{cmdline} {FAULT}hang sonix.boot_time_limit=60"),
        "panic": entry_text("panic", 9002, f"{cmdline} {FAULT}panic"),
        # PID 1 logs to the kernel's buffer (the serial console) on this boot: by default its
        # last words go to the journal when journald is up, and the runtime journal is lost.
        "crash": entry_text("crash", 9001, f"{cmdline} {FAULT}crash systemd.log_target=kmsg"),
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
    seconds: float  # from the activation to the good boot's backdoor
    watchdog_resets: int  # resets by the hardware watchdog during the chain (QMP events)


def activate_trial(machine: Machine, command: str) -> None:
    """Leave the update agent's trial mark (the booted version is on trial) and run `command`
    (soft-reboot or kexec) a little later, from PID 1: run by the backdoor's own command it
    would cut the backdoor off before it answers."""
    machine.succeed(
        "mkdir -p /var/lib/sonix-update && echo 1 > /var/lib/sonix-update/trial",
        "sync",
    )
    machine.succeed(f"systemd-run --on-active=2 {command}")


def run_chain(machine: Machine, command: str, bad_boots: str) -> Chain:
    boot_id = machine.succeed("cat /proc/sys/kernel/random/boot_id").strip()
    offset = machine.serial_log.stat().st_size
    resets = machine.watchdog_resets
    started = time.monotonic()
    activate_trial(machine, command)
    wait_for_good_boot(machine, boot_id, timeout=5 * BOOT_TIMEOUT)
    seconds = time.monotonic() - started
    machine.log(f"{bad_boots}, back on the previous entry after {seconds:.0f}s")
    return Chain(serial_log_since(machine, offset), seconds, machine.watchdog_resets - resets)


@pytest.fixture(scope="module")
def soft_reboot_trial(machine: Machine) -> Chain:
    """A trial activated by soft-reboot whose check fails while /run (which soft-reboot keeps)
    has the mark."""
    machine.succeed("touch /run/sonix-test-unhealthy")
    return run_chain(machine, "systemctl soft-reboot", "a failed soft-reboot trial")


@pytest.fixture(scope="module")
def chain(machine: Machine, soft_reboot_trial: Chain) -> Chain:
    """Arm the bad entries, then set the chain off with a kexec'd trial that fails its check
    (its command line has the test's word)."""
    cmdline = machine.succeed("cat /proc/cmdline").strip()
    machine.succeed(f"mkdir -p {ESP_ENTRIES}")
    for name, text in bad_entries(cmdline).items():
        machine.succeed(f"printf '%s' '{text}' > {ESP_ENTRIES}/hung-{name}+1.conf")
    # systemd-boot's order (bootctl sorts like it): the bad entries first, newest first.
    listed = [e["id"] for e in json.loads(machine.succeed("bootctl list --json=short"))]
    assert listed[:4] == ["hung-usrhash.conf", "hung-hang.conf", "hung-panic.conf",
                          "hung-crash.conf"], listed
    # As agents/update.py's prepare_kexec: the UKI's kernel, initrd and command line.
    machine.succeed(
        "mkdir -p /run/sonix-test-kexec && cd /run/sonix-test-kexec && python3 -I -c '"
        "import sys; sys.path.insert(0, \"/usr/lib/sonix\"); from agents import uki; "
        "from pathlib import Path; p = Path(\"/boot/EFI/Linux/sonix_1.efi\"); "
        "Path(\"linux\").write_bytes(uki.section_bytes(p, \".linux\")); "
        "Path(\"initrd\").write_bytes(uki.section_bytes(p, \".initrd\")); "
        "Path(\"cmdline\").write_text(uki.cmdline(p))'",
        "kexec --kexec-file-syscall --load /run/sonix-test-kexec/linux"
        " --initrd=/run/sonix-test-kexec/initrd"
        f" --command-line=\"$(cat /run/sonix-test-kexec/cmdline) {FAULT}unhealthy\"",
        "test \"$(cat /sys/kernel/kexec_loaded)\" = 1",
    )
    return run_chain(machine, "systemctl kexec", "a failed kexec trial and four bad boots")


def test_watchdog_is_armed_from_stage_1(machine: Machine) -> None:
    assert machine.succeed("systemctl show -P RuntimeWatchdogUSec").strip() == "1min"
    assert machine.succeed("cat /sys/class/watchdog/watchdog0/state").strip() == "active"
    # PID 1 of the initrd opened it before journald ran (the journal has it from kmsg).
    journal = machine.succeed("journalctl -b -o cat --no-pager")
    armed = journal.find("Using hardware watchdog 'i6300ESB timer'")
    switched = journal.find("Switching root.")
    assert 0 <= armed < switched, journal[:3000]


def test_soft_reboot_trial_that_fails_its_check_reboots(
    machine: Machine, soft_reboot_trial: Chain
) -> None:
    assert "Soft-rebooting." in soft_reboot_trial.console
    assert soft_reboot_trial.console.count("BdsDxe: starting") == 1  # the good boot only
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


def test_back_on_the_previous_entry_with_every_try_used_up(machine: Machine, chain: Chain) -> None:
    assert FAULT not in machine.succeed("cat /proc/cmdline")
    listed = machine.succeed(f"ls {ESP_ENTRIES}").split()
    assert sorted(listed) == ["hung-crash+0-1.conf", "hung-hang+0-1.conf",
                              "hung-panic+0-1.conf", "hung-usrhash+0-1.conf"], listed
    assert machine.succeed("ls /boot/EFI/Linux").split() == ["sonix_1.efi"]
    # kexec, then five firmware boots: usrhash, hang, panic, crash, and this one.
    assert chain.console.count("BdsDxe: starting") == 5, chain.console[-3000:]
    machine.succeed("rm /var/lib/sonix-update/trial")


def test_kexec_trial_that_fails_its_check_reboots(machine: Machine, chain: Chain) -> None:
    kexec_boot = chain.console[:chain.console.index("BdsDxe: starting")]
    assert "Reboot via kexec" in kexec_boot, kexec_boot[-3000:]  # kexec.target
    assert f"{FAULT}unhealthy" in kexec_boot  # the kexec'd kernel's command line
    # The journal is persistent: the soft-reboot trial's check failed, then the kexec'd one's,
    # and each rebooted because the trial file named the version it ran (no boot counter).
    for message in ("health check sonix-health-unmarked.service failed on sonix 1",
                    "this release is on trial"):
        count = machine.succeed(f"journalctl -o cat --no-pager | grep -cF '{message}'")
        assert count.strip() == "2", message


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


def test_crashed_pid_1_reboots(chain: Chain) -> None:
    booted = re.search(rf"Command line: [^\r\n]*{re.escape(FAULT)}crash", chain.console)
    assert booted, chain.console[-3000:]
    crash = chain.console[booted.end():]
    crash = crash[:crash.index("BdsDxe: starting")]
    assert "Starting test-crash-pid1.service" in crash, crash[-3000:]
    assert "reboot: Restarting system" in crash, crash[-3000:]
    assert "Kernel panic - not syncing" not in crash
    assert "Caught <SEGV>" in crash, crash[-3000:]
    assert "Rebooting in 10s" in crash, crash[-3000:]
    assert "systemd-shutdown" not in crash  # PID 1 rebooted itself, no orderly shutdown
    # Each bad boot ended by its own defence, none by the hardware watchdog (QMP's events).
    assert chain.watchdog_resets == 0
