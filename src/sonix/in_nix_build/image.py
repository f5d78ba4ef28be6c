#!/usr/bin/env python3
"""The image builder: /usr tree, systemd initrd, UKI and disk image.

Runs inside the locked trixie tools tree (bubblewrap, see pkgs/build-support/run-in-tools.sh),
called by the derivations of modules/system/build.nix; standard library only, because the
tools' python3 is trixie's as is. Each verb is one derivation:

    image.py usr    --base BASE --manifest JSON --os-release FILE --out OUT
    image.py initrd --usr USR --base BASE --manifest JSON --modules M,... --binaries B,... --out OUT
    image.py disk   --usr USR --initrd FILE --config JSON [--secure-boot JSON] --out OUT

and each is a flat sequence of steps that reads top to bottom. The facts behind the choices are
in ../../../docs/image.md (and the probe notes it cites).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

MULTIARCH = "x86_64-linux-gnu"
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "1"))


def log(message: str) -> None:
    print(f"‣ {message}", file=sys.stderr, flush=True)


def die(message: str) -> NoReturn:
    print(f"image.py: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def run(*argv: str | Path, capture: bool = False) -> str:
    args = [str(a) for a in argv]
    result = subprocess.run(
        args, stdin=subprocess.DEVNULL, capture_output=capture, text=True, check=False
    )
    if result.returncode != 0:
        detail = f"\n{result.stderr}" if capture else ""
        die(f"command failed ({result.returncode}): {' '.join(args)}{detail}")
    return result.stdout if capture else ""


# ------------------------------------------------------------------------------------------
# The inputs, read once into frozen records (the contract with modules/system/build.nix)


class ConfigError(Exception):
    """An input file does not say what build.nix writes; the message names the key."""


def _fields(data: object, where: str, keys: Iterable[str]) -> dict[str, object]:
    """data as an object with exactly `keys` (build.nix writes them all, and nothing else)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: want a JSON object, got {type(data).__name__}")
    wanted = set(keys)
    if missing := sorted(wanted - data.keys()):
        raise ConfigError(f"{where}: missing key {', '.join(map(repr, missing))}")
    if unknown := sorted(data.keys() - wanted):
        raise ConfigError(f"{where}: unknown key {', '.join(map(repr, unknown))}")
    return data


def _string(data: dict[str, object], key: str, where: str, pattern: str = ".*") -> str:
    value = data[key]
    if not isinstance(value, str) or not re.fullmatch(pattern, value, re.DOTALL):
        want = "a string" if pattern == ".*" else f"a string matching {pattern}"
        raise ConfigError(f"{where}: {key} is {value!r}, want {want}")
    return value


def _integer(data: dict[str, object], key: str, where: str, least: int) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{where}: {key} is {value!r}, want an integer >= {least}")
    return value


def _strings(data: dict[str, object], key: str, where: str) -> tuple[str, ...]:
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} is {value!r}, want a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class ManifestFile:
    """One file of system.buildManifest (modules/system/files.nix, normal form)."""

    kind: str  # "text" (value is the content), "symlink" (the target), "source" (a store path)
    value: str
    mode: int

    @classmethod
    def parse(cls, data: object, where: str) -> ManifestFile:
        fields = _fields(data, where, ("kind", "value", "mode"))
        return cls(
            kind=_string(fields, "kind", where, "text|symlink|source"),
            value=_string(fields, "value", where),
            mode=int(_string(fields, "mode", where, "[0-7]{3,4}"), 8),
        )


def read_manifest(path: Path, key: str) -> dict[str, ManifestFile]:
    """The files of one tree (`usrFiles` or `initrdUsrFiles`) of a system.buildManifest."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        raise ConfigError(f"{path}: missing key {key!r} (an object of files)")
    return {rel: ManifestFile.parse(entry, f"{path}: {key}.{rel!r}")
            for rel, entry in data[key].items()}


SIZE = "[0-9]+[KMG]?"  # image.*Size: bytes, or with a binary suffix (modules/system/image.nix)


@dataclass(frozen=True)
class DiskConfig:
    """What the disk step reads: `diskConfig` in modules/system/build.nix (JSON names in the
    comments). The options own the defaults; this only checks that every key is there."""

    name: str  # image.name
    version: str  # image.version
    esp_size: str  # espSize
    usr_slot_size: str  # usrSlotSize
    usr_verity_slot_size: str  # usrVeritySlotSize
    compression: str  # image.compression, a key of EROFS_COMPRESSION
    kernel_params: tuple[str, ...]  # kernelParams: "rw", boot.kernelParams, image.extraCmdline
    disabled_lsms: tuple[str, ...]  # boot.kernel.disabledLsms
    timeout: int  # boot.loader.timeout (seconds of the systemd-boot menu)
    tries: int  # boot.loader.tries (the UKI's boot counter; 0: none)
    stub_dir: Path  # stubDir: systemd-boot and the UKI stub in the tools tree

    @classmethod
    def parse(cls, data: object, where: str = "disk config") -> DiskConfig:
        keys = ("name", "version", "espSize", "usrSlotSize", "usrVeritySlotSize", "compression",
                "kernelParams", "disabledLsms", "timeout", "tries", "stubDir")
        f = _fields(data, where, keys)
        return cls(
            name=_string(f, "name", where, ".+"),
            version=_string(f, "version", where, ".+"),
            esp_size=_string(f, "espSize", where, SIZE),
            usr_slot_size=_string(f, "usrSlotSize", where, SIZE),
            usr_verity_slot_size=_string(f, "usrVeritySlotSize", where, SIZE),
            compression=_string(f, "compression", where, "|".join(EROFS_COMPRESSION)),
            kernel_params=_strings(f, "kernelParams", where),
            disabled_lsms=_strings(f, "disabledLsms", where),
            timeout=_integer(f, "timeout", where, 0),
            tries=_integer(f, "tries", where, 0),
            stub_dir=Path(_string(f, "stubDir", where, "/.+")),
        )

    @classmethod
    def read(cls, path: Path) -> DiskConfig:
        return cls.parse(json.loads(path.read_text()), str(path))


KEYGEN = "sonix keygen --secure-boot"
ENROL_KEYS = ("PK", "KEK", "db")


@dataclass(frozen=True)
class SecureBootConfig:
    """boot.secureBoot.signing (modules/system/secure-boot.nix): host paths of the private
    keys, the contents of the public ones, systemd-boot's enrolment mode and the .auth files."""

    signing_key: Path  # signingKey: the db key, read from the host (group nixbld)
    certificate: str  # certificate: the db certificate, PEM text
    pcr_private_key: Path  # pcrPrivateKey
    pcr_public_key: str  # pcrPublicKey: PEM text
    enrol: str  # enrol: secure-boot-enroll in loader.conf
    enrolment_files: dict[str, Path] | None  # enrolmentFiles: PK/KEK/db → store path of .auth

    @classmethod
    def parse(cls, data: object, where: str = "secure boot config") -> SecureBootConfig:
        keys = ("signingKey", "certificate", "pcrPrivateKey", "pcrPublicKey", "enrol",
                "enrolmentFiles")
        f = _fields(data, where, keys)
        files = f["enrolmentFiles"]
        enrolment: dict[str, Path] | None = None
        if files is not None:
            listed = _fields(files, f"{where}: enrolmentFiles", ENROL_KEYS)
            enrolment = {k: Path(_string(listed, k, f"{where}: enrolmentFiles", "/.+"))
                         for k in ENROL_KEYS}
        return cls(
            signing_key=Path(_string(f, "signingKey", where, "/.+")),
            certificate=_string(f, "certificate", where, ".*BEGIN CERTIFICATE.*"),
            pcr_private_key=Path(_string(f, "pcrPrivateKey", where, "/.+")),
            pcr_public_key=_string(f, "pcrPublicKey", where, ".*BEGIN PUBLIC KEY.*"),
            enrol=_string(f, "enrol", where, "off|manual|if-safe|force"),
            enrolment_files=enrolment,
        )

    @classmethod
    def read(cls, path: Path) -> SecureBootConfig:
        return cls.parse(json.loads(path.read_text()), str(path))


