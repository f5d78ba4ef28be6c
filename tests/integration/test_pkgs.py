"""pkgs/ end to end against the Debian mirror: lock, fetch, and the /usr tree of the minimal
server set. Downloads are shared through the Nix store, so only the first run fetches."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sonix import ui
from sonix.debian import fetch, lock
from sonix.debian.lock import Lock

pytestmark = pytest.mark.network

def sonix(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SONIX_ROOT": str(root)}
    result = subprocess.run(
        [sys.executable, "-m", "sonix", *args],
        capture_output=True, text=True, env=env, cwd=root, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def nix_build(root: Path, expr: str) -> Path:
    result = subprocess.run(
        ["nix-build", "--no-out-link", "-E", expr],
        capture_output=True, text=True, cwd=root, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.split()[-1])


def in_tree(tree: Path, *argv: str) -> str:
    """Run a program of the tree with the tree as / (like a booted system would)."""
    result = subprocess.run(
        ["bwrap", "--ro-bind", str(tree), "/", "--dev", "/dev", "--proc", "/proc",
         "--tmpfs", "/tmp", "--clearenv", "--setenv", "PATH", "/usr/sbin:/usr/bin", *argv],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_lock_is_stable(root: Path, tmp_path: Path) -> None:
    first = Path(sonix(root, "lock", "-o", str(tmp_path / "a.json")).stdout.strip())
    second = Path(sonix(root, "lock", "--no-update", "-o", str(tmp_path / "b.json")).stdout.strip())
    assert first.read_text() == second.read_text()
    data = json.loads(first.read_text())
    assert {"system", "tools"} <= data["sets"].keys()
    assert "systemd" in data["sets"]["system"]["closure"]
    # Stubbed in the sets with stubs (sonix builds its own initrd); only the bench's Debian
    # peer (`stubs = false`) installs the real one.
    assert "initramfs-tools" not in data["sets"]["system"]["closure"]
    assert "initramfs-tools" in data["sets"]["peer"]["closure"]


@pytest.fixture(scope="module")
def fetched(root: Path) -> None:
    sonix(root, "fetch", "--set", "system", "--set", "tools")
    again = sonix(root, "fetch", "--set", "system", "--set", "tools")
    assert again.stdout == ""  # nothing added: everything is in the store
    assert ".debs are in the Nix store" in again.stderr


@pytest.fixture(scope="module")
def system_tree(root: Path, fetched: None) -> Path:
    return nix_build(root, "(import ./pkgs { }).systemTree")


def test_usr_tree_has_systemd_and_usr_merge(system_tree: Path) -> None:
    systemd = system_tree / "usr/lib/systemd/systemd"
    assert systemd.is_file() and os.access(systemd, os.X_OK)
    assert os.readlink(system_tree / "bin") == "usr/bin"
    assert os.readlink(system_tree / "usr/bin/sh") == "dash"
    assert "systemd 257" in in_tree(system_tree, "/usr/bin/systemctl", "--version")


def test_usr_tree_has_a_working_ld_so_cache(system_tree: Path) -> None:
    listing = in_tree(system_tree, "/usr/sbin/ldconfig", "-p")
    assert "libc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6" in listing
    assert "libkmod.so.2" in listing
    # python3 loads libssl & co. through the cache
    assert in_tree(system_tree, "/usr/bin/python3", "-c", "import ssl; print('ok')") == "ok\n"


def test_usr_tree_has_modules_dep_with_dependencies(system_tree: Path) -> None:
    (kernel,) = (system_tree / "usr/lib/modules").iterdir()
    lines = (kernel / "modules.dep").read_text().splitlines()
    deps = dict(line.split(":", 1) for line in lines)
    assert deps["kernel/fs/fat/vfat.ko.xz"].split() == ["kernel/fs/fat/fat.ko.xz"]
    # kmod found liblzma/libzstd: many modules have dependencies (none would if it had not)
    assert sum(1 for d in deps.values() if d.strip()) > 100
    assert (kernel / "modules.dep.bin").is_file()


def test_usr_tree_has_users_and_alternatives(system_tree: Path) -> None:
    passwd = (system_tree / "etc/passwd").read_text()
    assert passwd.startswith("root:*:0:0:")  # base-passwd
    assert "\nmessagebus:x:" in passwd  # sysusers (dbus)
    assert (system_tree / "etc/shadow").is_file()
    assert os.readlink(system_tree / "usr/bin/awk") == "mawk"
    modes = (system_tree / "nix-support/special-modes").read_text().splitlines()
    assert "/usr/bin/mount 4755 0 0" in modes


def test_usr_tree_has_a_dpkg_status(system_tree: Path) -> None:
    listing = in_tree(system_tree, "/usr/bin/dpkg-query", "-W", "-f", "${Package} ${Status}\\n")
    assert "systemd install ok installed" in listing.splitlines()


def test_run_in_tools_from_a_derivation(root: Path, fetched: None) -> None:
    out = nix_build(root, r'''
      let pkgs = import ./pkgs { }; in
      derivation {
        name = "run-in-tools-check"; system = builtins.currentSystem; builder = "/bin/sh";
        args = [ "-c" ''
          ${pkgs.runInTools} sh -c 'ukify --version; systemd-repart --version
            python3 -c "import pefile"; mkfs.erofs -V; veritysetup --version; id -u' > $out
        '' ];
      }''')
    text = out.read_text()
    assert "ukify 257" in text and "systemd 257" in text
    assert "mkfs.erofs" in text and "veritysetup" in text
    assert text.splitlines()[-1] == "0"


def test_tools_build_an_erofs_verity_disk(root: Path, fetched: None) -> None:
    """systemd-repart 257 (offline) with mkfs.erofs, libcryptsetup (verity) and mkfs.vfat +
    mtools from the tools set, as a nixbld user. repart copies files with their owners, and
    store files belong to a uid the build's user namespace cannot map: copy them first."""
    out = nix_build(root, r"""
      let pkgs = import ./pkgs { }; in
      derivation {
        name = "tools-disk-check"; system = builtins.currentSystem; builder = "/bin/sh";
        PATH = "/usr/bin:/bin";
        args = [ "-c" ''
          set -e; mkdir -p $out defs src/efi
          cp -r ${pkgs.dash}/usr src/usr
          cp ${pkgs.systemd-boot-efi}/usr/lib/systemd/boot/efi/systemd-bootx64.efi src/efi/
          chmod -R u+w src
          d=$PWD/defs
          conf() { f=$1; shift; printf '%s\n' '[Partition]' "$@" > $d/$f; }
          conf 0.conf Type=esp Format=vfat SizeMinBytes=32M SizeMaxBytes=32M \
            CopyFiles=$PWD/src/efi:/EFI/BOOT
          conf 1.conf Type=usr Format=erofs Verity=data VerityMatchKey=usr Minimize=best \
            CopyFiles=$PWD/src/usr:/
          conf 2.conf Type=usr-verity Verity=hash VerityMatchKey=usr Minimize=best
          ${pkgs.runInTools} systemd-repart --empty=create --size=auto --offline=yes \
            --sector-size=512 --no-pager --dry-run=no --definitions=$d --json=short \
            --seed=0e9a6a50-0f2e-4ab4-9a0c-0b4a2c8c1d11 $out/disk.raw > $out/repart.json
          ${pkgs.runInTools} mdir -i $out/disk.raw@@1M ::/EFI/BOOT > $out/esp.txt
        '' ];
      }""")
    partitions = json.loads((out / "repart.json").read_text())
    assert {p["type"] for p in partitions} >= {"esp", "usr-x86-64", "usr-x86-64-verity"}
    assert any(p.get("roothash") for p in partitions)
    assert "systemd-bootx64" in (out / "esp.txt").read_text().lower()


