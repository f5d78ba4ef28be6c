"""QEMU on the host: which accelerator really works, OVMF, the per-VM disk and the argv.

Everything that decides *how* a VM is started is data (`VmSpec`) and one pure function
(`qemu_argv`) turns it into the command line, so unit tests can assert the exact argv. The
functions that touch the host (probing KVM, copying disks, finding OVMF) give errors that say
what to install or free up.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sonix import process, ui

QEMU = "qemu-system-x86_64"
QEMU_HINT = "install the `qemu-system-x86` package (./sonix installs it on first use)"
OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE = "OVMF_CODE_4M.fd"
# The Secure Boot build: it needs SMM (the variable store is then writable only from SMM, so
# the OS cannot change the keys behind the firmware's back). Its vars template is the plain
# one, which holds no keys: the firmware starts in setup mode and a boot loader may enrol them.
OVMF_CODE_SECURE_BOOT = "OVMF_CODE_4M.secboot.fd"
OVMF_VARS = "OVMF_VARS_4M.fd"
OVMF_HINT = "install the `ovmf` package (apt-get install ovmf); it provides /usr/share/OVMF"

# ---- KVM or TCG ----------------------------------------------------------------------------
#
# Whether KVM runs a guest is only known by running one. Hosts exist (nested virtualization)
# where /dev/kvm opens and a few real-mode instructions run, yet OVMF dies at its first x87
# instruction with "KVM internal error. Suberror: 1 … emulation failure" (QEMU then stays
# alive with the guest paused, and nothing is printed), and a kernel booted with -kernel dies
# the same way. So the probe boots what a real boot runs, under the CPU model a real KVM boot
# uses (`-cpu host`): the real OVMF until it prints on the serial console, then a Linux kernel
# until it prints "Linux version". And because a probe can still miss something, the runner
# and the test driver watch every KVM guest (`KvmWatch`) and fall back to TCG for good when
# QEMU reports a KVM failure or the guest stays silent (`fall_back_to_tcg`).

# Lines on QEMU's stderr that say KVM cannot run the guest: the emulation failure, the MSR
# write that `-cpu host` aborts on in some nested hosts, a failed KVM_RUN.
KVM_FAILURE_SIGNS = ("KVM internal error", "failed to set MSR", "kvm run failed")
# A KVM guest whose serial console stays empty this long after QEMU started is not running:
# OVMF prints early in its boot (within 20 s even under TCG here), a kernel with
# console=ttyS0 prints "Linux version" as its console comes up.
KVM_SILENCE = 30.0
# Each probe guest gets this long to show its sign of life (a failing one ends in ~0.1 s).
PROBE_TIMEOUT = 10.0
# In the cache key: answers of an older, weaker probe are not trusted.
PROBE_VERSION = "2"
PROBE_KERNEL_SIGN = "Linux version"
CACHE_FILE = "accel"


def kvm_failure(qemu_output: str) -> str | None:
    """The line of QEMU's output that says KVM cannot run the guest, or None."""
    for line in qemu_output.splitlines():
        if any(sign in line for sign in KVM_FAILURE_SIGNS):
            return line.strip()
    return None


def forced_accelerator() -> str | None:
    """`SONIX_ACCEL` (kvm or tcg) when it is set: then nothing is probed or changed."""
    forced = os.environ.get("SONIX_ACCEL")
    if not forced:
        return None
    if forced not in ("kvm", "tcg"):
        raise ui.die(f"SONIX_ACCEL={forced} is not an accelerator", hint="use kvm or tcg")
    return forced


class _Fallback:
    """This process fell back to TCG (the cache may be unwritable: it still holds here)."""

    reason: str | None = None


