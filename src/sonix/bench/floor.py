"""The floor of the boot benchmark: the locked kernel booted straight into a trivial init.

QEMU boots the kernel of linux-image-cloud-amd64 directly (`-kernel/-initrd`, no firmware,
no disk). The initramfs holds one program, /init: it mounts /proc, prints
`FLOOR-READY <seconds since the kernel started>` on the console, waits for the console to drain
and powers the machine off. The benchmark runner times QEMU start → marker.

/init is a 400-byte static x86-64 ELF assembled here (no compiler, no libc, nothing the host
would have to provide), and the cpio archive is written here too, so the device node
/dev/console needs no root privileges and the result is byte-for-byte reproducible.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sonix import ui
from sonix.bench import common
from sonix.debian import fetch
from sonix.vm.qemu import DirectBoot

MARKER = "FLOOR-READY"
# Bump when the output changes for the same lock (part of the cache key).
BUILD_VERSION = "floor-1"
# What the runner should pass; the same console as sonix images, no `quiet` (sonix's default
# command line is not quiet either). panic=0: a broken init hangs visibly instead of looping.
DEFAULT_APPEND = "console=ttyS0,115200 panic=0"


@dataclass(frozen=True)
class Floor:
    """The floor's boot files (`direct_boot` gives what sonix.testing and VmSpec take)."""

    directory: Path
    kernel: Path
    initrd: Path
    kernel_version: str

    def direct_boot(self, append: str = DEFAULT_APPEND) -> DirectBoot:
        return DirectBoot(kernel=self.kernel, initrd=self.initrd, append=append)


# ---- /init: a tiny static ELF ------------------------------------------------------------

_Item = bytes | tuple[str, str]  # machine code, or ("rel8" | "rel32" | "label", label)


def _assemble(items: Sequence[_Item], base: int) -> tuple[bytes, dict[str, int]]:
    """Two passes over code with rel8/rel32 references to labels (relative to the end of
    the reference: all uses here are the last field of their instruction)."""
    labels: dict[str, int] = {}
    offset = 0
    for item in items:
        if isinstance(item, bytes):
            offset += len(item)
        elif item[0] == "label":
            labels[item[1]] = offset
        else:
            offset += 1 if item[0] == "rel8" else 4
    out = bytearray()
    for item in items:
        if isinstance(item, bytes):
            out += item
        elif item[0] == "rel8":
            out += struct.pack("<b", labels[item[1]] - (len(out) + 1))
        elif item[0] == "rel32":
            out += struct.pack("<i", labels[item[1]] - (len(out) + 4))
    return bytes(out), {name: base + value for name, value in labels.items()}


def _imm32(value: int) -> bytes:
    return struct.pack("<I", value)


