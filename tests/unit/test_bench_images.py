"""Pure parts of the benchmark's comparison images (sonix.bench): the peer's repository index,
loader entry, disk definitions and backdoor unit; the floor's init program and cpio."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sonix import paths, ui
from sonix.bench import common, floor, peer
from sonix.debian import control
from sonix.debian.lock import LockedPackage

BASH = LockedPackage("bash", "5.2.37-2+b5", "amd64", "pool/main/b/bash/bash_5.2.37-2+b5_amd64.deb",
                     1234, "ab" * 32)
BASH_CONTROL = (
    "Package: bash\nVersion: 5.2.37-2+b5\nArchitecture: amd64\nEssential: yes\n"
    "Depends: base-files (>= 2.1.12), debianutils (>= 5.6-0.1)\n"
    "Description: GNU Bourne Again SHell\n Bash is an sh-compatible command language.\n"
)


def test_packages_index_adds_the_locked_file_fields() -> None:
    index = peer.packages_index([(BASH, BASH_CONTROL)])
    (stanza,) = control.parse_stanzas(index)
    assert stanza["Package"] == "bash"
    assert stanza["Filename"] == "pool/bash_5.2.37-2+b5_amd64.deb"
    assert stanza["Size"] == "1234"
    assert stanza["SHA256"] == "ab" * 32
    assert stanza["Essential"] == "yes"
    assert index.startswith(BASH_CONTROL)  # the control file unchanged, description included


def test_packages_index_rejects_another_version() -> None:
    with pytest.raises(ui.SonixError, match=r"has version 5\.2\.37-1, the lock says 5\.2\.37-2"):
        peer.packages_index([(BASH, BASH_CONTROL.replace("2+b5", "1", 1))])


def test_loader_entry_like_kernel_install() -> None:
    entry = peer.loader_entry("0123abcd", "6.12.117+deb13-cloud-amd64", "root=X ro")
    assert entry.splitlines()[1:] == [
        "title      Debian GNU/Linux 13 (trixie)",
        "version    6.12.117+deb13-cloud-amd64",
        "machine-id 0123abcd",
        "sort-key   debian",
        "options    root=X ro",
        "linux      /0123abcd/6.12.117+deb13-cloud-amd64/linux",
        "initrd     /0123abcd/6.12.117+deb13-cloud-amd64/initrd.img-6.12.117+deb13-cloud-amd64",
    ]


def test_root_is_named_by_the_same_uuid_everywhere() -> None:
    defs = peer.repart_definitions("/e", "/r")
    assert f"UUID={peer.ROOT_PARTUUID}\nFormat=ext4" in defs["10-root.conf"]
    assert "CopyFiles=/r:/" in defs["10-root.conf"]
    assert f"UUID={peer.ESP_PARTUUID}\nFormat=vfat" in defs["00-esp.conf"]
    assert f"PARTUUID={peer.ROOT_PARTUUID} / ext4" in peer.fstab()
    assert f"root=PARTUUID={peer.ROOT_PARTUUID} " in peer.KERNEL_OPTIONS


def test_backdoor_unit_comes_from_the_module() -> None:
    text = (paths.source_root() / "modules/testing/backdoor.nix").read_text()
    unit = peer.backdoor_unit(text)
    assert unit.startswith("[Unit]\n")
    assert "ExecStart=/usr/lib/sonix/backdoor\n" in unit
    assert "''" not in unit
    with pytest.raises(ui.SonixError, match=r"backdoor\.nix no longer has the unit text"):
        peer.backdoor_unit("{ }")


def test_in_root_argv_runs_as_real_root_with_the_repository() -> None:
    argv = peer.in_root_argv(Path("/w/root"), Path("/w/repo"), ["dpkg", "-l"])
    assert argv[:4] == ["bwrap", "--bind", "/w/root", "/"]
    assert "--unshare-user" not in argv  # dpkg must be able to chown
    assert argv[argv.index("/w/repo") - 1 : argv.index("/w/repo") + 2] == [
        "--ro-bind", "/w/repo", peer.REPO_IN_ROOT]
    assert argv[-3:] == ["--", "dpkg", "-l"]


def test_cache_key_follows_lock_and_inputs() -> None:
    key = common.cache_key("lock", [b"a"])
    assert key == common.cache_key("lock", [b"a"])
    assert key != common.cache_key("lock2", [b"a"])
    assert key != common.cache_key("lock", [b"b"])
    assert len(key) == 16
    assert peer.machine_id(key) != peer.machine_id(key + "x")
    assert len(peer.machine_id(key)) == 32


def test_init_program_is_a_static_x86_64_executable() -> None:
    elf = floor.init_program()
    assert elf[:4] == b"\x7fELF" and elf[4] == 2  # 64-bit
    e_type, e_machine, _, e_entry, e_phoff = struct.unpack_from("<HHIQQ", elf, 16)
    assert (e_type, e_machine, e_phoff) == (2, 0x3E, 64)
    p_type, p_flags, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, 64)
    assert (p_type, p_flags, p_offset, p_filesz) == (1, 5, 0, len(elf))
    assert p_vaddr <= e_entry < p_vaddr + len(elf)
    assert b"FLOOR-READY " in elf and b"/proc/uptime\0" in elf
    assert len(elf) < 512


def test_assemble_resolves_labels_both_ways() -> None:
    code, labels = floor._assemble(
        [("label", "top"), b"\x90", b"\xeb", ("rel8", "top"), b"\xe8", ("rel32", "end"),
         ("label", "end")],
        0x1000,
    )
    assert code == b"\x90\xeb\xfd\xe8\x00\x00\x00\x00"
    assert labels == {"top": 0x1000, "end": 0x1008}


def test_cpio_newc_layout() -> None:
    archive = floor.initramfs()
    assert len(archive) % 512 == 0
    names = []
    offset = 0
    while True:
        header = archive[offset : offset + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rdevmajor, rdevminor, namesize = (
            fields[1], fields[6], fields[9], fields[10], fields[11])
        name = archive[offset + 110 : offset + 110 + namesize - 1].decode()
        if name == "TRAILER!!!":
            break
        names.append((name, oct(mode), (rdevmajor, rdevminor)))
        offset += 110 + namesize
        offset += -offset % 4
        if name == "init":
            assert archive[offset : offset + filesize] == floor.init_program()
        offset += filesize + (-filesize % 4)
    assert names == [
        ("dev", "0o40755", (0, 0)),
        ("dev/console", "0o20600", (5, 1)),
        ("init", "0o100755", (0, 0)),
        ("proc", "0o40755", (0, 0)),
    ]


def test_floor_direct_boot_defaults() -> None:
    result = floor.Floor(Path("/f"), Path("/f/vmlinuz"), Path("/f/initrd.cpio"), "6.12")
    boot = result.direct_boot()
    assert (boot.kernel, boot.initrd) == (Path("/f/vmlinuz"), Path("/f/initrd.cpio"))
    assert boot.append.startswith("console=ttyS0,115200")


def test_staging_renames_into_place_and_prunes_other_keys(tmp_path: Path) -> None:
    (tmp_path / "peer-old").mkdir()
    (tmp_path / "floor-old").mkdir()
    with common.staging(tmp_path / "peer-new") as result:
        (result / "disk.raw").write_text("x")
        assert not (tmp_path / "peer-new").exists()  # nothing half-written in place
    assert (tmp_path / "peer-new" / "disk.raw").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["floor-old", "peer-new"]
    with pytest.raises(RuntimeError), common.staging(tmp_path / "peer-bad"):
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["floor-old", "peer-new"]