def _cache_key() -> str:
    """The probe's answer holds for this boot of the host, this QEMU and this OVMF."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown"
    ids = [f"probe {PROBE_VERSION}", boot_id]
    for path in (shutil.which(QEMU) or QEMU, str(OVMF_DIR / OVMF_CODE)):
        try:
            stat = os.stat(path)
            ids.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
        except OSError:
            ids.append(path)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _read_cache(cache: Path, key: str) -> str | None:
    """The cached answer (`KEY kvm|tcg [why]`) for this key, or None."""
    try:
        cached_key, answer, *_ = cache.read_text().split(maxsplit=2)
    except (OSError, ValueError):
        return None
    return answer if cached_key == key and answer in ("kvm", "tcg") else None


def _write_cache(cache: Path, answer: str, why: str = "") -> None:
    """Atomically: several test processes may probe or fall back at once."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
    tmp.write_text(f"{_cache_key()} {answer} {' '.join(why.split())}".rstrip() + "\n")
    tmp.replace(cache)


def accelerator(cache_dir: Path, kernel: Path | None = None) -> str:
    """`kvm` when a guest really runs under KVM here, else `tcg`; the answer is cached.

    `kernel` (a bzImage) is booted by the probe too; without one the host's newest
    /boot/vmlinuz-* is, or only OVMF when there is none. `SONIX_ACCEL=kvm|tcg` overrides the
    probe and the fallback (e.g. to compare both on one host).
    """
    forced = forced_accelerator()
    if forced:
        return forced
    if _Fallback.reason is not None:
        return "tcg"
    cache = cache_dir / CACHE_FILE
    cached = _read_cache(cache, _cache_key())
    if cached is not None:
        return cached
    answer, why = _probe_kvm(cache_dir, kernel or host_kernel())
    _write_cache(cache, answer, why)
    return answer


def may_fall_back() -> bool:
    """Whether a KVM failure may switch to TCG (not when SONIX_ACCEL chose the accelerator)."""
    return forced_accelerator() is None


def fall_back_to_tcg(cache_dir: Path, reason: str) -> None:
    """KVM failed a real guest: TCG from now on, for this process and (cached) the next ones.

    Says so once per process, in one line. The caller restarts its guest under TCG.
    """
    if _Fallback.reason is not None:
        return
    _Fallback.reason = reason
    cache = cache_dir / CACHE_FILE
    try:
        _write_cache(cache, "tcg", f"fallback: {reason}")
        where = f"remembered in {cache}"
    except OSError as error:
        where = f"could not remember it in {cache}: {error.strerror}"
    ui.info(f"KVM cannot run guests on this host ({reason}): restarting under TCG, and using "
            f"TCG from now on ({where}; SONIX_ACCEL=kvm forces KVM)")


KVM_FORCED_HINT = "unset SONIX_ACCEL (sonix then falls back to TCG) or set SONIX_ACCEL=tcg"


def kvm_error(name: str, reason: str) -> ui.SonixError:
    """The error when KVM failed but SONIX_ACCEL=kvm forbids the fallback."""
    return ui.SonixError(f"{name}: KVM cannot run this guest: {reason}", hint=KVM_FORCED_HINT)


