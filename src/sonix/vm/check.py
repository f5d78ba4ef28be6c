"""`sonix run --check`: boot an image headless and read its boot report from the serial console.

A real image has no backdoor and nobody can log in, so the image reports on itself: the
`sonix.report` system credential (SMBIOS type 11) enables `sonix-boot-report.service`
(modules/testing/boot-report.nix), which waits for the end of the boot and for
boot-complete.target, prints the systemd-analyze phases and the failed units between markers
on ttyS0, and powers off. The host waits for the markers, event-driven, on the serial socket.
The end marker also carries what the guest sees of its chain of trust: the Secure Boot state
(its `SecureBoot`/`SetupMode` EFI variables), the TPM, and whether `/` and `/var` are on
dm-crypt. Images built before those fields existed report them as `unknown`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from sonix import paths, process, ui
from sonix.vm import qemu, swtpm
from sonix.vm.console import Channel, ChannelClosed

CREDENTIAL = ("sonix.report", "1")
BEGIN = "SONIX-BOOT-REPORT-BEGIN"
END = "SONIX-BOOT-REPORT-END"
REPORT = re.compile(
    rf"{BEGIN}\r?\n(?P<body>.*?){END} state=(?P<state>\S*) failed=(?P<failed>\d+)"
    r" boot-complete=(?P<complete>\S+)(?P<more>(?: [\w-]+=\S*)*)"
    r"\r?\n",  # up to the newline: the line is complete
    re.S,
)
POWEROFF_TIMEOUT = 180.0


@dataclass(frozen=True)
class BootReport:
    """What the image said about its boot."""

    state: str  # `systemctl is-system-running`: running, degraded, …
    failed: int  # number of failed units
    boot_complete: str  # active when boot-complete.target (and its health checks) succeeded
    body: str  # systemd-analyze time and blame, the failed units (for people)
    # on (enforcing), setup (setup mode: no platform key), off, no-efi; or unknown
    secure_boot: str = "unknown"
    tpm: str = "unknown"  # tpm2, tpm1, none; or unknown
    root_encrypted: str = "unknown"  # yes when / is on dm-crypt, no; or unknown
    var_encrypted: str = "unknown"  # the same for /var (its own mount, or the root's)

    @property
    def healthy(self) -> bool:
        return self.state == "running" and self.failed == 0 and self.boot_complete == "active"

    def security_summary(self) -> str:
        """One line for people: Secure Boot, TPM, encryption."""
        return (f"Secure Boot {self.secure_boot}, TPM {self.tpm}, "
                f"root encrypted {self.root_encrypted}, /var encrypted {self.var_encrypted}")


def parse_report(text: str) -> BootReport | None:
    """The boot report in serial console text, or None when it is not (completely) there."""
    found = REPORT.search(text)
    if found is None:
        return None
    body = "\n".join(line.rstrip("\r") for line in found["body"].splitlines())
    more = dict(field.split("=", 1) for field in found["more"].split())
    return BootReport(
        state=found["state"],
        failed=int(found["failed"]),
        boot_complete=found["complete"],
        body=body,
        secure_boot=more.get("secure-boot", "unknown"),
        tpm=more.get("tpm", "unknown"),
        root_encrypted=more.get("root-encrypted", "unknown"),
        var_encrypted=more.get("var-encrypted", "unknown"),
    )


def check_spec(spec: qemu.VmSpec, serial_socket: Path) -> qemu.VmSpec:
    """`spec` for a check boot: serial on our socket, the report credential, no reboots."""
    return replace(
        spec,
        serial=serial_socket,
        credentials=(*spec.credentials, CREDENTIAL),
        no_reboot=True,
    )


class KvmFailed(Exception):
    """KVM could not run the guest (QEMU said so, or the guest stayed silent)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def boot_check(spec: qemu.VmSpec, timeout: float, cache_dir: Path | None = None) -> BootReport:
    """Boot `spec` headless until its report arrives and it powers off; the report.

    When KVM cannot run the guest, falls back to TCG for good (the answer is cached in
    `cache_dir`, see qemu.fall_back_to_tcg) and boots again, unless SONIX_ACCEL chose KVM.
    Raises SonixError (with the end of the serial log) when no report comes in `timeout` s.
    """
    try:
        return _boot_check_once(spec, timeout)
    except KvmFailed as failed:
        if not qemu.may_fall_back():
            raise qemu.kvm_error(spec.name, failed.reason) from None
        qemu.fall_back_to_tcg(cache_dir or paths.state_dir() / "vm", failed.reason)
        return _boot_check_once(replace(spec, accel="tcg"), timeout)


