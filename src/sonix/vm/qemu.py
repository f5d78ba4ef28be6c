"""QEMU on the host: which accelerator really works, OVMF, the per-VM disk and the argv.

Everything that decides *how* a VM is started is data (`VmSpec`) and one pure function
(`qemu_argv`) turns it into the command line, so unit tests can assert the exact argv. The
functions that touch the host (probing KVM, copying disks, finding OVMF) give errors that say
what to install or free up.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sonix import process, ui

QEMU = "qemu-system-x86_64"
QEMU_HINT = "install the `qemu-system-x86` package (./sonix installs it on first use)"
OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE = "OVMF_CODE_4M.fd"
OVMF_VARS = "OVMF_VARS_4M.fd"
OVMF_HINT = "install the `ovmf` package (apt-get install ovmf); it provides /usr/share/OVMF"

# The KVM probe: a 64 KiB "BIOS" whose reset vector writes 0x31 to the isa-debug-exit port
# (QEMU then exits with status 0x31 * 2 + 1 = 99). A real-mode probe alone is not enough:
# on some hosts /dev/kvm opens and real mode runs, but `-cpu host` aborts ("failed to set
# MSR") or long mode dies with "KVM internal error"; so the probe uses the same CPU model as
# a real KVM boot, and any other outcome (abort, timeout, other status) means TCG.
_PROBE_EXIT_PORT = 0xF4
_PROBE_STATUS = 0x31 * 2 + 1
_PROBE_TIMEOUT = 15.0


def probe_bios() -> bytes:
    """The probe firmware: `mov al, 0x31; out 0xf4, al; hlt; jmp $` at the reset vector."""
    image = bytearray(b"\xf4" * 0x10000)  # hlt everywhere else
    code = bytes([0xB0, 0x31, 0xE6, _PROBE_EXIT_PORT, 0xF4, 0xEB, 0xFE])
    image[0xFFF0 : 0xFFF0 + len(code)] = code
    return bytes(image)


def probe_argv(bios: Path) -> list[str]:
    """QEMU command line of the KVM probe."""
    return [
        QEMU, "-accel", "kvm", "-cpu", "host", "-machine", "q35", "-m", "16",
        "-nodefaults", "-display", "none", "-no-reboot", "-bios", str(bios),
        "-device", f"isa-debug-exit,iobase={_PROBE_EXIT_PORT:#x},iosize=0x04",
    ]  # fmt: skip


def _cache_key() -> str:
    """The probe's answer holds for this boot of the host and this QEMU binary."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown"
    qemu = shutil.which(QEMU) or QEMU
    try:
        stat = os.stat(qemu)
        qemu_id = f"{qemu}:{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        qemu_id = qemu
    return hashlib.sha256(f"{boot_id}\n{qemu_id}".encode()).hexdigest()[:16]


