"""The software TPM 2.0 of a VM: swtpm, from the host's Debian packages.

One swtpm runs for each QEMU process, started before it (QEMU connects to its control socket
at start-up and fails without it) and stopped after it. QEMU itself tells swtpm to shut down
when it exits, and `--terminate` ends swtpm when QEMU vanishes without a word (killed: a
simulated power cut), so swtpm does not outlive its VM; `stop()` makes sure, and the kernel
kills it with sonix (process.spawn). Each start of QEMU (a reboot under -no-reboot, a power
cycle, the fallback to TCG) therefore gets a new swtpm on the same state directory, which
keeps the TPM's permanent state (`tpm2-00.permall`: seeds, NV indices, the persistent
objects) across power cycles like a real TPM chip. The state directory lives beside the VM's
disk.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import BinaryIO

from sonix import process, ui
from sonix.vm.qemu import Tpm

SWTPM = "swtpm"
SWTPM_SETUP = "swtpm_setup"
# The PCR banks a new TPM activates: swtpm_setup's own default, and the one bank systemd
# measures into and seals with. A swtpm started on an empty state directory without
# swtpm_setup activates all four (sha1, sha256, sha384, sha512): then the firmware, the stub
# and every systemd-pcrphase hash each measurement four times, which under TCG costs seconds
# of boot (docs/benchmarks/secure-boot.md).
PCR_BANKS = "sha256"
MANUFACTURE_TIMEOUT = 60.0
SWTPM_HINT = "install the `swtpm` and `swtpm-tools` packages (./sonix installs them on first use)"
# swtpm creates its socket within milliseconds; a loaded host may take a few seconds.
START_TIMEOUT = 10.0
STOP_GRACE = 5.0


def require_swtpm() -> str:
    """The swtpm binary, or an error that says which package to install."""
    path = shutil.which(SWTPM)
    if path is None:
        raise ui.die(f"{SWTPM} was not found (needed for a VM with a TPM)", hint=SWTPM_HINT)
    return path


def swtpm_argv(tpm: Tpm) -> list[str]:
    """The swtpm command line for `tpm` (pure). swtpm's options are comma-separated and it
    has no escape for a comma, hence the check."""
    for path in (tpm.state, tpm.socket, tpm.log):
        if "," in str(path):
            raise ui.die(f"swtpm cannot use a path with a comma: {path}",
                         hint="choose a state directory without commas (--state-dir)")
    return [
        SWTPM, "socket", "--tpm2",
        "--tpmstate", f"dir={tpm.state}",
        "--ctrl", f"type=unixio,path={tpm.socket}",
        # End when QEMU's connection ends without a shutdown command (QEMU was killed).
        "--terminate",
        "--log", f"file={tpm.log},level=1",
    ]


def start(tpm: Tpm, timeout: float = START_TIMEOUT) -> process.Child:
    """Start swtpm for `tpm` and return once its control socket exists (QEMU may connect).

    Raises SonixError (with swtpm's log) when it exits or makes no socket within `timeout` s.
    """
    argv = swtpm_argv(tpm)
    require_swtpm()
    tpm.state.mkdir(parents=True, exist_ok=True)
    if not (tpm.state / STATE_FILE).exists():
        manufacture(tpm)
    tpm.socket.unlink(missing_ok=True)  # a socket left by a killed swtpm is not a sign of life
    with open(tpm.log, "ab") as log:
        child = launch(argv, log)
    deadline = time.monotonic() + timeout
    while not tpm.socket.exists():
        if child.poll() is not None:
            raise _failed(tpm, f"swtpm exited with status {child.returncode} before it was ready")
        if time.monotonic() >= deadline:
            process.stop(child, grace=0)
            raise _failed(tpm, f"swtpm made no socket at {tpm.socket} within {timeout:.0f}s")
        time.sleep(0.02)
    return child


STATE_FILE = "tpm2-00.permall"  # the TPM's permanent state: seeds, NV indices, PCR banks


def manufacture_argv(tpm: Tpm) -> list[str]:
    """swtpm_setup's command line that makes a new TPM in `tpm.state` (pure)."""
    return [SWTPM_SETUP, "--tpm2", "--tpmstate", str(tpm.state), "--pcr-banks", PCR_BANKS,
            "--logfile", str(tpm.log)]


def manufacture(tpm: Tpm) -> None:
    """Make a new TPM (a chip out of the factory) in the empty state directory: swtpm_setup,
    as libvirt does, with only the sha256 PCR bank active. No endorsement certificate: nothing
    here asks the TPM to prove its make."""
    argv = manufacture_argv(tpm)
    if shutil.which(SWTPM_SETUP) is None:
        raise ui.die(f"{SWTPM_SETUP} was not found (it makes a VM's new TPM)", hint=SWTPM_HINT)
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=MANUFACTURE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise _failed(tpm, f"{SWTPM_SETUP} did not finish within {MANUFACTURE_TIMEOUT:.0f}s") \
            from None
    if result.returncode != 0 or not (tpm.state / STATE_FILE).exists():
        raise _failed(tpm, f"{SWTPM_SETUP} failed (status {result.returncode}): "
                           f"{(result.stderr or result.stdout).strip()}")


def launch(argv: list[str], log: BinaryIO) -> process.Child:
    """Start swtpm in the background, its output to `log` (unit tests replace this)."""
    return process.spawn(argv, stdout=log, stderr=subprocess.STDOUT)


def stop(child: process.Stoppable) -> None:
    """End swtpm: it saves its state on SIGTERM; SIGKILL after STOP_GRACE s."""
    process.stop(child, grace=STOP_GRACE)


@contextlib.contextmanager
def running(tpm: Tpm | None) -> Iterator[process.Child | None]:
    """swtpm for `tpm` while the block runs (QEMU's lifetime); nothing when `tpm` is None."""
    if tpm is None:
        yield None
        return
    child = start(tpm)
    try:
        yield child
    finally:
        stop(child)


def _failed(tpm: Tpm, what: str) -> ui.SonixError:
    try:
        lines = tpm.log.read_text(errors="replace").strip().splitlines()[-10:]
    except OSError:
        lines = []
    detail = "".join(f"\n  {line}" for line in lines)
    return ui.SonixError(f"{what}{detail}\n(swtpm log: {tpm.log})",
                         f"run it by hand to see why: {process.command_line(swtpm_argv(tpm))}")
