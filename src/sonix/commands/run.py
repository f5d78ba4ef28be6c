"""`sonix run CONFIG`: build the system and boot it in QEMU (`--check`: boot, report, power off)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO

from sonix import paths, process, ui
from sonix.vm import check, qemu, swtpm

DEFAULT_DISK_SIZE = "4G"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="build a configuration and boot it in QEMU (serial console on this terminal)",
        description="Builds CONFIG and boots its disk image in QEMU with the serial console "
        "attached (Ctrl-a x quits, Ctrl-a c is the QEMU monitor). KVM is used when a guest "
        "really runs under it here, TCG otherwise. The VM's disk (a copy of the image, "
        "enlarged: the root partition is created on first boot) and its UEFI variables are "
        "kept in the state directory between runs, like a real machine's; a new image "
        "starts a fresh disk. --secure-boot boots OVMF's Secure Boot firmware (in setup "
        "mode until keys are enrolled), --tpm adds a software TPM 2.0 (swtpm); both keep "
        "their state in the state directory too. With --check the VM boots headless "
        "instead: it prints the systemd-analyze phases, the failed units and the Secure "
        "Boot, TPM and encryption state, powers off, and the exit status is 0 only when the "
        "system came up healthy.",
    )
    parser.add_argument("config", type=Path, help="the configuration (a .nix module file)")
    parser.add_argument(
        "--check", action="store_true", help="boot headless, report the boot, power off"
    )
    parser.add_argument("--memory", type=int, default=2048, metavar="MiB", help="RAM (2048)")
    parser.add_argument("--cpus", type=int, default=2, metavar="N", help="virtual CPUs (2)")
    parser.add_argument(
        "--disk-size", default=DEFAULT_DISK_SIZE, metavar="SIZE",
        help=f"size of the VM's disk, e.g. 4G ({DEFAULT_DISK_SIZE})",
    )
    parser.add_argument(
        "--state-dir", type=Path, metavar="DIR",
        help="where the VM's disk, firmware variables and serial log live "
        "(default: .sonix/vm/<config name>)",
    )
    parser.add_argument(
        "--forward", action="append", default=[], metavar="HOST:GUEST",
        help="forward host 127.0.0.1:HOST to guest TCP port GUEST (repeatable), e.g. 2222:22",
    )
    parser.add_argument(
        "--secure-boot", action="store_true",
        help="boot OVMF's Secure Boot firmware (SMM on); new variables are in setup mode",
    )
    parser.add_argument(
        "--tpm", action="store_true",
        help="add a software TPM 2.0 (swtpm; its state is kept in the state directory)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, metavar="S",
        help="--check: seconds to wait for the boot report (900; TCG is slow)",
    )
    parser.set_defaults(func=run)


def parse_forward(text: str) -> qemu.PortForward:
    host, sep, guest = text.partition(":")
    if not sep or not host.isdigit() or not guest.isdigit():
        raise ui.die(f"--forward {text}: expected HOST:GUEST port numbers", hint="e.g. 2222:22")
    return qemu.PortForward(host_port=int(host), guest_port=int(guest))


def run(args: argparse.Namespace) -> int:
    config: Path = args.config
    if not config.exists():
        raise ui.die(f"configuration {config} does not exist", hint="give a .nix module file")
    if args.memory < 256 or args.cpus < 1:
        raise ui.die("--memory must be at least 256 (MiB) and --cpus at least 1")
    size = qemu.parse_size(args.disk_size)
    forwards = tuple(parse_forward(f) for f in args.forward)
    # Host problems first: they should not wait for a build.
    qemu.require_qemu()
    qemu.find_ovmf(secure_boot=args.secure_boot)
    if args.tpm:
        swtpm.require_swtpm()

    from sonix.build import build_system  # the image builder (its own module, its own owner)

    result = build_system(config)
    state: Path = args.state_dir or paths.state_dir() / "vm" / config.stem
    state.mkdir(parents=True, exist_ok=True)
    cache = paths.state_dir() / "vm"
    with ui.step("Preparing the VM"):
        accel = qemu.accelerator(cache, qemu.image_kernel(result.toplevel))
        firmware = qemu.prepare_firmware(state, secure_boot=args.secure_boot)
        disk = qemu.prepare_disk(result.image, state, size)
        ui.info(f"accelerator: {accel}; disk: {disk} ({size // qemu.MiB} MiB)")
    # Unix socket paths are limited to 108 bytes: swtpm's lives in a short temporary dir.
    runtime = Path(tempfile.mkdtemp(prefix="sonix-run-"))
    try:
        return _boot(args, config, accel, firmware, disk, forwards, state, cache, runtime)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def _boot(
    args: argparse.Namespace, config: Path, accel: str, firmware: qemu.Firmware, disk: Path,
    forwards: tuple[qemu.PortForward, ...], state: Path, cache: Path, runtime: Path,
) -> int:
    tpm = (qemu.Tpm(state=state / "tpm", socket=runtime / "swtpm", log=state / "swtpm.log")
           if args.tpm else None)
    spec = qemu.VmSpec(
        name=config.stem,
        accel=accel,
        memory_mib=args.memory,
        cpus=args.cpus,
        firmware=firmware,
        disk=disk,
        tpm=tpm,
        serial_log=state / "serial.log",
        port_forwards=forwards,
    )
    if args.check:
        report = check.boot_check(spec, args.timeout, cache)
        print(report.body)
        verdict = "healthy" if report.healthy else "NOT healthy"
        print(
            f"{config.stem}: {verdict} (state {report.state}, {report.failed} failed units, "
            f"boot-complete.target {report.boot_complete})"
        )
        print(f"{config.stem}: {report.security_summary()}")
        return 0 if report.healthy else 1
    ui.info("serial console follows; Ctrl-a x quits, Ctrl-a c switches to the QEMU monitor")
    status, failure = run_interactive(spec, state / "qemu.log")
    if failure is None:
        return status
    if not qemu.may_fall_back():
        raise qemu.kvm_error(spec.name, failure)
    qemu.fall_back_to_tcg(cache, failure)
    return run_interactive(replace(spec, accel="tcg"), state / "qemu.log")[0]


def run_interactive(spec: qemu.VmSpec, log: Path) -> tuple[int, str | None]:
    """QEMU with the serial console on this terminal, until it exits: (exit status, None);
    or, when KVM cannot run the guest, QEMU is stopped: (its status, why KVM failed).

    QEMU's stderr is copied to the terminal and to `log`, and read for KVM failures; the
    guest's silence is seen in the serial log QEMU writes. After a KVM failure, the rest of
    QEMU's report (a register dump) goes to `log` only.
    """
    with swtpm.running(spec.tpm):  # up before QEMU, stopped after it
        return _run_qemu_interactive(spec, log)


def _run_qemu_interactive(spec: qemu.VmSpec, log: Path) -> tuple[int, str | None]:
    argv = qemu.qemu_argv(spec)
    assert spec.serial_log is not None
    serial_size = _growth(spec.serial_log)
    # The terminal belongs to QEMU (the serial console): stdin and stdout are this terminal's,
    # and QEMU stays in our session, the terminal's.
    qemu_process = process.spawn(
        argv, stdin=sys.stdin, stdout=sys.stdout, stderr=subprocess.PIPE, new_session=False
    )
    assert qemu_process.stderr is not None
    copier = _StderrCopy(qemu_process.stderr, log)
    copier.start()
    watch = qemu.KvmWatch(spec.accel, copier.text, serial_size, qemu.silence_bound(spec))
    while True:
        try:
            status = qemu_process.wait(0.5)
            copier.join(5)
            return status, None
        except subprocess.TimeoutExpired:
            pass
        failure = watch.failure()
        if failure is not None:
            # SIGTERM first: QEMU then gives the terminal back in its normal mode.
            status = process.stop(qemu_process, grace=10)
            copier.join(5)
            return status, failure


def _growth(path: Path) -> Callable[[], int]:
    """A function returning how many bytes were appended to `path` since now."""
    start = path.stat().st_size if path.exists() else 0

    def size() -> int:
        try:
            return max(0, path.stat().st_size - start)
        except OSError:
            return 0

    return size


class _StderrCopy(threading.Thread):
    """Copies QEMU's stderr to the terminal and a log file, and keeps it for KvmWatch."""

    def __init__(self, stream: IO[bytes], log: Path) -> None:
        super().__init__(name="qemu-stderr", daemon=True)
        self.stream = stream
        self.log = log
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._kvm_failed = False

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def run(self) -> None:
        with open(self.log, "ab") as log:
            for raw in self.stream:
                line = raw.decode(errors="replace")
                with self._lock:
                    self._lines.append(line)
                log.write(raw)
                log.flush()
                # From the failure on (a register dump follows), the log only: the failure
                # is said once, by fall_back_to_tcg.
                self._kvm_failed = self._kvm_failed or qemu.kvm_failure(line) is not None
                if not self._kvm_failed:
                    sys.stderr.write(line)
                    sys.stderr.flush()