@dataclass(frozen=True)
class Signing:
    """The keys as files the tools take: the private ones where they are on the host, the
    public ones written into the build directory."""

    key: Path
    certificate: Path
    pcr_private_key: Path
    pcr_public_key: Path


# ------------------------------------------------------------------------------------------
# Small file-tree helpers


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a tree keeping symlinks; the copy is writable (store paths are not)."""
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True, copy_function=shutil.copy2)
    make_writable(dst)


def make_writable(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
    root.chmod(root.stat().st_mode | stat.S_IWUSR)


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    remove(path)
    path.write_text(text)
    path.chmod(mode)


def apply_manifest(root: Path, files: dict[str, ManifestFile]) -> None:
    """Write the configuration's files (system.buildManifest) under root."""
    for rel, entry in sorted(files.items()):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        remove(target)
        if entry.kind == "text":
            target.write_text(entry.value)
            target.chmod(entry.mode)
        elif entry.kind == "symlink":
            target.symlink_to(entry.value)
        else:
            source = Path(entry.value)
            if source.is_dir():
                copy_tree(source, target)
            else:
                shutil.copyfile(source, target)
                target.chmod(entry.mode)


def restore_modes(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        Path(dirpath).chmod(0o755)
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                path.chmod(0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644)


def read_special_modes(modes_file: Path) -> dict[str, tuple[int, int, int]]:
    """The /usr entries of a packages' special-modes file (`path mode uid gid` lines): the
    setuid and setgid bits and owners that the Nix store drops. /etc and /var entries are made
    at boot by tmpfiles and sysusers."""
    modes = {}
    if modes_file.is_file():
        for line in modes_file.read_text().splitlines():
            fields = line.split()
            if len(fields) == 4 and fields[0].startswith("/usr/"):
                modes[fields[0].removeprefix("/usr/")] = (
                    int(fields[1], 8), int(fields[2]), int(fields[3]))
    return modes


def write_usr_tar(tree: Path, modes: dict[str, tuple[int, int, int]], archive: Path) -> None:
    """A reproducible tar of tree/usr (names relative to /usr, as the partition is mounted
    there; modes keyed the same way): sorted names, owner root, mtime SOURCE_DATE_EPOCH, and
    the special modes. A tar, because a Nix build may not chmod a file setuid (the build's
    seccomp filter refuses it) while a tar header can say anything."""

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = EPOCH
        special = modes.get(info.name)
        if special and info.isfile():
            info.mode, info.uid, info.gid = special
        return info

    def walk(directory: Path) -> Iterator[Path]:
        yield directory
        for entry in sorted(directory.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                yield from walk(entry)
            else:
                yield entry

    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in walk(tree / "usr"):
            tar.add(path, arcname=str(path.relative_to(tree / "usr")), recursive=False,
                    filter=normalise)


def normalise_mtimes(root: Path) -> None:
    """Same content, same image: every mtime is SOURCE_DATE_EPOCH."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.utime(Path(dirpath, name), (EPOCH, EPOCH), follow_symlinks=False)
    os.utime(root, (EPOCH, EPOCH))


# ------------------------------------------------------------------------------------------
# usr: the package tree, trimmed, with the configuration's files and a factory /etc

# Documentation a server image does not need (man pages are read on the workstation).
TRIM = ["share/doc", "share/man", "share/info", "share/lintian", "share/bug", "share/locale"]

# Not copied into the factory /etc: created at boot by sysusers / PID 1, or meaningless for an
# image without package management.
FACTORY_EXCLUDE = {
    "passwd", "passwd-", "group", "group-", "shadow", "shadow-", "gshadow", "gshadow-",
    ".pwd.lock", "machine-id", "hostname", "os-release", "apt", "dpkg", "debconf.conf",
    "systemd/system", "systemd/user", "rc0.d", "rc1.d", "rc2.d", "rc3.d", "rc4.d", "rc5.d",
    "rc6.d", "rcS.d", "init.d", "initramfs", "kernel", "cron.d", "cron.daily", "logrotate.d",
}


def tmpfiles_paths(tmpfiles_dir: Path) -> set[str]:
    """Paths that existing tmpfiles.d lines already own (so we emit no duplicate lines)."""
    owned: set[str] = set()
    for conf in sorted(tmpfiles_dir.glob("*.conf")):
        for line in conf.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2 and not fields[0].startswith("#"):
                owned.add(fields[1])
    return owned


def factory_lines(factory: Path, owned: set[str]) -> list[str]:
    """tmpfiles.d lines that install the factory tree into an empty /etc.

    `C` copies a file when the target does not exist (parents are created); symlinks get `L`
    lines, because a `C` line fails on a symlink whose target is missing (probe notes §8);
    empty directories get `d`.
    """
    lines = []
    for dirpath, dirnames, filenames in os.walk(factory):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(factory)
        entries = sorted([*filenames, *(d for d in dirnames if Path(dirpath, d).is_symlink())])
        for name in entries:
            path = Path(dirpath, name)
            target = "/etc/" + str(rel_dir / name).removeprefix("./")
            if target in owned:
                continue
            if path.is_symlink():
                lines.append(f"L {target} - - - - {os.readlink(path)}")
            else:
                lines.append(f"C {target} - - - -")
        empty = not filenames and not dirnames and rel_dir != Path(".")
        if empty and f"/etc/{rel_dir}" not in owned:
            lines.append(f"d /etc/{rel_dir} 0755 root root -")
    return lines


def merge_machine_modes(usr: Path, modes_file: Path) -> None:
    """nspawn machines (containers.<name>) are whole usr builds in usr/lib/machines/<name>,
    with the special modes of their packages (setuid su, mount, ...) beside their tree in
    nix-support/: those become the host's, under the machine's path, and nix-support goes."""
    machines = usr / "lib/machines"
    if not machines.is_dir():
        return
    lines = []
    for machine in sorted(machines.iterdir()):
        own = machine / "nix-support/special-modes"
        for line in own.read_text().splitlines() if own.is_file() else []:
            fields = line.split()
            if len(fields) == 4 and fields[0].startswith("/usr/"):
                lines.append(f"/usr/lib/machines/{machine.name}{fields[0]} {' '.join(fields[1:])}")
        remove(machine / "nix-support")
    if lines:
        modes_file.parent.mkdir(exist_ok=True)
        with modes_file.open("a") as f:
            f.write("".join(f"{line}\n" for line in lines))


def make_usr(base: Path, files: dict[str, ManifestFile], os_release: Path, out: Path) -> None:
    """The usr step: out/usr is the package tree, trimmed, with the configuration's files, a
    factory /etc and the tmpfiles.d lines that install it; the kernel and the special modes
    wait beside it (out/boot, out/nix-support) for the disk step."""
    usr = out / "usr"
    copy_package_tree(base, out)
    factory = make_factory_etc(base, usr)
    write_configuration_files(usr, files, os_release, out / "nix-support/special-modes")
    compile_hwdb(out)
    if (usr / "lib/modules").is_dir():  # a container's tree has no kernel
        ship_static_nodes(out, usr / "lib/modules" / kernel_version(out))
    install_factory_etc(usr, factory)
    normalise_mtimes(out)


def copy_package_tree(base: Path, out: Path) -> None:
    log("Copying the package tree")
    copy_tree(base / "usr", out / "usr")
    for rel in TRIM:
        remove(out / "usr" / rel)
    # The kernel goes into the UKI, not into /usr; keep it beside the tree for the disk step,
    # with the modes the store cannot keep (setuid mount, su, ...), which that step applies.
    if (base / "boot").is_dir():  # a container's tree (boot.isContainer) has no kernel
        copy_tree(base / "boot", out / "boot")
    modes = base / "nix-support/special-modes"
    if modes.is_file():
        (out / "nix-support").mkdir(exist_ok=True)
        shutil.copyfile(modes, out / "nix-support/special-modes")


def make_factory_etc(base: Path, usr: Path) -> Path:
    """The packages' /etc, less FACTORY_EXCLUDE, as usr/share/factory/etc (returned)."""
    log("Making the factory /etc")
    factory = usr / "share/factory/etc"
    remove(factory)
    factory.mkdir(parents=True)
    for entry in sorted((base / "etc").iterdir()):
        name = entry.name
        if name in FACTORY_EXCLUDE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            copy_tree(entry, factory / name)
            for excluded in FACTORY_EXCLUDE:
                if excluded.startswith(f"{name}/"):
                    remove(factory / excluded)
        elif entry.is_symlink():
            (factory / name).symlink_to(os.readlink(entry))
        else:
            shutil.copy2(entry, factory / name)
    make_writable(factory)
    return factory


def write_configuration_files(
    usr: Path, files: dict[str, ManifestFile], os_release: Path, modes_file: Path
) -> None:
    log("Writing the configuration's files")
    apply_manifest(usr, files)
    merge_machine_modes(usr, modes_file)
    shutil.copyfile(os_release, usr / "lib/os-release")


def compile_hwdb(out: Path) -> None:
    """A read-only /usr ships its hardware database compiled: with /usr/lib/udev/hwdb.bin in
    place, systemd-hwdb-update.service has nothing to do at boot.
    systemd-hwdb comes with udev, which the tools set lacks; the image's own binary runs
    here because the tools carry the same libsystemd-shared (both are trixie's systemd)."""
    hwdb = out / "usr/bin/systemd-hwdb"
    if hwdb.exists():
        log("Compiling the hardware database")
        run(hwdb, "update", f"--root={out}", "--usr", "--strict")


def install_factory_etc(usr: Path, factory: Path) -> None:
    """tmpfiles.d lines that fill an empty /etc from the factory tree at boot. The
    configuration's own /etc lines (modules/system/etc.nix) come first and win; the packages'
    /etc is installed by a later file for what remains."""
    owned = tmpfiles_paths(usr / "lib/tmpfiles.d") | {"/etc/os-release"}
    lines = factory_lines(factory, owned)
    lines.append("L /etc/os-release - - - - ../usr/lib/os-release")
    write_file(
        usr / "lib/tmpfiles.d/10-sonix-factory-etc.conf",
        "# Generated by sonix: /etc from the packages' defaults in /usr/share/factory/etc\n"
        + "\n".join(lines) + "\n",
    )


# ------------------------------------------------------------------------------------------
# ELF dependencies (DT_NEEDED), read directly: no ldd, which would need the target's loader


def elf_needed(path: Path) -> list[str]:
    """The DT_NEEDED sonames of a 64-bit little-endian ELF file ([] for anything else)."""
    with path.open("rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    (e_phoff,) = struct.unpack_from("<Q", data, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    dynamic = None
    loads = []
    for i in range(e_phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + i * e_phentsize
        )
        if p_type == 2:  # PT_DYNAMIC
            dynamic = (p_offset, p_filesz)
        elif p_type == 1:  # PT_LOAD
            loads.append((p_vaddr, p_offset, p_filesz))
    if dynamic is None:
        return []

    def file_offset(vaddr: int) -> int:
        for start, offset, size in loads:
            if start <= vaddr < start + size:
                return int(vaddr - start + offset)
        raise ValueError(f"{path}: address {vaddr:#x} is in no loaded segment")

    needed, strtab = [], 0
    off, end = dynamic[0], dynamic[0] + dynamic[1]
    while off < end:
        tag, value = struct.unpack_from("<qQ", data, off)
        off += 16
        if tag == 0:
            break
        if tag == 1:  # DT_NEEDED
            needed.append(value)
        elif tag == 5:  # DT_STRTAB
            strtab = file_offset(value)

    def cstring(offset: int) -> str:
        return data[offset : data.index(b"\0", offset)].decode()

    return [cstring(strtab + n) for n in needed]


def find_library(root: Path, soname: str) -> Path | None:
    for directory in (f"usr/lib/{MULTIARCH}", "usr/lib", f"usr/lib/{MULTIARCH}/systemd"):
        candidate = root / directory / soname
        if candidate.exists():
            return candidate
    return None


def elf_closure(root: Path, paths: Iterable[Path]) -> set[Path]:
    """The files and every shared library they need, transitively (paths inside root)."""
    seen: set[Path] = set()
    todo = list(paths)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        real = path.resolve() if path.is_symlink() else path
        if real != path and str(real).startswith(str(root)):
            todo.append(real)
        if not real.is_file():
            continue
        for soname in elf_needed(real):
            lib = find_library(root, soname)
            if lib is None:
                die(f"{path.relative_to(root)} needs {soname}, which is not in the usr tree")
            todo.append(lib)
    return seen


# ------------------------------------------------------------------------------------------
# initrd: systemd stage 1 from the same packages

# What a systemd 257 stage 1 needs to find the verity-protected /usr, create the root with
# systemd-repart on first boot, fsck and mount it, and switch root (probe notes §5, §15).
INITRD_BINARIES = [
    "usr/lib/systemd/systemd",
    "usr/lib/systemd/systemd-executor",
    "usr/lib/systemd/systemd-journald",
    "usr/lib/systemd/systemd-udevd",
    "usr/lib/systemd/systemd-shutdown",
    "usr/lib/systemd/systemd-modules-load",
    "usr/lib/systemd/systemd-sysctl",
    "usr/lib/systemd/systemd-fsck",
    "usr/lib/systemd/systemd-growfs",
    "usr/lib/systemd/systemd-makefs",
    "usr/lib/systemd/systemd-sulogin-shell",
    "usr/lib/systemd/systemd-volatile-root",
    "usr/lib/systemd/systemd-sysroot-fstab-check",
    "usr/lib/systemd/systemd-hibernate-resume",
    "usr/lib/systemd/systemd-veritysetup",
    "usr/lib/systemd/systemd-remount-fs",
    "usr/lib/systemd/system-generators/systemd-fstab-generator",
    "usr/lib/systemd/system-generators/systemd-gpt-auto-generator",
    "usr/lib/systemd/system-generators/systemd-debug-generator",
    "usr/lib/systemd/system-generators/systemd-hibernate-resume-generator",
    "usr/lib/systemd/system-generators/systemd-veritysetup-generator",
    "usr/bin/systemctl",
    "usr/bin/udevadm",
    "usr/bin/journalctl",
    "usr/bin/systemd-tmpfiles",
    "usr/bin/systemd-ask-password",
    "usr/bin/systemd-tty-ask-password-agent",
    "usr/bin/systemd-escape",
    "usr/bin/systemd-sysusers",
    "usr/bin/systemd-repart",
    "usr/bin/mount",
    "usr/bin/umount",
    "usr/bin/kmod",
    "usr/bin/sh",  # dash; bash only when initrd units have scripts (boot.initrd.binaries)
    "usr/bin/dash",
    "usr/bin/cat",
    "usr/bin/ls",
    "usr/sbin/modprobe",
    "usr/sbin/insmod",
    "usr/sbin/rmmod",
    "usr/sbin/lsmod",
    "usr/sbin/depmod",
    "usr/sbin/fsck",
    "usr/sbin/blkid",
    "usr/sbin/sulogin",
    "usr/sbin/e2fsck",
    "usr/sbin/fsck.ext4",
    "usr/sbin/mke2fs",
    "usr/sbin/mkfs.ext4",
    "usr/sbin/dmsetup",
]

# dlopen()ed, so no DT_NEEDED names them: systemd 257 loads libkmod and libcryptsetup this way,
# kmod 34 loads liblzma and libzstd (without them depmod/modprobe silently lose .ko.xz support).
INITRD_DLOPEN = ["libkmod.so.2", "liblzma.so.5", "libzstd.so.1", "libcryptsetup.so.12",
                 "libseccomp.so.2"]

# udev's helpers that stage 1 of a server has a use for (persistent names of ATA and SCSI
# disks); cdrom_id, fido_id, v4l_id, mtd_probe, iocost and dmi_memory_id are left to /usr.
INITRD_UDEV_HELPERS = ["ata_id", "scsi_id"]

INITRD_DATA = [
    "usr/lib/systemd/system",
    "usr/lib/systemd/system-preset",
    "usr/lib/systemd/system.conf.d",
    "usr/lib/udev/rules.d",
    "usr/lib/modprobe.d",
    "usr/lib/sysctl.d",
    "usr/lib/tmpfiles.d",
    "usr/lib/sysusers.d",
]

# Units that cannot work in stage 1 (D-Bus is not there).
INITRD_UNIT_EXCLUDE = ("dbus", "systemd-logind", "systemd-networkd", "systemd-resolved")

# boot.initrd.network: systemd-networkd in stage 1 (it runs without D-Bus), for provisioning
# from metadata services. Its .link files come along so that interfaces get their predictable
# names already in the initrd (an interface that is up cannot be renamed after switch-root),
# and sysusers makes its systemd-network account in the initrd's /etc/passwd.
INITRD_NETWORK_BINARIES = ["usr/lib/systemd/systemd-networkd", "usr/bin/networkctl"]
INITRD_NETWORK_DATA = ["usr/lib/systemd/network"]

# The kernel unpacks either. xz with the x86 branch filter is the smallest (about 12 % below
# zstd -19 for the default initrd), the kernel's xz decoder only knows CRC32 checks, and one
# thread keeps the archive reproducible. zstd unpacks several times faster.
INITRD_COMPRESSORS = {
    "xz": ["xz", "-q", "--check=crc32", "--x86", "--lzma2=preset=9e,dict=32MiB", "-T1"],
    "zstd": ["zstd", "-q", "-19", "-T0", "--rm"],
}
INITRD_SUFFIXES = {"xz": ".xz", "zstd": ".zst"}

INITRD_ETC = ["passwd", "group", "shadow", "gshadow", "ld.so.conf", "ld.so.conf.d",
              "modprobe.d", "mke2fs.conf", "nsswitch.conf"]


def kernel_version(usr: Path) -> str:
    versions = sorted(p.name for p in (usr / "usr/lib/modules").iterdir())
    if len(versions) != 1:
        die(f"expected one kernel in /usr/lib/modules, found {versions or 'none'}")
    return versions[0]


def static_nodes_tmpfiles(devname: Path) -> str:
    """What `kmod static-nodes --format=tmpfiles` writes at every boot, made once at build time
    from the kernel's modules.devname: the device nodes whose first open loads their module
    (/dev/fuse, /dev/loop-control, /dev/net/tun, ...), as tmpfiles.d lines."""
    lines = ["# Generated by sonix from modules.devname (what kmod-static-nodes.service does)"]
    made: set[str] = set()
    for line in devname.read_text().splitlines():
        fields = line.split()
        if not fields or line.startswith("#"):
            continue
        if len(fields) != 3 or fields[2][:1] not in ("c", "b") or ":" not in fields[2]:
            die(f"{devname}: unexpected line {line!r} (want `module devname c|bMAJOR:MINOR`)")
        _, node, spec = fields
        parent = Path(node).parent
        for directory in [*reversed([*parent.parents][:-1]), parent]:
            if str(directory) != "." and str(directory) not in made:
                made.add(str(directory))
                lines.append(f"d /dev/{directory} 0755 - - -")
        lines.append(f"{spec[0]}! /dev/{node} 0600 - - - {spec[1:]}")
    return "\n".join(lines) + "\n"


def ship_static_nodes(root: Path, moddir: Path) -> None:
    """Static device nodes from a tmpfiles.d file in /usr instead of kmod-static-nodes.service,
    which runs kmod at every boot (a new program, seconds under emulation). The unit is
    masked; systemd-tmpfiles-setup-dev-early.service creates the nodes as before."""
    devname = moddir / "modules.devname"
    if not devname.is_file():
        return
    write_file(root / "usr/lib/tmpfiles.d/static-nodes.conf", static_nodes_tmpfiles(devname))
    unit = root / "usr/lib/systemd/system/kmod-static-nodes.service"
    remove(unit)
    unit.symlink_to("/dev/null")


def lsm_parameter(kernel_config: Path, disabled: list[str], params: list[str]) -> str | None:
    """`lsm=`: the kernel's built-in LSM order (CONFIG_LSM) without `disabled`; None when
    nothing is disabled, or the command line already chooses its own `lsm=`."""
    if not disabled or any(p.startswith("lsm=") for p in params):
        return None
    match = re.search(r'^CONFIG_LSM="([^"]*)"$', kernel_config.read_text(), re.MULTILINE)
    if match is None:
        die(f"{kernel_config} has no CONFIG_LSM, so {', '.join(disabled)} cannot be turned "
            "off: set boot.kernel.disabledLsms = [ ] for this kernel")
    return "lsm=" + ",".join(m for m in match.group(1).split(",") if m not in disabled)


def module_closure(moddir: Path, names: Iterable[str]) -> tuple[set[str], list[str]]:
    """Module files (relative to moddir) for names and their dependencies; names that are
    built into the kernel are fine, unknown names are reported."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        name = Path(path).name.split(".ko")[0]
        by_name[name] = path
        by_name[name.replace("-", "_")] = path
    builtin = {
        Path(line).name.split(".ko")[0].replace("-", "_")
        for line in (moddir / "modules.builtin").read_text().splitlines()
    }
    files: set[str] = set()
    missing: list[str] = []
    todo: list[str] = []
    for name in names:
        key = name.replace("-", "_")
        if key in by_name:
            todo.append(by_name[key])
        elif key not in builtin:
            missing.append(name)
    while todo:
        path = todo.pop()
        if path not in files:
            files.add(path)
            todo.extend(deps.get(path, []))
    return files, missing


@dataclass(frozen=True)
class InitrdSpec:
    """What the initrd step reads (its command line and the initrd's buildManifest files)."""

    usr: Path  # the package tree the initrd is cut from
    base: Path  # its /etc (passwd, ld.so.conf, ...) when the usr tree has no factory copy
    files: dict[str, ManifestFile]  # boot.initrd.usrFiles
    os_release: Path
    modules: tuple[str, ...]  # kernel modules, with their dependencies
    binaries: tuple[str, ...]  # beyond INITRD_BINARIES (boot.initrd.binaries)
    compressor: str  # a key of INITRD_COMPRESSORS
    network: bool  # systemd-networkd in stage 1 (boot.initrd.network.enable)


def make_initrd(spec: InitrdSpec, out: Path) -> None:
    """The initrd step: out/initrd.img (a compressed cpio) and out/initrd.json (its sizes)."""
    root = Path(os.environ.get("TMPDIR", "/tmp")) / "initrd-root"
    make_initrd_root(root)
    copy_initrd_binaries(spec, root)
    copy_initrd_data(spec, root)
    kernel = copy_initrd_modules(spec, root)
    write_initrd_files(spec, root)
    pack_initrd(root, spec.compressor, kernel, out)
    shutil.rmtree(root)


def make_initrd_root(root: Path) -> None:
    remove(root)
    root.mkdir(parents=True)
    for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"),
                         ("lib64", "usr/lib64")):
        (root / link).symlink_to(target)


def copy_initrd_binaries(spec: InitrdSpec, root: Path) -> None:
    log("Copying binaries and their libraries")
    usr = spec.usr
    extra = INITRD_NETWORK_BINARIES if spec.network else []
    wanted = [usr / b for b in INITRD_BINARIES + extra + [b.lstrip("/") for b in spec.binaries]]
    missing = [str(p.relative_to(usr)) for p in wanted if not p.exists() and not p.is_symlink()]
    if missing:
        die(f"initrd binaries not in the usr tree: {', '.join(missing)}")
    wanted += [lib for name in INITRD_DLOPEN if (lib := find_library(usr, name))]
    wanted += [usr / "usr/lib/udev" / helper for helper in INITRD_UDEV_HELPERS
               if (usr / "usr/lib/udev" / helper).exists()]
    wanted.append(usr / "usr/lib64/ld-linux-x86-64.so.2")
    for path in sorted(elf_closure(usr, wanted)):
        copy_into(usr, root, path)


def copy_initrd_data(spec: InitrdSpec, root: Path) -> None:
    """Units, udev rules and configuration; /etc's accounts and loader settings; os-release."""
    log("Copying units, rules and configuration")
    usr, network = spec.usr, spec.network
    for rel in INITRD_DATA + (INITRD_NETWORK_DATA if network else []):
        src = usr / rel
        if src.is_dir():
            copy_tree(src, root / rel)
        elif src.exists():
            copy_into(usr, root, src)
    excluded = tuple(x for x in INITRD_UNIT_EXCLUDE if not (network and x == "systemd-networkd"))
    for unit in (root / "usr/lib/systemd/system").iterdir():
        if unit.name.startswith(excluded):
            remove(unit)
    (root / "etc").mkdir(exist_ok=True)
    for rel in INITRD_ETC:
        src = spec.base / "etc" / rel
        factory = usr / "usr/share/factory/etc" / rel
        chosen = factory if factory.exists() else src
        if chosen.is_dir():
            copy_tree(chosen, root / "etc" / rel)
        elif chosen.exists():
            shutil.copy2(chosen, root / "etc" / rel)
    if network:
        network_conf = root / "usr/lib/sysusers.d/systemd-network.conf"
        if not network_conf.exists():
            die("systemd-network.conf is not in usr/lib/sysusers.d: the systemd package changed?")
        run("systemd-sysusers", f"--root={root}", network_conf)
    shutil.copyfile(spec.os_release, root / "usr/lib/os-release")
    shutil.copyfile(spec.os_release, root / "etc/initrd-release")
    (root / "etc/machine-id").write_text("")
    (root / "init").symlink_to("usr/lib/systemd/systemd")


def copy_initrd_modules(spec: InitrdSpec, root: Path) -> str:
    """The modules asked for and their dependencies, depmod'ed; returns the kernel version."""
    log("Copying kernel modules")
    version = kernel_version(spec.usr)
    moddir = spec.usr / "usr/lib/modules" / version
    files, unknown = module_closure(moddir, spec.modules)
    if unknown:
        die(f"initrd kernel modules not found for {version}: {', '.join(sorted(unknown))}")
    for rel in sorted(files):
        copy_into(spec.usr, root, moddir / rel)
    for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        copy_into(spec.usr, root, moddir / meta)
    run("depmod", "-b", root, version)
    ship_static_nodes(root, root / "usr/lib/modules" / version)
    return version


def write_initrd_files(spec: InitrdSpec, root: Path) -> None:
    log("Writing the configuration's initrd files")
    apply_manifest(root / "usr", spec.files)
    run("ldconfig", "-r", root)
    normalise_mtimes(root)


def pack_initrd(root: Path, compressor: str, kernel: str, out: Path) -> None:
    log(f"Packing the cpio archive ({compressor})")
    out.mkdir(parents=True, exist_ok=True)
    cpio = out / "initrd.cpio"
    write_cpio(root, cpio)
    archive = out / "initrd.img"  # one name whatever the compressor: ukify does not care
    run(*INITRD_COMPRESSORS[compressor], cpio)
    (out / f"initrd.cpio{INITRD_SUFFIXES[compressor]}").rename(archive)
    sizes = {"unpacked": tree_size(root), "compressed": archive.stat().st_size}
    (out / "initrd.json").write_text(
        json.dumps({"kernel": kernel, "compressor": compressor, "bytes": sizes}, indent=2))


def copy_into(src_root: Path, dst_root: Path, path: Path) -> None:
    """Copy one file (or symlink) from src_root into the same place under dst_root."""
    rel = path.relative_to(src_root)
    target = dst_root / rel
    if target.exists() or target.is_symlink():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        target.symlink_to(os.readlink(path))
    elif path.is_file():
        shutil.copy2(path, target)
        target.chmod(target.stat().st_mode | stat.S_IWUSR)


def tree_size(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def write_cpio(root: Path, archive: Path) -> None:
    """A reproducible newc archive: sorted names, uid/gid 0, mtime SOURCE_DATE_EPOCH."""

    def entries() -> Iterator[tuple[str, Path]]:
        names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        for name in names:
            yield name, root / name

    with archive.open("wb") as f:
        ino = 1
        for name, path in [*entries(), ("TRAILER!!!", root)]:
            trailer = name == "TRAILER!!!"
            st = path.lstat()
            if trailer:
                mode, data, nlink = 0, b"", 1
            elif stat.S_ISLNK(st.st_mode):
                mode, data, nlink = st.st_mode, os.readlink(path).encode(), 1
            elif stat.S_ISDIR(st.st_mode):
                mode, data, nlink = st.st_mode, b"", 2
            else:
                mode, data, nlink = st.st_mode, path.read_bytes(), 1
            encoded = name.encode() + b"\0"
            header = "070701" + "".join(
                f"{v:08x}"
                for v in (ino, mode, 0, 0, nlink, EPOCH if not trailer else 0, len(data),
                          0, 0, 0, 0, len(encoded), 0)
            )
            f.write(header.encode() + encoded)
            f.write(b"\0" * (-(110 + len(encoded)) % 4))
            f.write(data)
            f.write(b"\0" * (-len(data) % 4))
            ino += 1


# ------------------------------------------------------------------------------------------
# disk: usr + verity (pass 1), UKI with usrhash=, ESP (pass 2), check, manifest


def size_bytes(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


# image.compression → mkfs.erofs: lz4 is written with the lz4hc encoder (same decoder, denser).
EROFS_COMPRESSION = {"lz4": ["-zlz4hc,level=12"], "lzma": ["-zlzma,level=109"], "none": []}


def make_disk(usr: Path, initrd: Path, cfg: DiskConfig, out: Path,
              secure_boot: SecureBootConfig | None = None) -> None:
    """The disk step: out/disk.raw, the UKI out/<name>_<version>.efi and out/manifest.json.
    Two passes of repart, because the UKI's command line carries the usr root hash that the
    first pass computes and the ESP that the second adds carries the UKI (docs/image.md).
    With Secure Boot, systemd-boot and the UKI are signed and the ESP carries the enrolment
    files (docs/secure-boot.md)."""
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "disk-work"
    remove(work)
    esp, definitions = work / "esp", work / "repart.d"
    esp.mkdir(parents=True)
    signing = prepare_signing(secure_boot, work / "keys") if secure_boot else None
    erofs = make_usr_filesystem(usr, cfg, work)
    write_repart_definitions(definitions, cfg, esp, erofs)
    out.mkdir(parents=True, exist_ok=True)
    disk = out / "disk.raw"
    # Partition UUIDs and filesystem UUIDs from a seed: same inputs, same image.
    seed = str(uuid.UUID(hashlib.sha256(f"{cfg.name}_{cfg.version}".encode()).hexdigest()[:32]))
    usrhash = make_usr_partitions(disk, definitions, seed)
    uki = make_uki(usr, initrd, cfg, usrhash, out, signing)
    entry = stage_esp(esp, uki.path, cfg)
    pcr11: dict[str, str] | None = None
    if secure_boot and signing:
        sign_esp(esp, signing, secure_boot, work)
        check_signatures(esp, uki.path, signing)
        pcr11 = predict_pcr11(uki.path, work)
    log("Adding the ESP (pass 2)")
    parts = repart(disk, definitions, seed)
    log("Checking that the UKI and the partition table agree")
    check_usrhash(disk, uki.path, usrhash)
    write_disk_manifest(out, cfg, disk, uki, initrd, usrhash, entry, parts,
                        secure_boot.enrol if secure_boot else None, pcr11)
    shutil.rmtree(work)


def prepare_signing(sb: SecureBootConfig, keys: Path) -> Signing:
    """The private keys are readable here (a nixbld user) and belong to the public keys of
    the configuration; both RSA. Every failure names the command that makes good keys."""
    log("Checking the Secure Boot and PCR-policy keys")
    keys.mkdir(parents=True)
    signing = Signing(sb.signing_key, keys / "db.crt", sb.pcr_private_key, keys / "pcr.pub.pem")
    signing.certificate.write_text(sb.certificate)
    signing.pcr_public_key.write_text(sb.pcr_public_key)
    for private, public, option in (
        (signing.key, signing.certificate, "signingKey"),
        (signing.pcr_private_key, signing.pcr_public_key, "pcrPrivateKey"),
    ):
        try:
            private.read_bytes()
        except OSError as e:
            die(f"boot.secureBoot.{option}: cannot read {private} as the build user "
                f"(uid {os.getuid()}): {e.strerror}. `{KEYGEN}` makes the keys readable by "
                "the group nixbld (0640, directory 0750); for keys made elsewhere: chgrp "
                "nixbld on the key and its directory, chmod 0640 the key, 0750 the directory")
        check = subprocess.run(["openssl", "rsa", "-noout", "-check", "-in", str(private)],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            die(f"boot.secureBoot.{option}: {private} is not an RSA private key (UEFI "
                f"and systemd-measure want RSA 2048); `{KEYGEN}` makes one")
        own = run("openssl", "pkey", "-pubout", "-in", private, capture=True)
        if public.suffix == ".crt":
            theirs = run("openssl", "x509", "-noout", "-pubkey", "-in", public, capture=True)
        else:
            theirs = run("openssl", "pkey", "-pubin", "-pubout", "-in", public, capture=True)
        if own != theirs:
            die(f"boot.secureBoot.{option}: {private} does not belong to the configured "
                f"public key ({public.name}); point both options at one key set made by "
                f"`{KEYGEN}`")
    return signing


# What systemd-stub measures into PCR 11 (systemd-measure's section list; .pcrsig is not).
MEASURED_SECTIONS = (".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb",
                     ".uname", ".sbat", ".pcrpkey")
# ukify's default phases, which the UKI's .pcrsig signs (docs/secure-boot.md).
PCR_PHASES = ("enter-initrd", "enter-initrd:leave-initrd", "enter-initrd:leave-initrd:sysinit",
              "enter-initrd:leave-initrd:sysinit:ready")


def pe_sections(path: Path) -> dict[str, bytes]:
    """A PE image's sections as the stub sees them: VirtualSize bytes (at most the raw data)."""
    data = path.read_bytes()
    (pe,) = struct.unpack_from("<I", data, 0x3C)
    if data[:2] != b"MZ" or data[pe:pe + 4] != b"PE\0\0":
        die(f"{path} is not a PE image")
    count, optional_size = struct.unpack_from("<H12xH", data, pe + 6)
    table = pe + 24 + optional_size
    found = {}
    for i in range(count):
        name, virtual_size, _, raw_size, raw_offset = struct.unpack_from(
            "<8sIIII", data, table + 40 * i)
        size = min(virtual_size, raw_size) if virtual_size else raw_size
        found[name.rstrip(b"\0").decode()] = data[raw_offset:raw_offset + size]
    return found


def predict_pcr11(uki: Path, work: Path) -> dict[str, str]:
    """PCR 11 (sha256) after each boot phase, computed from the UKI's own sections with
    `systemd-measure calculate`: what a TPM must read on a machine that booted this UKI
    (the VM tests compare; docs/secure-boot.md)."""
    sections = work / "measured"
    sections.mkdir()
    args = []
    for name, content in pe_sections(uki).items():
        if name in MEASURED_SECTIONS:
            (sections / name[1:]).write_bytes(content)
            args.append(f"--{name[1:]}={sections / name[1:]}")
    output = run("/usr/lib/systemd/systemd-measure", "calculate", *args, "--bank=sha256",
                 *(f"--phase={phase}" for phase in PCR_PHASES), "--json=short", capture=True)
    entries = json.loads(output).get("sha256", [])
    predicted = {str(e["phase"]): str(e["hash"]) for e in entries if e.get("pcr") == 11}
    if sorted(predicted) != sorted(PCR_PHASES):
        die(f"systemd-measure predicted PCR 11 for {sorted(predicted)}, not {PCR_PHASES}")
    return predicted


def sign_esp(esp: Path, signing: Signing, sb: SecureBootConfig, work: Path) -> None:
    """systemd-boot signed with db (both ESP copies), the enrolment files in
    loader/keys/auto/ (the set systemd-boot enrols by itself) and secure-boot-enroll."""
    log(f"Signing systemd-boot; enrolment: {sb.enrol}")
    signed = work / "systemd-bootx64.efi.signed"
    run("sbsign", "--key", signing.key, "--cert", signing.certificate, "--output", signed,
        esp / "EFI/systemd/systemd-bootx64.efi")
    for target in ("EFI/BOOT/BOOTX64.EFI", "EFI/systemd/systemd-bootx64.efi"):
        shutil.copyfile(signed, esp / target)
    if sb.enrolment_files:
        keys = esp / "loader/keys/auto"
        keys.mkdir(parents=True)
        for name, path in sb.enrolment_files.items():
            shutil.copyfile(path, keys / f"{name}.auth")
    loader = esp / "loader/loader.conf"
    loader.write_text(loader.read_text() + f"secure-boot-enroll {sb.enrol}\n")
    normalise_mtimes(esp)


def check_signatures(esp: Path, uki: Path, signing: Signing) -> None:
    """What the firmware will check: both binaries verify with the db certificate, and the
    UKI carries the PCR 11 policy signature and its public key."""
    log("Checking the signatures (sbverify) and the UKI's PCR policy sections")
    for binary in (uki, esp / "EFI/BOOT/BOOTX64.EFI", esp / "EFI/systemd/systemd-bootx64.efi"):
        result = subprocess.run(["sbverify", "--cert", str(signing.certificate), str(binary)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            die(f"{binary.name} does not verify with the db certificate: "
                f"{result.stderr.strip()}")
    sections = json.loads(run("ukify", "--json=short", "inspect", uki, capture=True))
    if missing := [s for s in (".pcrsig", ".pcrpkey") if s not in sections]:
        die(f"the UKI lacks {', '.join(missing)}: ukify did not sign the PCR policy")


def make_usr_filesystem(usr: Path, cfg: DiskConfig, work: Path) -> Path:
    """work/usr.erofs from the usr step's tree, with ordinary modes plus the special ones.
    The Nix store keeps only one permission bit (r-x or r--) and is not writable for the
    build's user namespace; the image gets a copy with ordinary modes (0755 / 0644)."""
    log("Copying /usr with ordinary permissions")
    tree = work / "tree"
    copy_tree(usr / "usr", tree / "usr")
    restore_modes(tree)
    modes = read_special_modes(usr / "nix-support/special-modes")
    log(f"Making the usr file system (erofs, {cfg.compression}); special modes: "
        f"{', '.join(f'/usr/{m}' for m in sorted(modes)) or 'none'}")
    write_usr_tar(tree, modes, work / "usr.tar")
    erofs = work / "usr.erofs"
    fs_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"sonix:{cfg.name}_{cfg.version}:usr")
    # -Enoinline_data: no file data inline after its inode. Inodes hold their data's block
    # address, so a file added early in the tree changes every later inode; with data inline
    # those inodes lie among small files' bytes all over the image and a delta update fetched
    # 7.7 % of it for one added package, without it 1.7 %, for an image 8 % larger
    # (docs/updates.md, "Delta updates").
    run("mkfs.erofs", "--quiet", "--tar=f", *EROFS_COMPRESSION[cfg.compression],
        "-Enoinline_data", f"-U{fs_uuid}", f"-T{EPOCH}", "--all-time", erofs,
        work / "usr.tar")
    normalise_mtimes(tree)
    return erofs


def write_repart_definitions(directory: Path, cfg: DiskConfig, esp: Path, usr: Path) -> None:
    """usr is the erofs image that repart copies into the usr slot and protects with verity."""
    label = f"{cfg.name}_{cfg.version}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "00-esp.conf").write_text(
        "[Partition]\nType=esp\nLabel=ESP\nFormat=vfat\n"
        f"SizeMinBytes={cfg.esp_size}\nSizeMaxBytes={cfg.esp_size}\nCopyFiles={esp}:/\n"
    )
    # 4 KiB verity blocks, on both definitions: with --sector-size=512 repart would otherwise
    # use 512-byte blocks, an 8x larger hash tree (probe notes, pitfall 2).
    blocks = "VerityDataBlockSizeBytes=4096\nVerityHashBlockSizeBytes=4096\n"
    (directory / "10-usr.conf").write_text(
        f"[Partition]\nType=usr\nLabel={label}\n"
        f"CopyBlocks={usr}\nVerity=data\nVerityMatchKey=usr\n{blocks}"
        f"SizeMinBytes={cfg.usr_slot_size}\nSizeMaxBytes={cfg.usr_slot_size}\nReadOnly=yes\n"
    )
    (directory / "11-usr-verity.conf").write_text(
        f"[Partition]\nType=usr-verity\nLabel={label}_verity\nVerity=hash\n"
        f"VerityMatchKey=usr\n{blocks}"
        f"SizeMinBytes={cfg.usr_verity_slot_size}\nSizeMaxBytes={cfg.usr_verity_slot_size}\n"
        "ReadOnly=yes\n"
    )


def repart(disk: Path, definitions: Path, seed: str, *extra: str) -> list[dict[str, object]]:
    output = run(
        "systemd-repart", "--offline=yes", "--sector-size=512", "--no-pager", "--dry-run=no",
        "--json=short", f"--seed={seed}", f"--definitions={definitions}", *extra, disk,
        capture=True,
    )
    parsed: list[dict[str, object]] = json.loads(output)
    return parsed


def make_usr_partitions(disk: Path, definitions: Path, seed: str) -> str:
    """Pass 1: a new disk with the usr partition and its verity hash tree (the ESP deferred);
    returns the root hash."""
    log("Building the usr partition and its verity hash tree (pass 1)")
    started = time.monotonic()
    parts = repart(disk, definitions, seed, "--empty=create", "--size=auto",
                   "--defer-partitions=esp")
    usrhash = next((str(p["roothash"]) for p in parts if p.get("roothash")), None)
    if not usrhash:
        die("systemd-repart reported no verity root hash for the usr partition")
    log(f"usr root hash {usrhash} ({time.monotonic() - started:.1f}s)")
    return usrhash


@dataclass(frozen=True)
class Uki:
    path: Path
    kernel: str  # its version (uname -r)
    cmdline: str


def make_uki(usr: Path, initrd: Path, cfg: DiskConfig, usrhash: str, out: Path,
             signing: Signing | None = None) -> Uki:
    """With signing: signed with db (sbsign) and with a signed PCR 11 policy for ukify's
    default boot phases (systemd-measure sign), whose public key is the UKI's .pcrpkey."""
    log("Building the UKI" + (" (signed, with a signed PCR 11 policy)" if signing else ""))
    kernel = kernel_version(usr)
    params = list(cfg.kernel_params)
    lsm = lsm_parameter(usr / f"boot/config-{kernel}", list(cfg.disabled_lsms), params)
    cmdline = " ".join([*params, *([lsm] if lsm else []), f"usrhash={usrhash}"])
    uki = out / f"{cfg.name}_{cfg.version}.efi"
    run(
        "ukify", "build", f"--linux={usr}/boot/vmlinuz-{kernel}", f"--initrd={initrd}",
        f"--cmdline={cmdline}", f"--os-release=@{usr}/usr/lib/os-release",
        f"--uname={kernel}", f"--stub={cfg.stub_dir}/linuxx64.efi.stub", f"--output={uki}",
        *([] if signing is None else [
            f"--secureboot-private-key={signing.key}",
            f"--secureboot-certificate={signing.certificate}",
            f"--pcr-private-key={signing.pcr_private_key}",
            f"--pcr-public-key={signing.pcr_public_key}",
        ]),
    )
    return Uki(uki, kernel, cmdline)


def stage_esp(esp: Path, uki: Path, cfg: DiskConfig) -> str:
    """The ESP's files: systemd-boot, loader.conf and the UKI named with its boot counter
    (returned: the entry's path in the ESP)."""
    log("Staging the ESP (systemd-boot, the UKI with a boot counter)")
    boot_efi = cfg.stub_dir / "systemd-bootx64.efi"
    for target in ("EFI/BOOT/BOOTX64.EFI", "EFI/systemd/systemd-bootx64.efi"):
        (esp / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(boot_efi, esp / target)
    counter = f"+{cfg.tries}" if cfg.tries > 0 else ""
    entry = f"EFI/Linux/{cfg.name}_{cfg.version}{counter}.efi"
    (esp / entry).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(uki, esp / entry)
    (esp / "loader").mkdir(exist_ok=True)
    (esp / "loader/loader.conf").write_text(f"timeout {cfg.timeout}\nconsole-mode keep\n")
    normalise_mtimes(esp)
    return entry


def write_disk_manifest(out: Path, cfg: DiskConfig, disk: Path, uki: Uki, initrd: Path,
                        usrhash: str, entry: str, parts: list[dict[str, object]],
                        secure_boot: str | None = None,
                        pcr11: dict[str, str] | None = None) -> None:
    """out/manifest.json: what the release tools and the benchmarks read about the image."""
    manifest = {
        "name": cfg.name,
        "version": cfg.version,
        "usrhash": usrhash,
        "kernel": uki.kernel,
        "cmdline": uki.cmdline,
        "uki": uki.path.name,
        "esp_entry": entry,
        "secure_boot": secure_boot,  # boot.secureBoot.enrol when signed, else null
        "pcr11": pcr11,  # signed UKIs: boot phase → predicted PCR 11 (sha256), else null
        "bytes": {
            "disk": disk.stat().st_size,
            "disk_allocated": disk.stat().st_blocks * 512,
            "uki": uki.path.stat().st_size,
            "initrd": initrd.stat().st_size,
            "usr_fs": usr_filesystem_size(disk, parts),
            "usr_slot": size_bytes(cfg.usr_slot_size),
        },
        "partitions": parts,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def usr_filesystem_size(disk: Path, parts: list[dict[str, object]]) -> int:
    """Bytes used by the erofs file system in the usr slot (its superblock says)."""
    part = next(p for p in parts if p.get("type") == "usr-x86-64")
    with disk.open("rb") as f:
        f.seek(int(str(part["offset"])) + 1024)
        sb = f.read(64)
    magic, _, _, blkszbits = struct.unpack_from("<IIIB", sb, 0)
    if magic != 0xE0F5E1E2:
        die("the usr partition does not start with an erofs superblock")
    (blocks,) = struct.unpack_from("<I", sb, 36)
    return int(blocks) << int(blkszbits)


def check_usrhash(disk: Path, uki: Path, usrhash: str) -> None:
    """The usr and usr-verity partition UUIDs are the halves of the root hash (that is how
    the initrd finds them from usrhash=), and the UKI's command line carries that hash."""
    table = json.loads(run("sfdisk", "--json", disk, capture=True))["partitiontable"]
    uuids = {p.get("name"): str(p.get("uuid", "")).lower() for p in table["partitions"]}
    expect_data = str(uuid.UUID(usrhash[:32]))
    expect_hash = str(uuid.UUID(usrhash[32:64]))
    if expect_data not in uuids.values() or expect_hash not in uuids.values():
        die(f"partition table {uuids} does not carry the usr root hash {usrhash}")
    inspect = run("ukify", "--json=short", "inspect", uki, capture=True)
    cmdline = json.loads(inspect).get(".cmdline", {}).get("text", "")
    if f"usrhash={usrhash}" not in cmdline.split():
        die(f"the UKI's command line ({cmdline!r}) does not carry usrhash={usrhash}")


# ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)

    def verb(name: str, *paths: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name)
        for option in (*paths, "out"):
            p.add_argument(f"--{option}", type=Path, required=True)
        return p

    verb("usr", "base", "manifest", "os-release")
    p = verb("initrd", "usr", "base", "manifest", "os-release")
    p.add_argument("--modules", default="")
    p.add_argument("--binaries", default="")
    p.add_argument("--compressor", choices=sorted(INITRD_COMPRESSORS), default="xz")
    p.add_argument("--network", action="store_true", help="systemd-networkd in the initrd")
    p = verb("disk", "usr", "initrd", "config")
    p.add_argument("--secure-boot", type=Path, default=None, metavar="JSON",
                   help="boot.secureBoot.signing: sign and ship the enrolment files")
    args = parser.parse_args()

    try:
        if args.verb == "usr":
            make_usr(args.base, read_manifest(args.manifest, "usrFiles"), args.os_release,
                     args.out)
        elif args.verb == "initrd":
            spec = InitrdSpec(
                usr=args.usr, base=args.base, os_release=args.os_release,
                files=read_manifest(args.manifest, "initrdUsrFiles"),
                modules=tuple(m for m in args.modules.split(",") if m),
                binaries=tuple(b for b in args.binaries.split(",") if b),
                compressor=args.compressor, network=args.network,
            )
            make_initrd(spec, args.out)
        else:
            secure_boot = SecureBootConfig.read(args.secure_boot) if args.secure_boot else None
            make_disk(args.usr, args.initrd, DiskConfig.read(args.config), args.out, secure_boot)
    except ConfigError as e:
        die(str(e))


if __name__ == "__main__":
    main()
