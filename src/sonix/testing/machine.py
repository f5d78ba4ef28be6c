"""`Machine`: one QEMU virtual machine under test, with a NixOS-style API.

Failures come in two kinds, kept apart on purpose:

- `MachineError`: the infrastructure broke (QEMU did not start or died, the backdoor did not
  answer). The test could not check anything.
- `AssertionError` subclasses (`CommandFailed`, `WaitTimeout`, `UnitFailed`): the system under
  test did not behave. These are the test failures.

Every public step is a nested, timed log scope on stderr (`sonix.ui.step`), and every
`wait_for_*` is `retry()` around a check (or, for console text, a wait on arriving data).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from sonix import paths, process, ui
from sonix.testing.backdoor import READY, Reply, ReplyParser, encode_request
from sonix.testing.qmp import Qmp, QmpError
from sonix.testing.retry import WaitTimeout, retry
from sonix.vm import qemu, swtpm
from sonix.vm.console import Channel, ChannelClosed

# Under TCG a minimal sonix system needs 40-60 s to reach multi-user.target, and a loaded host
# doubles that: waits are generous and event-driven, never fixed sleeps.
DEFAULT_TIMEOUT = 900.0
START_TIMEOUT = 60.0  # QEMU process up and connected to our sockets
# The guest enforces command timeouts; the host gives up this much later (a hung backdoor).
REPLY_MARGIN = 60.0
# A guest kernel that panicked and printed nothing for this long is hung (under TCG a panic in
# interrupt context now and then never reaches `panic=N`'s reset): the driver resets it, as a
# hardware watchdog would, at most HUNG_PANIC_RESETS times per machine.
HUNG_PANIC_QUIET = 30.0
HUNG_PANIC_RESETS = 2
PANIC_MARKER = "Kernel panic - not syncing"


class MachineError(Exception):
    """The test infrastructure failed (QEMU, the backdoor), not the system under test."""


class CommandFailed(AssertionError):
    """A command in the guest ended with an unexpected exit status."""

    def __init__(self, machine: str, command: str, reply: Reply, expected: str) -> None:
        self.command = command
        self.status = reply.status
        self.stdout = reply.stdout
        self.stderr = reply.stderr
        detail = "".join(
            f"\n  {label}:\n" + "\n".join(f"    {line}" for line in text.rstrip().splitlines())
            for label, text in (("stdout", reply.stdout), ("stderr", reply.stderr))
            if text.strip()
        )
        super().__init__(
            f"{machine}: command {expected}, but exited with status {reply.status}: "
            f"{command}{detail}"
        )


class UnitFailed(AssertionError):
    """A systemd unit that a test waited for entered the failed state."""


def launch(argv: list[str], log: BinaryIO) -> process.Child:
    """Start QEMU in the background, its output to `log` (unit tests replace this)."""
    return process.spawn(argv, stdout=log, stderr=subprocess.STDOUT)


def _short(command: str, limit: int = 80) -> str:
    flat = " ".join(command.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Machine:
    """A virtual machine under test.

    Boots either a disk image with OVMF (`image`, copied into `state_dir` and enlarged to
    `disk_size`) or a kernel directly (`direct_boot`). `state_dir` keeps the disk, the OVMF
    variables, `serial.log` (every byte of the serial console, across restarts) and
    `qemu.log`. Commands run through the backdoor: a root shell on the virtio serial
    port `org.sonix.backdoor` that only test images use (modules/testing/backdoor.nix).

    Args:
        name: the machine's name in logs (and QEMU's `-name`).
        state_dir: where the machine's persistent state and logs live.
        image: a raw disk image (UEFI boot through OVMF).
        direct_boot: kernel, initrd and command line for `-kernel` boots (no firmware).
        memory_mib, cpus: the VM's size.
        disk_size: bytes of the VM's disk (the image needs free space after its partitions,
            systemd-repart creates the root partition there on first boot).
        nics: NICs on VM-to-VM networks (`Driver.nic()` makes them).
        user_net: a QEMU user-networking NIC (restricted: only the forwards reach the host).
        user_network: its address range (default QEMU's 10.0.2.0/24); guest forwards must be
            in it, so "169.254.169.0/24" is how a test forwards the metadata address.
        user_net_mac: the MAC address of that NIC.
        port_forwards, guest_forwards: host 127.0.0.1 <-> guest TCP forwards.
        credentials: systemd credentials for the guest (SMBIOS type 11).
        secure_boot: boot with OVMF's Secure Boot build (SMM on); its variables start in
            setup mode (no keys) and keep what is enrolled, like the rest of `state_dir`.
            Image boots only.
        tpm: a software TPM 2.0 (swtpm, started before each start of QEMU and stopped with
            it); its state is `state_dir/tpm`, so reboots and power cycles keep it.
        poweroff_command: what `shutdown()` runs in the guest.
        accel: `kvm` or `tcg`; default: probed once per host boot (see sonix.vm.qemu), and
            TCG for good once KVM fails a guest (a chosen `kvm` fails with a MachineError).
        extra_args: more QEMU arguments.
    """

    def __init__(
        self,
        name: str,
        state_dir: Path,
        *,
        image: Path | None = None,
        direct_boot: qemu.DirectBoot | None = None,
        memory_mib: int = 1024,
        cpus: int = 2,
        disk_size: int = 2 * qemu.GiB,
        nics: Sequence[qemu.Nic] = (),
        user_net: bool = True,
        user_network: str | None = None,
        user_net_mac: str = "52:54:00:12:34:56",
        port_forwards: Sequence[qemu.PortForward] = (),
        guest_forwards: Sequence[qemu.GuestForward] = (),
        credentials: Mapping[str, str] | None = None,
        poweroff_command: str = "systemctl poweroff",
        accel: str | None = None,
        extra_args: Sequence[str] = (),
        secure_boot: bool = False,
        tpm: bool = False,
    ) -> None:
        if (image is None) == (direct_boot is None):
            raise ValueError("a Machine boots either an image or a direct_boot kernel")
        if secure_boot and image is None:
            raise ValueError("secure_boot needs an image: a direct_boot kernel has no firmware")
        self.name = name
        self.state_dir = state_dir
        self.image = image
        self.direct_boot = direct_boot
        self.memory_mib = memory_mib
        self.cpus = cpus
        self.disk_size = disk_size
        self.nics = tuple(nics)
        self.user_net = user_net
        self.user_network = user_network
        self.user_net_mac = user_net_mac
        self.port_forwards = tuple(port_forwards)
        self.guest_forwards = tuple(guest_forwards)
        self.credentials = dict(credentials or {})
        self.poweroff_command = poweroff_command
        self.accel = accel
        self.extra_args = tuple(extra_args)
        self.secure_boot = secure_boot
        self.tpm = tpm
        self.tpm_state = state_dir / "tpm"  # swtpm's state directory (with tpm)
        self.serial_log = state_dir / "serial.log"
        self.qemu_log = state_dir / "qemu.log"
        self._process: process.Child | None = None
        self._swtpm: process.Child | None = None
        self._runtime: Path | None = None
        self._serial: Channel | None = None
        self._backdoor: Channel | None = None
        self._qmp: Qmp | None = None
        self._connected = False
        self._console_pos = 0
        self.booted_at: float | None = None  # monotonic time of the last start()
        self.boot_times: list[float] = []  # seconds from start()/reboot() to the backdoor
        self.panic_resets = 0  # hung panics the driver reset (see HUNG_PANIC_QUIET)
        self.watchdog_resets = 0  # resets by the guest's hardware watchdog (QMP says so)
        self._reset_hung_panic = False
        self._kvm_watch: qemu.KvmWatch | None = None
        self._kvm_failed: str | None = None  # why KVM could not run the guest (QEMU killed)

    def __repr__(self) -> str:
        return f"<Machine {self.name}>"

    # ---- life cycle --------------------------------------------------------------------------

    def spec(self, runtime: Path) -> qemu.VmSpec:
        """The QEMU settings of this machine, with its sockets in `runtime`.

        For image boots this prepares the disk copy and the OVMF variables in `state_dir`.
        """
        firmware = None
        disk = None
        if self.image is not None:
            firmware = qemu.prepare_firmware(self.state_dir, secure_boot=self.secure_boot)
            disk = qemu.prepare_disk(self.image, self.state_dir, self.disk_size)
        kernel = self.direct_boot.kernel if self.direct_boot is not None else None
        return qemu.VmSpec(
            name=self.name,
            accel=self.accel or qemu.accelerator(paths.state_dir() / "vm", kernel),
            memory_mib=self.memory_mib,
            cpus=self.cpus,
            firmware=firmware,
            disk=disk,
            tpm=qemu.Tpm(state=self.tpm_state, socket=runtime / "swtpm",
                         log=self.state_dir / "swtpm.log") if self.tpm else None,
            direct_boot=self.direct_boot,
            serial=runtime / "serial",
            serial_log=self.serial_log,
            backdoor=runtime / "backdoor",
            qmp=runtime / "qmp",
            user_net=self.user_net,
            user_network=self.user_network,
            user_net_mac=self.user_net_mac,
            port_forwards=self.port_forwards,
            guest_forwards=self.guest_forwards,
            nics=self.nics,
            credentials=tuple(sorted(self.credentials.items())),
            extra_args=self.extra_args,
            # Guest reboots end QEMU; the driver starts it again (_power_cycle_after_guest_reboot).
            no_reboot=self.image is not None,
        )

    def start(self) -> None:
        """Start the VM (no-op when it runs). Returns at once: commands wait for the backdoor.

        Raises MachineError when QEMU does not start (its output is in the error).
        """
        if self.is_running():
            return
        with ui.step(f"{self.name}: starting"):
            self.state_dir.mkdir(parents=True, exist_ok=True)
            # Unix socket paths are limited to 108 bytes: keep them in a short temp dir.
            self._runtime = Path(tempfile.mkdtemp(prefix=f"sonix-{self.name[:16]}-"))
            try:
                spec = self.spec(self._runtime)
            except BaseException:  # bad input (no OVMF, no space): nothing may stay behind
                self._cleanup()
                raise
            self._serial = Channel(self._runtime / "serial")
            self._backdoor = Channel(self._runtime / "backdoor", keep_history=False)
            self._serial.listen()
            self._backdoor.listen()
            argv = qemu.qemu_argv(spec)
            if spec.tpm is not None:
                # Up (its socket there) before QEMU, which connects at start-up.
                try:
                    self._swtpm = swtpm.start(spec.tpm)
                except ui.SonixError as error:
                    self._cleanup()
                    raise MachineError(f"{self.name}: {error}") from None
            with open(self.qemu_log, "ab") as log:
                log.write(f"\n# {time.strftime('%F %T')} {shlex.join(argv)}\n".encode())
                log.flush()
                output = qemu.file_tail(self.qemu_log)
                self._process = launch(argv, log)
            serial = self._serial
            self._kvm_watch = qemu.KvmWatch(
                spec.accel, output, lambda: len(serial.text()), qemu.silence_bound(spec)
            )
            self._kvm_failed = None
            self.booted_at = time.monotonic()
            self._connected = False
            self._console_pos = 0
            if not self._serial.wait_connected(START_TIMEOUT, alive=self.is_running):
                if self._restart_if_kvm_failed():
                    return
                raise self._failure("QEMU did not start")
            self._qmp = Qmp(spec.qmp or self._runtime / "qmp")
            try:
                self._qmp.connect(START_TIMEOUT, alive=self.is_running)
            except QmpError as error:
                if not self.is_running():
                    # QEMU started (its console connected) and has ended already: the guest
                    # reset at once; the next wait power-cycles it like any guest reboot.
                    return
                raise self._failure(f"QEMU's monitor is not reachable: {error}") from None

    def is_running(self) -> bool:
        """Whether the QEMU process runs."""
        return self._process is not None and self._process.poll() is None

    def _guest_alive(self) -> bool:
        """Whether QEMU runs with a guest that may still say something: a kernel that
        panicked and then stayed quiet for HUNG_PANIC_QUIET seconds is not. Then QEMU is
        killed, so that the next wait power-cycles the machine like a hardware watchdog."""
        if not self.is_running():
            return False
        if self._kvm_watch is not None:
            failure = self._kvm_watch.failure()
            if failure is not None:
                # After a KVM internal error QEMU stays alive with the guest paused: end it,
                # so that the waiter restarts the machine under TCG (_restart_after_exit).
                assert self._process is not None
                process.stop(self._process, grace=0)
                self._kvm_failed = failure
                return False
        if (self.image is None or self._serial is None
                or self._serial.quiet_for() < HUNG_PANIC_QUIET):
            return True
        tail = self._serial.text()[-4000:]
        panic = tail.rfind(PANIC_MARKER)
        if panic < 0 or "Rebooting in " in tail[panic:]:
            return True
        if self.panic_resets >= HUNG_PANIC_RESETS:
            return True  # give up resetting: the caller's timeout reports it
        ui.info(f"{self.name}: the guest kernel panicked and hung; resetting it "
                f"(serial log: {self.serial_log})")
        assert self._process is not None
        process.stop(self._process, grace=0)
        self.panic_resets += 1
        self._reset_hung_panic = True
        return False

    def is_up(self) -> bool:
        """Whether the VM runs and its backdoor has answered since the last (re)boot."""
        return self.is_running() and self._connected

    def connect(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the backdoor in the guest is ready (starts the VM if needed)."""
        if self.is_up():
            return
        if (self._process is not None and not self.is_running()
                and not self._restart_after_exit()):
            # Started and not stopped by crash()/shutdown(): QEMU died on its own.
            raise self._failure("QEMU exited unexpectedly")
        self.start()
        with ui.step(f"{self.name}: waiting for the backdoor"):
            deadline = time.monotonic() + timeout
            while True:
                assert self._backdoor is not None
                try:
                    line = self._backdoor.read_line(
                        deadline - time.monotonic(), alive=self._guest_alive
                    )
                except ChannelClosed:
                    if self._restart_after_exit():
                        continue
                    raise self._failure("QEMU exited before the backdoor came up") from None
                if line is None:
                    raise self._failure(f"the backdoor did not come up within {timeout:.0f}s")
                if line.strip() == READY:
                    break
            self._connected = True
            if self.booted_at is not None:
                self.boot_times.append(time.monotonic() - self.booted_at)
                ui.info(f"{self.name}: backdoor ready {self.boot_times[-1]:.1f}s after boot")

    def _restart_after_exit(self) -> bool:
        """QEMU ended while someone waited: start it again when that is what a real machine
        would do (a reboot under -no-reboot, a watchdog reset) or when KVM could not run the
        guest (then under TCG). True when it runs again."""
        return self._restart_if_kvm_failed() or self._power_cycle_after_guest_reboot()

    def _restart_if_kvm_failed(self) -> bool:
        """When KVM could not run the guest (QEMU said so, or the guest stayed silent), fall
        back to TCG for good and start the machine again; True then. With an accelerator that
        was chosen (`accel=`, SONIX_ACCEL) instead of probed, that is a MachineError."""
        if self._kvm_watch is None or self._process is None:
            return False
        reason = self._kvm_failed or self._kvm_watch.failure()
        if reason is None:
            return False
        if self.accel is not None or not qemu.may_fall_back():
            raise self._failure(f"KVM cannot run this guest: {reason}\n  hint: "
                                + ("give accel=None or accel='tcg'" if self.accel is not None
                                   else qemu.KVM_FORCED_HINT))
        qemu.fall_back_to_tcg(paths.state_dir() / "vm", reason)
        process.stop(self._process, grace=0)
        self._cleanup()
        self.start()
        return True

    def _power_cycle_after_guest_reboot(self) -> bool:
        """Image boots run QEMU with -no-reboot, so a reboot of the guest ends QEMU; start it
        again on the same disk and firmware variables (a power cycle). OVMF under TCG now and
        then hangs for good on a warm reset (seen in the update tests), a cold start does not.
        True when QEMU had ended because the guest rebooted and runs again."""
        if self.image is None or self._process is None or self.is_running():
            return False
        tail = self.console_text()[-4000:]
        # A clean reboot, or a panic with panic=N (the kernel resets after N seconds; a panic
        # in an interrupt may reset without printing "Rebooting in"), or a hung panic the
        # driver reset (_guest_alive).
        markers = ("reboot: Restarting system", "reboot: machine restart", "Rebooting in ",
                   PANIC_MARKER)
        reset = self._qmp is not None and self._qmp.guest_reset()  # a reboot or the watchdog
        if not (reset or self._reset_hung_panic or any(marker in tail for marker in markers)):
            return False
        self._reset_hung_panic = False
        if self._qmp is not None and self._qmp.watchdog_reset():
            self.watchdog_resets += 1
            ui.info(f"{self.name}: the guest's watchdog reset it; starting QEMU again")
        else:
            ui.info(f"{self.name}: the guest rebooted; starting QEMU again (power cycle)")
        self._process.wait()
        self._cleanup()
        self.start()
        return True

    def shutdown(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Power the guest off cleanly (`poweroff_command`) and wait until QEMU exits."""
        if not self.is_running():
            return
        with ui.step(f"{self.name}: shutting down"):
            self.connect()
            assert self._backdoor is not None
            # No reply will come: the shell goes down with the system.
            self._backdoor.send(encode_request(f"( {self.poweroff_command} ) &", 0))
            self._connected = False
            self.wait_for_shutdown(timeout)

    def wait_for_shutdown(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until QEMU exits by itself (the guest powered off); then clean up."""
        if self._process is None:
            return
        with ui.step(f"{self.name}: waiting for the VM to power off"):
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                raise MachineError(
                    f"{self.name}: still running {timeout:.0f}s after power-off "
                    f"(serial log: {self.serial_log})"
                ) from None
            self._cleanup()

    def crash(self) -> None:
        """Simulate a power failure: QEMU is killed at once; the disk keeps what it had.

        `start()` (or any command) boots the machine again.
        """
        with ui.step(f"{self.name}: crashing"):
            if self._process is not None:
                process.stop(self._process, grace=0)
            self._cleanup()

    def reboot(self) -> None:
        """Press Ctrl-Alt-Delete in the guest (systemd reboots; a plain kernel resets).

        Returns at once; the next command waits for the backdoor of the new boot.
        """
        with ui.step(f"{self.name}: rebooting"):
            self.connect()
            assert self._backdoor is not None
            self._backdoor.skip_to_end()
            self._connected = False
            if self._serial is not None:  # console waits start over with the new boot
                self._console_pos = self._serial.mark()
            self.send_monitor_command("sendkey ctrl-alt-delete")
            self.booted_at = time.monotonic()

    def wait_for_reboot(
        self, timeout: float = DEFAULT_TIMEOUT, *, console: str | None = None
    ) -> None:
        """Wait for a reboot that the guest starts by itself (an update agent, a failed health
        check) until the backdoor of the next boot answers.

        Call it right after the command that makes the guest reboot (start such a unit with
        `systemctl start --no-block`), before the old system is down: what the old boot's
        backdoor still says is skipped. When the guest may boot several times (boot counting
        trying a release again), `console` is a regex that only the wanted boot prints, e.g.
        r"Welcome to .*sonix 2 "; the backdoor of that boot is the one waited for.
        """
        with ui.step(f"{self.name}: waiting for the guest to reboot"):
            deadline = time.monotonic() + timeout
            if self._backdoor is not None:
                self._backdoor.skip_to_end()
            self._connected = False
            if self._serial is not None:
                self._console_pos = self._serial.mark()
            self.booted_at = time.monotonic()
            if console is not None:
                self.wait_for_console_text(console, timeout)
                # PID 1 prints its welcome long before the backdoor unit starts.
                if self._backdoor is not None:
                    self._backdoor.skip_to_end()
            self.connect(max(1.0, deadline - time.monotonic()))

    def stop(self) -> None:
        """Kill QEMU if it still runs (end of a test) and release sockets."""
        if self._process is not None:
            process.stop(self._process, grace=0)
        self._cleanup()

    def _cleanup(self) -> None:
        self._connected = False
        if self._qmp is not None:
            self._qmp.close()
        for channel in (self._serial, self._backdoor):
            if channel is not None:
                channel.close()
        if self._swtpm is not None:
            # After QEMU: QEMU shuts swtpm down itself when it exits; this is for the rest.
            swtpm.stop(self._swtpm)
            self._swtpm = None
        if self._runtime is not None:
            shutil.rmtree(self._runtime, ignore_errors=True)
        self._qmp = self._serial = self._backdoor = None
        self._runtime = None
        self._process = None
        self._kvm_watch = None

    def _failure(self, message: str) -> MachineError:
        """A MachineError with QEMU's output and the end of the serial console."""
        if self._process is not None and self._process.poll() is not None:
            message += f" (QEMU exited with status {self._process.returncode})"
        details = [f"{self.name}: {message}"]
        with contextlib.suppress(OSError):
            qemu_out = self.qemu_log.read_text(errors="replace").strip().splitlines()[-10:]
            details.append("qemu.log:\n" + "\n".join(f"  {line}" for line in qemu_out))
        tail = self.console_text().splitlines()[-20:]
        if tail:
            details.append("serial console (last lines):\n" + "\n".join(f"  {t}" for t in tail))
        details.append(f"full serial log: {self.serial_log}")
        self.stop()
        return MachineError("\n".join(details))

    # ---- commands ----------------------------------------------------------------------------

    def execute(self, command: str, timeout: float | None = DEFAULT_TIMEOUT) -> tuple[int, str]:
        """Run `command` with bash as root in the guest: (exit status, stdout).

        stderr is logged (and part of CommandFailed errors). The guest kills the command
        after `timeout` seconds; its status is then 124 (or 137 when it had to be killed).
        With None the guest sets no limit, but the host still gives up after 900 s + 60 s.
        Raises MachineError when the VM or the backdoor stops answering.
        """
        reply = self._run(command, timeout)
        return reply.status, reply.stdout

    def _run(self, command: str, timeout: float | None) -> Reply:
        self.connect()
        assert self._backdoor is not None
        guest_timeout = 0 if timeout is None else max(1, int(timeout))
        # The guest enforces the timeout; the host only notices a shell that stopped answering.
        host_timeout = (DEFAULT_TIMEOUT if timeout is None else timeout) + REPLY_MARGIN
        parser = ReplyParser()
        try:
            self._backdoor.send(encode_request(command, guest_timeout))
            deadline = time.monotonic() + host_timeout
            while True:
                line = self._backdoor.read_line(
                    deadline - time.monotonic(), alive=self._guest_alive
                )
                if line is None:
                    raise self._failure(f"no reply from the backdoor within {host_timeout:.0f}s")
                reply = parser.feed(line)
                if reply is not None:
                    break
        except (ChannelClosed, OSError) as error:
            detail = str(error)
            if self._kvm_failed is not None:
                # KVM failed after the guest came up: the command is lost, but the next
                # start (and the next run) uses TCG.
                if self.accel is None and qemu.may_fall_back():
                    qemu.fall_back_to_tcg(paths.state_dir() / "vm", self._kvm_failed)
                detail = f"KVM failed: {self._kvm_failed}"
            raise self._failure(f"the VM went away while running a command ({detail})") from None
        if reply.stderr.strip():
            for err_line in reply.stderr.rstrip().splitlines()[-20:]:
                ui.info(f"{self.name} stderr: {err_line}")
        return reply

    def succeed(self, *commands: str, timeout: float | None = DEFAULT_TIMEOUT) -> str:
        """Run each command; all must exit with status 0. Returns their stdout, concatenated.

        Raises CommandFailed (an AssertionError) with the status and output otherwise.
        """
        output = ""
        for command in commands:
            with ui.step(f"{self.name}: must succeed: {_short(command)}"):
                reply = self._run(command, timeout)
                if reply.status != 0:
                    raise CommandFailed(self.name, command, reply, "should succeed")
                output += reply.stdout
        return output

    def fail(self, *commands: str, timeout: float | None = DEFAULT_TIMEOUT) -> str:
        """Run each command; all must exit with a non-zero status. Returns their stdout."""
        output = ""
        for command in commands:
            with ui.step(f"{self.name}: must fail: {_short(command)}"):
                reply = self._run(command, timeout)
                if reply.status == 0:
                    raise CommandFailed(self.name, command, reply, "should fail")
                output += reply.stdout
        return output

    def wait_until_succeeds(self, command: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Repeat `command` until it exits with status 0 (at most `timeout` s); its stdout."""
        output = ""

        def check(_last_try: bool) -> bool:
            nonlocal output
            status, output = self.execute(command, timeout=timeout)
            return status == 0

        with ui.step(f"{self.name}: waiting for success: {_short(command)}"):
            retry(check, timeout, what=f"{command!r} to succeed on {self.name}")
        return output

    def wait_until_fails(self, command: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Repeat `command` until it exits with a non-zero status; its stdout."""
        output = ""

        def check(_last_try: bool) -> bool:
            nonlocal output
            status, output = self.execute(command, timeout=timeout)
            return status != 0

        with ui.step(f"{self.name}: waiting for failure: {_short(command)}"):
            retry(check, timeout, what=f"{command!r} to fail on {self.name}")
        return output

    def systemctl(self, arguments: str) -> tuple[int, str]:
        """`systemctl ARGUMENTS` in the guest: (exit status, stdout)."""
        return self.execute(f"systemctl {arguments}")

    def get_unit_property(self, unit: str, name: str) -> str:
        """One property of a unit (`systemctl show -P NAME UNIT`)."""
        return self.succeed(f"systemctl show -P {shlex.quote(name)} {shlex.quote(unit)}").strip()

    def wait_for_unit(self, unit: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until `unit` is active.

        Raises UnitFailed at once when the unit fails, or when it is inactive while systemd
        has no job queued at all (the boot is over and nothing will start it; as in NixOS).
        """
        quoted = shlex.quote(unit)

        def check(_last_try: bool) -> bool:
            status, out = self.execute(f"systemctl show -P ActiveState {quoted}", timeout=60)
            state = out.strip()
            if state == "failed":
                _, log = self.execute(f"journalctl -b -u {quoted} -n 30 --no-pager")
                raise UnitFailed(f"{self.name}: unit {unit} failed\n{log}")
            if state == "inactive":
                jobs_status, jobs = self.execute("systemctl list-jobs --no-legend", timeout=60)
                if jobs_status == 0 and not jobs.strip():
                    # The unit may have become active between the two questions (its job was
                    # the last one): ask again before calling it a failure.
                    _, again = self.execute(f"systemctl show -P ActiveState {quoted}", timeout=60)
                    if again.strip() == "active":
                        return True
                    raise UnitFailed(f"{self.name}: unit {unit} is inactive and no job is queued")
            return status == 0 and state == "active"

        with ui.step(f"{self.name}: waiting for unit {unit}"):
            retry(check, timeout, what=f"unit {unit} on {self.name}")

    def wait_for_open_port(
        self, port: int, address: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Wait until something in the guest accepts TCP connections on `address:port`."""
        probe = f"timeout 5 bash -c {shlex.quote(f'exec 3<>/dev/tcp/{address}/{port}')}"

        def check(_last_try: bool) -> bool:
            return self.execute(probe, timeout=30)[0] == 0

        with ui.step(f"{self.name}: waiting for TCP port {address}:{port}"):
            retry(check, timeout, what=f"port {address}:{port} on {self.name}")

    def wait_for_closed_port(
        self, port: int, address: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Wait until nothing in the guest accepts TCP connections on `address:port`."""
        probe = f"timeout 5 bash -c {shlex.quote(f'exec 3<>/dev/tcp/{address}/{port}')}"

        def check(_last_try: bool) -> bool:
            return self.execute(probe, timeout=30)[0] != 0

        with ui.step(f"{self.name}: waiting until TCP port {address}:{port} closes"):
            retry(check, timeout, what=f"port {address}:{port} to close on {self.name}")

    # ---- the serial console ------------------------------------------------------------------

    def console_text(self) -> str:
        """Everything the serial console printed since the last start()."""
        return self._serial.text() if self._serial is not None else ""

    def wait_for_console_text(self, regex: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Wait until the serial console prints text matching `regex`; returns the match.

        Matching starts after the previous match (or the last start() or reboot()), so
        waiting twice for the same text waits for it to appear twice. Event-driven: wakes when
        output arrives.
        """
        with ui.step(f"{self.name}: waiting for console text {regex!r}"):
            if self._process is None:
                self.start()
            deadline = time.monotonic() + timeout
            while True:
                assert self._serial is not None
                try:
                    found = self._serial.wait_for(
                        regex, max(0.0, deadline - time.monotonic()), start=self._console_pos,
                        alive=self._guest_alive,
                    )
                    break
                except ChannelClosed:
                    if self._restart_after_exit():
                        continue  # the new boot's console, from its start
                    raise self._failure(f"QEMU exited while waiting for {regex!r}") from None
            if found is None:
                raise WaitTimeout(
                    f"{self.name}: {regex!r} did not appear on the console within {timeout:.0f}s"
                    f" (serial log: {self.serial_log})"
                )
            self._console_pos = found.end()
            return found.group(0)

    def send_console_text(self, text: str) -> None:
        """Type `text` on the serial console, as someone at a terminal would (a newline is
        Enter): for a prompt shown there before the backdoor is up, e.g. a passphrase."""
        with ui.step(f"{self.name}: typing {len(text)} characters on the serial console"):
            if self._serial is None:
                raise MachineError(f"{self.name}: not running")
            try:
                self._serial.send(text.encode())
            except (ChannelClosed, OSError) as error:
                raise self._failure(f"could not type on the serial console: {error}") from None

    # ---- QEMU monitor ------------------------------------------------------------------------

    def send_monitor_command(self, command: str) -> str:
        """Run a QEMU (HMP) monitor command, e.g. `sendkey ctrl-alt-delete`; its output."""
        if self._qmp is None:
            raise MachineError(f"{self.name}: not running")
        try:
            result = self._qmp.command("human-monitor-command", **{"command-line": command})
        except (QmpError, OSError) as error:
            raise self._failure(f"monitor command {command!r} failed: {error}") from None
        return str(result or "")

    # ---- files -------------------------------------------------------------------------------

    def copy_from_host(self, source: Path | str, target: str) -> None:
        """Copy a host file or directory to the path `target` in the guest (modes kept)."""
        source = Path(source)
        with ui.step(f"{self.name}: copying {source} to {target}"):
            if not source.exists():
                raise FileNotFoundError(source)
            script = ["set -e"]
            for host_path, guest_path in _walk(source, target):
                quoted = shlex.quote(guest_path)
                if host_path.is_dir():
                    script.append(f"mkdir -p {quoted}")
                    continue
                data = base64.encodebytes(host_path.read_bytes()).decode()
                mode = oct(host_path.stat().st_mode & 0o7777)[2:]
                script += [
                    f'mkdir -p "$(dirname {quoted})"',
                    f"base64 -d > {quoted}.sonix-tmp <<'SONIX_EOF'\n{data}SONIX_EOF",
                    f"chmod {mode} {quoted}.sonix-tmp",
                    f"mv -f {quoted}.sonix-tmp {quoted}",
                ]
            reply = self._run("\n".join(script) + "\n", DEFAULT_TIMEOUT)
            if reply.status != 0:
                raise CommandFailed(self.name, f"copy to {target}", reply, "should succeed")

    def copy_from_machine(self, source: str, target: Path | str) -> None:
        """Copy a file or directory at `source` in the guest to `target` on the host."""
        target = Path(target)
        # One listing line per entry: kind, octal mode, base64 path, base64 content.
        lister = rf"""
set -e
emit() {{
  if [ -d "$1" ]; then
    printf 'D %s %s\n' "$(stat -c %a "$1")" "$(printf %s "$2" | base64 -w0)"
  elif [ -f "$1" ]; then
    printf 'F %s %s ' "$(stat -c %a "$1")" "$(printf %s "$2" | base64 -w0)"
    base64 -w0 "$1"; printf '\n'
  fi
}}
src={shlex.quote(source)}
[ -e "$src" ] || {{ echo "no such file or directory: $src" >&2; exit 1; }}
emit "$src" .
if [ -d "$src" ]; then
  cd "$src"; shopt -s globstar dotglob nullglob
  for f in **; do emit "$f" "$f"; done
fi
"""
        with ui.step(f"{self.name}: copying {source} to {target}"):
            reply = self._run(lister, DEFAULT_TIMEOUT)
            if reply.status != 0:
                raise CommandFailed(self.name, f"copy from {source}", reply, "should succeed")
            for line in reply.stdout.splitlines():
                kind, mode, name, *rest = line.split(" ")
                relative = base64.b64decode(name).decode()
                path = target if relative == "." else target / relative
                if kind == "D":
                    path.mkdir(parents=True, exist_ok=True)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(base64.b64decode(rest[0] if rest else ""))
                os.chmod(path, int(mode, 8))

    # ---- logging -----------------------------------------------------------------------------

    def log(self, message: str) -> None:
        """A line in the test log, attributed to this machine."""
        ui.info(f"{self.name}: {message}")

    @contextlib.contextmanager
    def nested(self, title: str) -> Iterator[None]:
        """A timed log scope for a group of steps: `with machine.nested("checking x"): …`."""
        with ui.step(f"{self.name}: {title}"):
            yield


def _walk(source: Path, target: str) -> Iterator[tuple[Path, str]]:
    yield source, target
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            yield path, f"{target.rstrip('/')}/{path.relative_to(source).as_posix()}"