def _boot_check_once(spec: qemu.VmSpec, timeout: float) -> BootReport:
    with swtpm.running(spec.tpm):  # up before QEMU, stopped after it
        return _boot_check_qemu(spec, timeout)


def _boot_check_qemu(spec: qemu.VmSpec, timeout: float) -> BootReport:
    runtime = Path(tempfile.mkdtemp(prefix="sonix-check-"))
    # --debug shows the console while it boots; otherwise only the report is printed.
    serial = Channel(runtime / "serial", echo=sys.stderr if ui.debug_enabled() else None)
    serial.listen()
    argv = qemu.qemu_argv(check_spec(spec, runtime / "serial"))
    qemu_log = (spec.serial_log.parent if spec.serial_log else runtime) / "qemu.log"
    output = qemu.file_tail(qemu_log)
    with open(qemu_log, "ab") as log:
        qemu_process = launch(argv, log)
    watch = qemu.KvmWatch(
        spec.accel, output, lambda: len(serial.text()), qemu.silence_bound(spec)
    )
    started = time.monotonic()
    try:
        with ui.step(f"Booting {spec.name} ({spec.accel}) until its boot report"):
            try:
                found = serial.wait_for(
                    REPORT, timeout,
                    alive=lambda: qemu_process.poll() is None and watch.failure() is None,
                )
            except ChannelClosed:
                found = None
            report = parse_report(found.group(0)) if found else None
            if report is None:
                failure = watch.failure()
                if failure is not None:
                    raise KvmFailed(failure)
                raise _no_report(spec, serial.text(), qemu_process, timeout, qemu_log)
            ui.info(f"report after {time.monotonic() - started:.1f}s")
        with ui.step("Waiting for the power-off"):
            try:
                qemu_process.wait(POWEROFF_TIMEOUT)
            except subprocess.TimeoutExpired:
                ui.info(f"still running {POWEROFF_TIMEOUT:.0f}s after the report: stopping QEMU")
        return report
    finally:
        process.stop(qemu_process, grace=0)
        serial.close()
        shutil.rmtree(runtime, ignore_errors=True)


def launch(argv: list[str], log: BinaryIO) -> process.Stoppable:
    """Start QEMU headless, its output to `log` (unit tests replace this)."""
    return process.spawn(argv, stdout=log, stderr=subprocess.STDOUT)


def _no_report(
    spec: qemu.VmSpec, text: str, qemu_process: process.Stoppable, timeout: float, log: Path
) -> ui.SonixError:
    if qemu_process.poll() is not None:
        output = "\n".join(log.read_text(errors="replace").strip().splitlines()[-10:])
        what = f"QEMU exited with status {qemu_process.poll()} before the boot report"
        if output:
            what += ":\n" + output
    else:
        what = f"no boot report on the serial console within {timeout:.0f}s"
    tail = "\n".join(f"  {line}" for line in text.splitlines()[-25:])
    where = f" (whole log: {spec.serial_log})" if spec.serial_log else ""
    return ui.SonixError(
        f"{what}\nlast lines of the serial console{where}:\n{tail}",
        hint="the image needs modules/testing/boot-report.nix (sonix-boot-report.service); "
        "emergency mode or a hang above means the boot itself failed",
    )