def init_program() -> bytes:
    """The ELF of /init (pure). Linux x86-64 syscalls; comments give the assembly."""
    load_address = 0x400000
    header_size = 64 + 56  # ELF header + one program header
    code: list[_Item] = [
        # mount("proc", "/proc", "proc", 0, NULL)
        b"\x48\x8d\x3d", ("rel32", "s_proc"),  #        lea rdi, [rip+s_proc]
        b"\x48\x8d\x35", ("rel32", "s_proc_dir"),  #    lea rsi, [rip+s_proc_dir]
        b"\x48\x89\xfa",  #                             mov rdx, rdi
        b"\x45\x31\xd2",  #                             xor r10d, r10d
        b"\x45\x31\xc0",  #                             xor r8d, r8d
        b"\xb8" + _imm32(165),  #                       mov eax, SYS_mount
        b"\x0f\x05",  #                                 syscall
        # fd = open("/proc/uptime", O_RDONLY)
        b"\x48\x8d\x3d", ("rel32", "s_uptime"),  #      lea rdi, [rip+s_uptime]
        b"\x31\xf6",  #                                 xor esi, esi
        b"\x31\xd2",  #                                 xor edx, edx
        b"\xb8" + _imm32(2),  #                         mov eax, SYS_open
        b"\x0f\x05",  #                                 syscall
        # n = read(fd, buffer on the stack, 64)
        b"\x89\xc7",  #                                 mov edi, eax
        b"\x48\x81\xec" + _imm32(128),  #               sub rsp, 128
        b"\x48\x89\xe6",  #                             mov rsi, rsp
        b"\xba" + _imm32(64),  #                        mov edx, 64
        b"\x31\xc0",  #                                 xor eax, eax (SYS_read)
        b"\x0f\x05",  #                                 syscall
        b"\x48\x89\xc3",  #                             mov rbx, rax
        b"\x48\x85\xdb",  #                             test rbx, rbx
        b"\x7f", ("rel8", "read_ok"),  #                jg read_ok
        b"\x31\xdb",  #                                 xor ebx, ebx (nothing read)
        ("label", "read_ok"),
        # rcx = length of the first field ("12.34" of "12.34 5.67\n")
        b"\x31\xc9",  #                                 xor ecx, ecx
        ("label", "scan"),
        b"\x48\x39\xd9",  #                             cmp rcx, rbx
        b"\x7d", ("rel8", "scanned"),  #                jge scanned
        b"\x80\x3c\x0c\x20",  #                         cmp byte [rsp+rcx], ' '
        b"\x74", ("rel8", "scanned"),  #                je scanned
        b"\x48\xff\xc1",  #                             inc rcx
        b"\xeb", ("rel8", "scan"),  #                   jmp scan
        ("label", "scanned"),
        b"\xc6\x04\x0c\x0a",  #                         mov byte [rsp+rcx], '\n'
        b"\x48\xff\xc1",  #                             inc rcx
        b"\x49\x89\xcc",  #                             mov r12, rcx
        # write(1, "FLOOR-READY ", 12); write(1, buffer, r12)
        b"\xbf" + _imm32(1),  #                         mov edi, 1
        b"\x48\x8d\x35", ("rel32", "s_marker"),  #      lea rsi, [rip+s_marker]
        b"\xba" + _imm32(len(MARKER) + 1),  #           mov edx, len
        b"\xb8" + _imm32(1),  #                         mov eax, SYS_write
        b"\x0f\x05",  #                                 syscall
        b"\xbf" + _imm32(1),  #                         mov edi, 1
        b"\x48\x89\xe6",  #                             mov rsi, rsp
        b"\x4c\x89\xe2",  #                             mov rdx, r12
        b"\xb8" + _imm32(1),  #                         mov eax, SYS_write
        b"\x0f\x05",  #                                 syscall
        # ioctl(1, TCSBRK, 1): tcdrain, so the marker leaves the UART before power-off
        b"\xbf" + _imm32(1),  #                         mov edi, 1
        b"\xbe" + _imm32(0x5409),  #                    mov esi, TCSBRK
        b"\xba" + _imm32(1),  #                         mov edx, 1
        b"\xb8" + _imm32(16),  #                        mov eax, SYS_ioctl
        b"\x0f\x05",  #                                 syscall
        # reboot(LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_POWER_OFF, NULL)
        b"\xbf" + _imm32(0xFEE1DEAD),  #                mov edi, MAGIC1
        b"\xbe" + _imm32(0x28121969),  #                mov esi, MAGIC2
        b"\xba" + _imm32(0x4321FEDC),  #                mov edx, POWER_OFF
        b"\x45\x31\xd2",  #                             xor r10d, r10d
        b"\xb8" + _imm32(169),  #                       mov eax, SYS_reboot
        b"\x0f\x05",  #                                 syscall
        # not reached in a VM; elsewhere (a test outside PID namespace 1): exit(1)
        ("label", "end"),
        b"\xbf" + _imm32(1),  #                         mov edi, 1
        b"\xb8" + _imm32(60),  #                        mov eax, SYS_exit
        b"\x0f\x05",  #                                 syscall
        b"\xeb", ("rel8", "end"),  #                    jmp end
        ("label", "s_proc"), b"proc\0",
        ("label", "s_proc_dir"), b"/proc\0",
        ("label", "s_uptime"), b"/proc/uptime\0",
        ("label", "s_marker"), MARKER.encode() + b" ",
    ]
    text, _ = _assemble(code, load_address + header_size)
    size = header_size + len(text)
    elf_header = struct.pack(
        "<16sHHIQQQIHHHHHH",
        b"\x7fELF\x02\x01\x01" + bytes(9),  # 64-bit, little-endian, version 1, System V
        2, 0x3E, 1,  # ET_EXEC, x86-64, version
        load_address + header_size, 64, 0,  # entry, program headers, no sections
        0, 64, 56, 1, 64, 0, 0,
    )
    program_header = struct.pack(
        "<IIQQQQQQ",
        1, 5, 0,  # PT_LOAD, R+X, from file offset 0
        load_address, load_address, size, size, 0x1000,
    )
    return elf_header + program_header + text


# ---- the initramfs: a newc cpio written here ----------------------------------------------


@dataclass(frozen=True)
class CpioEntry:
    name: str
    mode: int  # st_mode: type and permissions
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)  # major, minor of a device node


def cpio_newc(entries: Sequence[CpioEntry]) -> bytes:
    """An uncompressed "newc" cpio archive (the kernel's initramfs format), root-owned,
    mtime 0 (pure)."""
    out = bytearray()

    def pad4() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    for inode, entry in enumerate([*entries, CpioEntry("TRAILER!!!", 0)], start=1):
        name = entry.name.encode() + b"\0"
        fields = (
            inode if entry.name != "TRAILER!!!" else 0, entry.mode, 0, 0,
            1 if entry.mode & 0o170000 != 0o040000 else 2, 0, len(entry.data),
            0, 0, entry.rdev[0], entry.rdev[1], len(name), 0,
        )
        out += b"070701" + b"".join(b"%08X" % f for f in fields)
        out += name
        pad4()
        out += entry.data
        pad4()
    out.extend(b"\0" * (-len(out) % 512))
    return bytes(out)


def initramfs() -> bytes:
    """The floor's initramfs (pure)."""
    return cpio_newc([
        CpioEntry("dev", 0o040755),
        # The kernel opens /dev/console for init's stdin/out/err only if it exists.
        CpioEntry("dev/console", 0o020600, rdev=(5, 1)),
        CpioEntry("init", 0o100755, init_program()),
        CpioEntry("proc", 0o040755),
    ])


# ---- the build ----------------------------------------------------------------------------


def build_floor(out_dir: Path) -> Floor:
    """The floor's kernel and initramfs in `out_dir/floor-<key>/` (cached per lock)."""
    locked, lock_text = common.read_lock_text()
    package = common.kernel_package(locked)
    key = common.cache_key(lock_text, [BUILD_VERSION.encode(), initramfs()])
    final = out_dir / f"floor-{key}"
    if not (final / "initrd.cpio").exists():
        with ui.step("Building the floor (kernel + trivial init)"):
            fetch.fetch(locked, [package])
            version, vmlinuz = common.kernel_image(common.unpacked_package(package))
            with common.staging(final) as result:
                shutil.copyfile(vmlinuz, result / "vmlinuz")
                (result / "kernel-version").write_text(version + "\n")
                (result / "initrd.cpio").write_bytes(initramfs())
    return Floor(
        directory=final,
        kernel=final / "vmlinuz",
        initrd=final / "initrd.cpio",
        kernel_version=(final / "kernel-version").read_text().strip(),
    )