def accelerator(cache_dir: Path) -> str:
    """`kvm` when a guest really runs under KVM here, else `tcg`; the answer is cached.

    `SONIX_ACCEL=kvm|tcg` overrides the probe (e.g. to compare both on one host).
    """
    forced = os.environ.get("SONIX_ACCEL")
    if forced:
        if forced not in ("kvm", "tcg"):
            raise ui.die(f"SONIX_ACCEL={forced} is not an accelerator", hint="use kvm or tcg")
        return forced
    cache = cache_dir / "accel"
    key = _cache_key()
    try:
        cached_key, cached = cache.read_text().split()
        if cached_key == key and cached in ("kvm", "tcg"):
            return cached
    except (OSError, ValueError):
        pass
    answer = _probe_kvm(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(f"{key} {answer}\n")
    return answer


def _probe_kvm(work: Path) -> str:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        ui.debug("/dev/kvm is missing or not accessible: TCG")
        return "tcg"
    require_qemu()
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        bios = Path(tmp) / "probe.bin"
        bios.write_bytes(probe_bios())
        argv = probe_argv(bios)
        ui.debug(process.command_line(argv))
        # Not process.run: a failing probe is an answer (TCG), not an error, and it may hang.
        try:
            result = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=_PROBE_TIMEOUT,
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            ui.debug("KVM probe timed out: TCG")
            return "tcg"
    if result.returncode == _PROBE_STATUS:
        return "kvm"
    ui.debug(f"KVM probe exited with {result.returncode}: TCG ({result.stderr!r:.200})")
    return "tcg"


def die_with_parent() -> None:
    """`preexec_fn` for QEMU: the kernel kills it when the process that started it dies.

    Without this, a test run that is killed (a CI timeout, `kill -9`) leaves its VMs running
    with nobody to stop them. PR_SET_PDEATHSIG fires when the *thread* that started QEMU
    ends, so start machines from a thread that lives as long as they do (the main thread).
    """
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def require_qemu() -> str:
    """The QEMU binary, or an error that says which package to install."""
    path = shutil.which(QEMU)
    if path is None:
        raise ui.die(f"{QEMU} was not found", hint=QEMU_HINT)
    return path


# ---- firmware -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Firmware:
    """OVMF: the read-only code and this VM's own copy of the variable store."""

    code: Path
    vars: Path


def find_ovmf(directory: Path = OVMF_DIR) -> tuple[Path, Path]:
    """(code, vars template) of the 4M OVMF build, or an error naming the `ovmf` package."""
    code, template = directory / OVMF_CODE, directory / OVMF_VARS
    missing = [p for p in (code, template) if not p.is_file()]
    if missing:
        raise ui.die(f"UEFI firmware not found: {', '.join(map(str, missing))}", hint=OVMF_HINT)
    return code, template


def prepare_firmware(state: Path, directory: Path = OVMF_DIR) -> Firmware:
    """OVMF for the VM in `state`: its vars copy is made once and kept (boot entries persist)."""
    code, template = find_ovmf(directory)
    vars_copy = state / "OVMF_VARS.fd"
    if not vars_copy.exists():
        shutil.copyfile(template, vars_copy)
    return Firmware(code=code, vars=vars_copy)


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
class VmSpec:
    """Everything that decides how one VM is started; `qemu_argv` turns it into argv."""

    name: str
    accel: str = "tcg"
    memory_mib: int = 2048
    cpus: int = 2
    firmware: Firmware | None = None
    disk: Path | None = None
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
    argv = [
        QEMU, "-name", _escape(spec.name),
        "-accel", spec.accel,
        "-machine", "q35",
        "-cpu", "host" if spec.accel == "kvm" else TCG_CPU,
        "-smp", str(spec.cpus), "-m", str(spec.memory_mib),
        "-nodefaults", "-display", "none",
        "-device", "virtio-rng-pci",
    ]  # fmt: skip
    if spec.firmware is not None:
        code, variables = _escape(str(spec.firmware.code)), _escape(str(spec.firmware.vars))
        argv += [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
        ]  # fmt: skip
    if spec.direct_boot is not None:
        argv += ["-kernel", str(spec.direct_boot.kernel)]
        if spec.direct_boot.initrd is not None:
            argv += ["-initrd", str(spec.direct_boot.initrd)]
        argv += ["-append", spec.direct_boot.append]
    if spec.disk is not None:
        argv += [
            "-drive", f"if=none,id=disk0,format=raw,file={_escape(str(spec.disk))}",
            "-device", "virtio-blk-pci,drive=disk0",
        ]  # fmt: skip
    argv += _serial_args(spec)
    if spec.backdoor is not None:
        argv += [
            "-chardev", f"socket,id=backdoor,path={_escape(str(spec.backdoor))},server=off",
            "-device", "virtio-serial-pci",
            "-device", f"virtserialport,chardev=backdoor,name={BACKDOOR_PORT}",
        ]  # fmt: skip
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
        ]  # fmt: skip
    return [
        "-chardev", f"socket,id=serial0,path={_escape(str(spec.serial))},server=off{log}",
        "-serial", "chardev:serial0",
    ]  # fmt: skip


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
        ]  # fmt: skip
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