def test_usr_tree_exclude_leaves_paths_out(root: Path, fetched: None) -> None:
    tree = nix_build(root, '''(import ./pkgs { }).usrTree {
      packages = [ "mount" ]; exclude = [ "usr/share/man/*" "usr/bin/umount" ]; }''')
    assert (tree / "usr/bin/mount").is_file()
    assert not (tree / "usr/bin/umount").exists()
    assert list((tree / "usr/share/man").iterdir()) == []
    modes = (tree / "nix-support/special-modes").read_text()
    assert "/usr/bin/mount 4755" in modes and "umount" not in modes


def test_tools_build_a_uki(root: Path, system_tree: Path) -> None:
    """ukify 257 (python3 + pefile) with the systemd-stub of the tools set."""
    out = nix_build(root, r"""
      let pkgs = import ./pkgs { }; tree = pkgs.systemTree; in
      derivation {
        name = "uki-check"; system = builtins.currentSystem; builder = "/bin/sh";
        PATH = "/usr/bin:/bin";
        args = [ "-c" ''
          set -e; mkdir $out; echo initrd > initrd
          ${pkgs.runInTools} sh -c "ukify build --linux ${tree}/boot/vmlinuz-* \
            --initrd $PWD/initrd --cmdline console=ttyS0 --os-release @${tree}/usr/lib/os-release \
            --stub /usr/lib/systemd/boot/efi/linuxx64.efi.stub --output $out/test.efi
            ukify inspect $out/test.efi" > $out/inspect.txt
        '' ];
      }""")
    inspect = (out / "inspect.txt").read_text()
    assert ".linux:" in inspect and ".initrd:" in inspect and "console=ttyS0" in inspect


def _altered(root: Path, name: str, *, sha256: str, version: str | None = None) -> Lock:
    """The repository's lock with one package's entry changed."""
    locked = lock.read_lock(root / "pkgs" / "lock.json")
    old = locked.packages[name]
    new = dataclasses.replace(old, sha256=sha256, version=version or old.version)
    packages = {**locked.packages, name: new}
    return dataclasses.replace(locked, packages=packages)


def test_fetch_a_version_the_mirror_does_not_serve(root: Path) -> None:
    locked = _altered(root, "base-passwd", version="0.0.1-sonix", sha256="1" * 64)
    with pytest.raises(ui.SonixError) as error:
        fetch.fetch(locked, ["base-passwd"])
    assert "no longer serves 1 locked package version: base-passwd=0.0.1-sonix" in str(error.value)
    assert "run `sonix lock`" in str(error.value)


def test_fetch_a_download_with_another_hash_adds_nothing(root: Path) -> None:
    locked = _altered(root, "base-passwd", sha256="2" * 64)
    with pytest.raises(ui.SonixError) as error:
        fetch.fetch(locked, ["base-passwd"])
    assert "do not match pkgs/lock.json (nothing was added to the store)" in str(error.value)
    assert not fetch.store_path(locked.packages["base-passwd"]).exists()


def test_usr_tree_is_reproducible(root: Path, fetched: None) -> None:
    """Built twice (`nix-build --check`), a tree with every maintainer-script replacement
    (passwd, alternatives, ld.so.cache, depmod, sysusers) is bit for bit the same."""
    expr = '''(import ./pkgs { }).usrTree { name = "reproducible-check"; packages = [
      "base-passwd" "dash" "mawk" "libc-bin" "systemd" "kmod" "liblzma5" "libzstd1"
      "linux-image-cloud-amd64" ]; }'''
    nix_build(root, expr)
    result = subprocess.run(
        ["nix-build", "--no-out-link", "--check", "-E", expr],
        capture_output=True, text=True, cwd=root, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