def host_kernel(boot: Path = Path("/boot")) -> Path | None:
    """The host's newest readable /boot/vmlinuz-*, for the probe (None when there is none)."""
    found = [p for p in boot.glob("vmlinuz-*") if os.access(p, os.R_OK)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def image_kernel(toplevel: Path) -> Path | None:
    """The kernel in a built system (`toplevel/usr/boot/vmlinuz-*`), for the probe."""
    found = sorted((toplevel / "usr" / "boot").glob("vmlinuz-*"))
    return found[-1] if found else None


@dataclass(frozen=True)
class ProbeGuest:
    """One guest of the probe: what it is, and the serial text that shows it runs."""

    what: str
    argv: tuple[str, ...]
    sign: str  # a substring of its serial output; "" means any output at all


def probe_guests(
    work: Path, ovmf: tuple[Path, Path] | None, kernel: Path | None
) -> list[ProbeGuest]:
    """OVMF (code, vars template) under `-cpu host`, then `kernel`, each if there is one.

    Each guest's serial console goes to `work/<what>.serial` (QEMU writes the file itself).
    """
    common = [QEMU, "-accel", "kvm", "-cpu", "host", "-machine", "q35", "-m", "256",
              "-nodefaults", "-display", "none", "-no-reboot"]
    guests = []
    if ovmf is not None:
        vars_copy = work / "probe-vars.fd"
        ovmf_code, template = ovmf
        shutil.copyfile(template, vars_copy)
        code = _escape(str(ovmf_code))
        guests.append(ProbeGuest(
            what="OVMF",
            argv=(*common,
                  "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                  "-drive", f"if=pflash,format=raw,unit=1,file={_escape(str(vars_copy))}",
                  "-serial", f"file:{work / 'ovmf.serial'}"),
            sign="",
        ))
    if kernel is not None:
        guests.append(ProbeGuest(
            what=f"Linux ({kernel.name})",
            argv=(*common, "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1",
                  "-serial", f"file:{work / 'linux.serial'}"),
            sign=PROBE_KERNEL_SIGN,
        ))
    return guests


def _probe_kvm(work: Path, kernel: Path | None) -> tuple[str, str]:
    """(answer, why) of the probe: `kvm` only when every probe guest showed its sign."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        ui.debug("/dev/kvm is missing or not accessible: TCG")
        return "tcg", "no /dev/kvm"
    require_qemu()
    try:
        ovmf: tuple[Path, Path] | None = find_ovmf()
    except ui.SonixError:
        ovmf = None  # direct kernel boots need no firmware; image boots say what to install
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        guests = probe_guests(Path(tmp), ovmf, kernel)
        if not guests:
            ui.debug("KVM probe: neither OVMF nor a kernel to boot: TCG")
            return "tcg", "nothing to probe with"
        for guest in guests:
            serial = Path(guest.argv[-1].removeprefix("file:"))
            failure = run_probe_guest(guest, serial, PROBE_TIMEOUT)
            if failure is not None:
                ui.info(f"KVM is here but does not run {guest.what} ({failure}): using TCG")
                return "tcg", f"{guest.what}: {failure}"
            ui.debug(f"KVM probe: {guest.what} runs")
    if len(guests) == 1:
        ui.debug(f"KVM probe: only {guests[0].what} could be booted")
    return "kvm", "probe passed"


def run_probe_guest(guest: ProbeGuest, serial: Path, timeout: float) -> str | None:
    """None when `guest` showed its sign of life within `timeout` s, else what went wrong.

    Not process.run: a failing probe is an answer (TCG), not an error, and it may hang
    (after a KVM internal error QEMU stays alive). Polls two small files for a few seconds.
    """
    with tempfile.TemporaryFile() as errors:
        qemu_process = process.spawn(guest.argv, stdout=subprocess.DEVNULL, stderr=errors)
        deadline = time.monotonic() + timeout
        try:
            while True:
                errors.seek(0)
                output = errors.read().decode(errors="replace")
                failure = kvm_failure(output)
                if failure is not None:
                    return failure
                if _shows(serial, guest.sign):
                    return None
                if qemu_process.poll() is not None:
                    last = output.strip().splitlines()[-1:] or ["no output"]
                    return f"QEMU exited with status {qemu_process.returncode}: {last[0]}"
                if time.monotonic() >= deadline:
                    return f"no output on the serial console within {timeout:.0f}s"
                time.sleep(0.1)
        finally:
            process.stop(qemu_process, grace=0)


def _shows(serial: Path, sign: str) -> bool:
    try:
        text = serial.read_bytes().decode(errors="replace")
    except OSError:
        return False
    return sign in text if sign else bool(text)


class KvmWatch:
    """Whether a guest that QEMU runs under KVM is dead in the water.

    `qemu_output` returns what QEMU wrote (stderr) since it started, `serial_size` how many
    characters the guest wrote on its serial console. A KVM guest fails when QEMU reports a
    KVM failure (see KVM_FAILURE_SIGNS), or when the console stays empty for `silence` s
    (None: the guest may legitimately print nothing, e.g. a kernel without console=ttyS0).
    Under TCG nothing is watched.
    """

    def __init__(
        self,
        accel: str,
        qemu_output: Callable[[], str],
        serial_size: Callable[[], int],
        silence: float | None = KVM_SILENCE,
    ) -> None:
        self.accel = accel
        self.qemu_output = qemu_output
        self.serial_size = serial_size
        self.silence = silence
        self.started = time.monotonic()

    def failure(self) -> str | None:
        """Why KVM is not running this guest, or None (so far all is well)."""
        if self.accel != "kvm":
            return None
        line = kvm_failure(self.qemu_output())
        if line is not None:
            return f"QEMU said {line!r}"
        quiet = time.monotonic() - self.started
        if self.silence is not None and quiet >= self.silence and self.serial_size() == 0:
            return f"the guest printed nothing on its serial console for {quiet:.0f}s"
        return None


def prints_on_serial(spec: VmSpec) -> bool:
    """Whether the guest of `spec` is expected to print on its serial console at once: OVMF
    does; a kernel booted directly only with console=ttyS* and its messages not silenced
    (`quiet`, `loglevel=` below 4: then only its init might print, and maybe late)."""
    if spec.direct_boot is None:
        return True
    words = spec.direct_boot.append.split()
    silenced = "quiet" in words or any(
        w.startswith("loglevel=") and w.removeprefix("loglevel=") in ("0", "1", "2", "3")
        for w in words
    )
    return any(w.startswith("console=ttyS") for w in words) and not silenced


def silence_bound(spec: VmSpec) -> float | None:
    """KvmWatch's silence bound for `spec`."""
    return KVM_SILENCE if prints_on_serial(spec) else None


def file_tail(path: Path) -> Callable[[], str]:
    """A function returning what was appended to `path` since now (a log QEMU writes to)."""
    try:
        offset = path.stat().st_size
    except OSError:
        offset = 0

    def read() -> str:
        try:
            with open(path, "rb") as file:
                file.seek(offset)
                return file.read(1 << 20).decode(errors="replace")
        except OSError:
            return ""

    return read


def require_qemu() -> str:
    """The QEMU binary, or an error that says which package to install."""
    path = shutil.which(QEMU)
    if path is None:
        raise ui.die(f"{QEMU} was not found", hint=QEMU_HINT)
    return path


# ---- firmware -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Firmware:
    """OVMF: the read-only code and this VM's own copy of the variable store.

    `secure_boot`: `code` is the Secure Boot build, which QEMU must run with SMM and a
    secure flash (qemu_argv does so)."""

    code: Path
    vars: Path
    secure_boot: bool = False


def find_ovmf(directory: Path = OVMF_DIR, *, secure_boot: bool = False) -> tuple[Path, Path]:
    """(code, vars template) of the 4M OVMF build (its Secure Boot build with `secure_boot`),
    or an error naming the `ovmf` package."""
    code = directory / (OVMF_CODE_SECURE_BOOT if secure_boot else OVMF_CODE)
    template = directory / OVMF_VARS
    missing = [p for p in (code, template) if not p.is_file()]
    if missing:
        raise ui.die(f"UEFI firmware not found: {', '.join(map(str, missing))}", hint=OVMF_HINT)
    return code, template


def prepare_firmware(
    state: Path, directory: Path = OVMF_DIR, *, secure_boot: bool = False
) -> Firmware:
    """OVMF for the VM in `state`: its vars copy is made once and kept (boot entries persist,
    and so do Secure Boot keys once enrolled; a fresh copy is in setup mode, without keys).
    Both OVMF builds use the same vars layout, so one copy serves a VM booted either way."""
    code, template = find_ovmf(directory, secure_boot=secure_boot)
    vars_copy = state / "OVMF_VARS.fd"
    if not vars_copy.exists():
        shutil.copyfile(template, vars_copy)
    return Firmware(code=code, vars=vars_copy, secure_boot=secure_boot)


# ---- disk -----------------------------------------------------------------------------------

GiB = 1024**3
MiB = 1024**2


def parse_size(text: str) -> int:
    """`4G`, `512M`, `2048K` or bytes -> bytes."""
    units = {"K": 1024, "M": MiB, "G": GiB, "T": 1024 * GiB}
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        if value and value[-1] in units:
            return int(float(value[:-1]) * units[value[-1]])
        return int(value)
    except ValueError:
        raise ui.die(f"not a size: {text!r}", hint="write it like 4G, 512M or 1073741824") from None


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def prepare_disk(image: Path, state: Path, size: int) -> Path:
    """The VM's persistent disk: a sparse copy of `image`, enlarged to `size` bytes.

    The copy is kept between runs (the guest's root partition lives there) and recreated only
    when the image changes. The image must have room after its partitions: systemd-repart
    creates the root partition there on first boot.
    """
    if not image.is_file():
        raise ui.die(f"disk image {image} does not exist")
    disk = state / "disk.raw"
    stamp = state / "disk.source"
    source_id = f"{image.resolve()} {image.stat().st_size} {image.stat().st_mtime_ns}"
    if disk.exists() and stamp.exists() and stamp.read_text().strip() == source_id:
        if disk.stat().st_size < size:
            os.truncate(disk, size)
        return disk
    image_size = image.stat().st_size
    if size < image_size:
        raise ui.die(
            f"disk size {size // MiB} MiB is smaller than the image ({image_size // MiB} MiB)",
            hint="give a larger --disk-size (the root partition needs room after the image)",
        )
    need = _allocated(image) + 64 * MiB
    free = shutil.disk_usage(state).free
    if free < need:
        raise ui.die(
            f"not enough disk space in {state}: {free // MiB} MiB free, {need // MiB} MiB needed",
            hint="free some space or point --state-dir (SONIX_STATE_DIR) elsewhere",
        )
    if disk.exists():
        ui.info(f"image changed: starting from a fresh disk in {state}")
    tmp = disk.with_suffix(".tmp")
    process.run(["cp", "--sparse=always", "--reflink=auto", str(image), str(tmp)])
    os.chmod(tmp, 0o644)  # the store copy is read-only
    os.truncate(tmp, size)
    tmp.replace(disk)
    stamp.write_text(source_id + "\n")
    return disk


# ---- the command line -----------------------------------------------------------------------

# The backdoor is a virtserialport, not a virtconsole (/dev/hvc0): QEMU silently drops console
# output that its chardev cannot take at once (hw/char/virtio-console.c: "we should be queuing
# data ... rather than silently dropping console data on EAGAIN"), which corrupted large
# replies; a plain port is flow-controlled instead. It is also not a tty: no line discipline.
BACKDOOR_PORT = "org.sonix.backdoor"


@dataclass(frozen=True)
class DirectBoot:
    """Boot a kernel directly (`-kernel/-initrd/-append`), without firmware or a disk."""

    kernel: Path
    initrd: Path | None = None
    append: str = "console=ttyS0,115200"


@dataclass(frozen=True)
class PortForward:
    """Host 127.0.0.1:`host_port` -> guest `guest_port` (QEMU user networking)."""

    host_port: int
    guest_port: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class GuestForward:
    """Guest connects to `guest_addr:guest_port`, QEMU connects to host 127.0.0.1:`host_port`.

    The host side is always loopback: tests never reach anything else. Each guest connection
    gets its own host connection (QEMU starts `sonix.vm.relay` per connection), so HTTP
    clients work, and the host service may start after the VM.
    """

    guest_addr: str
    guest_port: int
    host_port: int


@dataclass(frozen=True)
class Nic:
    """A NIC on a VM-to-VM network: `socket` is the hub's unix socket (see network.Hub)."""

    socket: Path
    mac: str


@dataclass(frozen=True)
class Tpm:
    """A software TPM 2.0 (swtpm, see sonix.vm.swtpm): its permanent state lives in `state`
    (beside the VM's disk, so it survives power cycles), its control socket is `socket`
    (QEMU connects), its log goes to `log`."""

    state: Path
    socket: Path
    log: Path


@dataclass(frozen=True)
class VmSpec:
    """Everything that decides how one VM is started; `qemu_argv` turns it into argv."""

    name: str
    accel: str = "tcg"
    memory_mib: int = 2048
    cpus: int = 2
    firmware: Firmware | None = None
    disk: Path | None = None
    # A TPM 2.0 (tpm-tis): whoever starts QEMU starts its swtpm first (swtpm.running).
    tpm: Tpm | None = None
    direct_boot: DirectBoot | None = None
    # Serial console: "stdio" (interactive, with the QEMU monitor on Ctrl-A c) or the path of
    # a unix socket that the host listens on (QEMU connects). The log file gets every byte.
    serial: str | Path = "stdio"
    serial_log: Path | None = None
    # The test backdoor: a unix socket the host listens on; in the guest a virtio serial port
    # named BACKDOOR_PORT (/dev/virtio-ports/org.sonix.backdoor, /dev/vportNp1).
    backdoor: Path | None = None
    # QMP monitor: a unix socket that QEMU listens on.
    qmp: Path | None = None
    user_net: bool = True
    # The user network's address range (QEMU's default 10.0.2.0/24, host .2, DNS .3, DHCP from
    # .15). A guest forward's address must lie in it: "169.254.169.0/24" lets a test forward
    # the cloud metadata address 169.254.169.254.
    user_network: str | None = None
    user_net_mac: str = "52:54:00:12:34:56"
    # restrict=on: the guest reaches nothing through user networking but the forwards below.
    restrict: bool = True
    port_forwards: tuple[PortForward, ...] = ()
    guest_forwards: tuple[GuestForward, ...] = ()
    nics: tuple[Nic, ...] = ()
    # systemd credentials passed as SMBIOS type 11 strings (name -> value).
    credentials: tuple[tuple[str, str], ...] = ()
    no_reboot: bool = False
    # QEMU's i6300esb watchdog: a guest whose systemd sets RuntimeWatchdogSec= is reset when it
    # hangs (with -no-reboot, QEMU exits instead; the test driver then power-cycles it).
    watchdog: bool = True
    extra_args: tuple[str, ...] = field(default_factory=tuple)


def _escape(value: str) -> str:
    """QEMU option values: a comma is written as two."""
    return value.replace(",", ",,")


# The CPU model under TCG. `qemu64` boots about 20 % faster than `max` (86-97 s against
# 109-113 s to multi-user, one run; issue 8). Under both, a guest now and then dies in early
# boot with "Oops: int3" (sched_clock marking itself stable: the kernel patches its own code
# while the other vCPU runs it, a race in emulated SMP); the driver power-cycles it.
TCG_CPU = "qemu64"


def qemu_argv(spec: VmSpec) -> list[str]:
    """The QEMU command line for `spec` (pure: no host access)."""
    if spec.accel not in ("kvm", "tcg"):
        raise ValueError(f"unknown accelerator {spec.accel!r}")
    secure_boot = spec.firmware is not None and spec.firmware.secure_boot
    argv = [
        QEMU, "-name", _escape(spec.name),
        "-accel", spec.accel,
        "-machine", "q35,smm=on" if secure_boot else "q35",
        "-cpu", "host" if spec.accel == "kvm" else TCG_CPU,
        "-smp", str(spec.cpus), "-m", str(spec.memory_mib),
        "-nodefaults", "-display", "none",
        "-device", "virtio-rng-pci",
    ]
    if spec.watchdog and "i6300esb" not in spec.extra_args:
        # The action is QEMU's default, written out: a hung guest must be reset, not paused.
        # (Not twice when a caller's extra_args bring the device already.)
        argv += ["-device", "i6300esb", "-action", "watchdog=reset"]
    if spec.firmware is not None:
        code, variables = _escape(str(spec.firmware.code)), _escape(str(spec.firmware.vars))
        if secure_boot:
            # Only code running in SMM may write the flash: the variable store's protection
            # that the Secure Boot build relies on.
            argv += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
        argv += [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
        ]
    if spec.direct_boot is not None:
        argv += ["-kernel", str(spec.direct_boot.kernel)]
        if spec.direct_boot.initrd is not None:
            argv += ["-initrd", str(spec.direct_boot.initrd)]
        argv += ["-append", spec.direct_boot.append]
    if spec.disk is not None:
        argv += [
            "-drive", f"if=none,id=disk0,format=raw,file={_escape(str(spec.disk))}",
            "-device", "virtio-blk-pci,drive=disk0",
        ]
    if spec.tpm is not None:
        argv += [
            "-chardev", f"socket,id=chrtpm,path={_escape(str(spec.tpm.socket))}",
            "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
            "-device", "tpm-tis,tpmdev=tpm0",
        ]
    argv += _serial_args(spec)
    if spec.backdoor is not None:
        argv += [
            "-chardev", f"socket,id=backdoor,path={_escape(str(spec.backdoor))},server=off",
            "-device", "virtio-serial-pci",
            "-device", f"virtserialport,chardev=backdoor,name={BACKDOOR_PORT}",
        ]
    if spec.qmp is not None:
        argv += ["-qmp", f"unix:{_escape(str(spec.qmp))},server=on,wait=off"]
    argv += _network_args(spec)
    for name, value in spec.credentials:
        argv += ["-smbios", f"type=11,value={_escape(f'io.systemd.credential:{name}={value}')}"]
    if spec.no_reboot:
        argv.append("-no-reboot")
    argv += spec.extra_args
    return argv


def _serial_args(spec: VmSpec) -> list[str]:
    log = f",logfile={_escape(str(spec.serial_log))},logappend=on" if spec.serial_log else ""
    if spec.serial == "stdio":
        # mux: the monitor shares the terminal (Ctrl-A c); signal=off: Ctrl-C goes to the guest.
        return [
            "-chardev", f"stdio,id=serial0,mux=on,signal=off{log}",
            "-serial", "chardev:serial0",
            "-mon", "chardev=serial0,mode=readline",
        ]
    return [
        "-chardev", f"socket,id=serial0,path={_escape(str(spec.serial))},server=off{log}",
        "-serial", "chardev:serial0",
    ]


def _network_args(spec: VmSpec) -> list[str]:
    argv: list[str] = []
    if spec.user_net:
        options = ["user", "id=net0"]
        if spec.user_network is not None:
            options.append(f"net={spec.user_network}")
        if spec.restrict:
            options.append("restrict=on")
        for fwd in spec.port_forwards:
            options.append(f"hostfwd={fwd.protocol}:127.0.0.1:{fwd.host_port}-:{fwd.guest_port}")
        for gfwd in spec.guest_forwards:
            relay = f"{sys.executable} -m sonix.vm.relay {gfwd.host_port}"
            options.append(
                f"guestfwd=tcp:{gfwd.guest_addr}:{gfwd.guest_port}-cmd:{_escape(relay)}"
            )
        argv += ["-netdev", ",".join(options),
                 "-device", f"virtio-net-pci,netdev=net0,mac={spec.user_net_mac}"]
    for index, nic in enumerate(spec.nics, start=1):
        netdev = f"vlan{index}"
        argv += [
            "-netdev",
            f"stream,id={netdev},server=off,addr.type=unix,addr.path={_escape(str(nic.socket))}",
            "-device", f"virtio-net-pci,netdev={netdev},mac={nic.mac}",
        ]
    return argv


def mac_address(network: int, machine: int) -> str:
    """A locally administered MAC for `machine` on VM-to-VM network `network`."""
    return f"52:54:00:12:{network & 0xFF:02x}:{machine & 0xFF:02x}"


def check_host_tools(names: Sequence[str] = (QEMU,)) -> None:
    """Errors that say what to install, before anything is started."""
    for name in names:
        if name == QEMU:
            require_qemu()
        elif shutil.which(name) is None:
            raise ui.die(f"{name} was not found", hint="run ./sonix once: it installs host tools")
