"""The benchmark peer: the same Debian 13 packages, installed the way a Debian user would.

Packages: the closure of the `system` and `peer` sets of pkgs/lock.json (the exact locked
versions). The root is made like `mmdebstrap --variant=required` (root mode) makes one:

1. `make_repository`: a flat apt repository (`Packages` + the locked .debs from the Nix store);
2. `extract_essential`: the Essential packages and apt (with their dependencies) unpacked with
   `dpkg-deb -x`, just enough for dpkg to run inside the root;
3. `install_essential`: `dpkg --install --force-depends` of those inside the root (bubblewrap
   with the root as `/`): their maintainer scripts run, dpkg registers them;
4. `install_packages`: `apt-get install` of everything else from the repository inside the
   root: apt orders the unpacking and configuration, every maintainer script and trigger runs
   (the kernel's postinst runs initramfs-tools' `update-initramfs`);
5. `configure_system`: what a person installing a server does afterwards: hostname, a
   systemd-networkd DHCP `.network` file and `systemctl enable systemd-networkd`, and, for the
   benchmark driver only, the sonix test backdoor (modules/testing/backdoor.*);
6. `make_esp` + `make_disk`: a GPT disk with an ESP (systemd-boot, a Boot Loader
   Specification Type #1 entry for the kernel and the initramfs-tools initrd, laid out like
   `kernel-install` does) and an ext4 root, written by systemd-repart 257 from the locked tools.

Everything runs on the host as root (dpkg changes owners: no user namespace); the tools are
trixie's own (dpkg, apt and update-initramfs of the root, systemd-repart of the tools tree),
the host contributes dpkg-deb (as pkgs/ does) and bubblewrap.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sonix import nix, paths, process, ui
from sonix.bench import common
from sonix.debian import control, fetch
from sonix.debian.lock import Lock, LockedPackage

# Bump when the image changes for the same lock (part of the cache key).
BUILD_VERSION = "peer-2"
SETS = ("system", "peer")
HOSTNAME = "debian-peer"
# Fixed partition UUIDs (a Debian installer would make random ones): the kernel command line
# and /etc/fstab name the partitions by them.
ROOT_PARTUUID = "6c3b7e2a-5d1f-4b8e-9a47-0d2f1c3e5b61"
ESP_PARTUUID = "0f5e2d4c-8a6b-4c1d-b3e2-7a9f6d5c4b32"
ESP_BYTES = 256 << 20
ROOT_MIN_BYTES = 1 << 30  # free room in the root, as an installed system has
# The same console and verbosity as sonix images (a Debian installer adds `quiet`).
KERNEL_OPTIONS = f"root=PARTUUID={ROOT_PARTUUID} ro console=ttyS0,115200"
SOURCE_DATE_EPOCH = "1735689600"  # pkgs/default.nix's: 2025-01-01
REPO_IN_ROOT = "/run/sonix-peer-repo"
OS_TITLE = "Debian GNU/Linux 13 (trixie)"


@dataclass(frozen=True)
class PeerImage:
    """The built peer: `disk` boots with OVMF; the rest is for inspection and sizes."""

    directory: Path
    disk: Path  # GPT: ESP (systemd-boot) + ext4 root
    kernel: Path  # copies of what the ESP holds
    initrd: Path
    manifest: Path  # JSON: kernel version, command line, packages, sizes in bytes

    def sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = json.loads(self.manifest.read_text())["bytes"]
        return sizes


# ---- pure parts ---------------------------------------------------------------------------


def packages_index(packages: Sequence[tuple[LockedPackage, str]]) -> str:
    """The `Packages` file of a flat repository: each .deb's control file plus Filename,
    Size and SHA256 from the lock (the .debs are `pool/<store name>`)."""
    stanzas = []
    for package, control_text in sorted(packages, key=lambda p: p[0].name):
        fields = control.parse_stanzas(control_text)
        if len(fields) != 1 or fields[0].get("Package") != package.name:
            raise ui.die(f"the control file of {package.store_name} is not {package.name}'s")
        if fields[0].get("Version") != package.version:
            raise ui.die(
                f"{package.store_name} has version {fields[0].get('Version')}, the lock says "
                f"{package.version}",
                hint="run `sonix fetch` (the store path does not hold the locked .deb)",
            )
        stanzas.append(
            control_text.rstrip("\n")
            + f"\nFilename: pool/{package.store_name}\nSize: {package.size}"
            + f"\nSHA256: {package.sha256}\n"
        )
    return "\n".join(stanzas)


def essential_closure(locked: Lock, names: Sequence[str], controls: Mapping[str, str]) -> list[str]:
    """What mmdebstrap extracts first: the Essential packages and apt, with dependencies."""
    essential = [
        n for n in names
        if control.parse_stanzas(controls[n])[0].get("Essential", "").lower() == "yes"
    ]
    return locked.closure([*essential, "apt"])


def machine_id(key: str) -> str:
    """A fixed machine id per build: an installed system has one (no first-boot logic)."""
    return hashlib.sha256(f"sonix-peer {key}".encode()).hexdigest()[:32]


def loader_entry(token: str, kernel_version: str, options: str, title: str = OS_TITLE) -> str:
    """A Boot Loader Specification Type #1 entry as `kernel-install add` writes it (layout
    `bls`, entry token = machine id): kernel and initrd under /<token>/<version>/."""
    return (
        f"# Boot Loader Specification type#1 entry\n"
        f"title      {title}\n"
        f"version    {kernel_version}\n"
        f"machine-id {token}\n"
        f"sort-key   debian\n"
        f"options    {options}\n"
        f"linux      /{token}/{kernel_version}/linux\n"
        f"initrd     /{token}/{kernel_version}/initrd.img-{kernel_version}\n"
    )


def fstab() -> str:
    """/etc/fstab as the Debian installer writes it (by PARTUUID here: fixed and known)."""
    return (
        "# <file system> <mount point> <type> <options> <dump> <pass>\n"
        f"PARTUUID={ROOT_PARTUUID} / ext4 errors=remount-ro 0 1\n"
        f"PARTUUID={ESP_PARTUUID} /boot/efi vfat umask=0077 0 1\n"
    )


def network_file() -> str:
    """DHCP on every Ethernet link: what the sonix minimal server's networking does too."""
    return "[Match]\nType=ether\nName=en* eth*\n\n[Network]\nDHCP=yes\nIPv6AcceptRA=yes\n"


def repart_definitions(esp: str, root: str) -> dict[str, str]:
    """systemd-repart definitions of the disk (paths as seen inside the tools sandbox)."""
    return {
        "00-esp.conf": (
            f"[Partition]\nType=esp\nLabel=ESP\nUUID={ESP_PARTUUID}\nFormat=vfat\n"
            f"SizeMinBytes={ESP_BYTES}\nSizeMaxBytes={ESP_BYTES}\nCopyFiles={esp}:/\n"
        ),
        "10-root.conf": (
            f"[Partition]\nType=root\nLabel=root\nUUID={ROOT_PARTUUID}\nFormat=ext4\n"
            f"CopyFiles={root}:/\nMinimize=guess\nSizeMinBytes={ROOT_MIN_BYTES}\n"
        ),
    }


def backdoor_unit(backdoor_nix: str) -> str:
    """The unit text of modules/testing/backdoor.nix (the one source of it), taken from the
    file's `"lib/systemd/system/sonix-backdoor.service".text = '' … '';`."""
    start_marker = '"lib/systemd/system/sonix-backdoor.service".text = \'\'\n'
    start = backdoor_nix.find(start_marker)
    end = backdoor_nix.find("'';", start)
    if start < 0 or end < 0:
        raise ui.die("modules/testing/backdoor.nix no longer has the unit text where the peer "
                     "builder looks for it", hint="update sonix.bench.peer.backdoor_unit")
    lines = backdoor_nix[start + len(start_marker) : end].splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "".join(line[indent:] + "\n" for line in lines).rstrip("\n") + "\n"


def in_root_argv(root: Path, repo: Path | None, argv: Sequence[str]) -> list[str]:
    """bubblewrap with `root` as / (as the real root user: dpkg sets owners), like a chroot
    with fresh /dev, /proc, /tmp, /run; the Nix store read-only; the repository at
    REPO_IN_ROOT."""
    args = [
        "bwrap", "--bind", str(root), "/", "--dev", "/dev", "--proc", "/proc",
        "--tmpfs", "/tmp", "--tmpfs", "/run", "--ro-bind", "/nix/store", "/nix/store",
        "--unshare-pid", "--die-with-parent", "--clearenv",
        "--setenv", "PATH", "/usr/sbin:/usr/bin", "--setenv", "HOME", "/root",
        "--setenv", "LC_ALL", "C.UTF-8", "--setenv", "DEBIAN_FRONTEND", "noninteractive",
        "--setenv", "DEBCONF_NONINTERACTIVE_SEEN", "true",
        "--setenv", "SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH,
    ]
    if repo is not None:
        args += ["--ro-bind", str(repo), REPO_IN_ROOT]
    return [*args, "--", *argv]


# ---- the steps ----------------------------------------------------------------------------


def read_controls(locked: Lock, names: Sequence[str]) -> dict[str, str]:
    """Each .deb's control file (`dpkg-deb --field`)."""
    return {
        n: process.run(
            ["dpkg-deb", "--field", str(fetch.store_path(locked.packages[n]))], capture=True
        ).stdout
        for n in names
    }


def make_repository(repo: Path, locked: Lock, controls: Mapping[str, str]) -> None:
    (repo / "pool").mkdir(parents=True)
    for name in controls:
        package = locked.packages[name]
        (repo / "pool" / package.store_name).symlink_to(fetch.store_path(package))
    (repo / "Packages").write_text(
        packages_index([(locked.packages[n], text) for n, text in controls.items()])
    )


def extract_essential(root: Path, locked: Lock, names: Sequence[str]) -> None:
    # base-files first: it lays out the merged /usr (bin -> usr/bin, ...) the others rely on.
    for name in sorted(names, key=lambda n: (n != "base-files", n)):
        process.run(["dpkg-deb", "-x", str(fetch.store_path(locked.packages[name])), str(root)])
    # dpkg's database, empty, as mmdebstrap prepares it.
    dpkg = root / "var/lib/dpkg"
    for sub in ("info", "updates", "triggers", "alternatives"):
        (dpkg / sub).mkdir(parents=True, exist_ok=True)
    for empty in ("status", "available"):
        (dpkg / empty).write_text("")
    (dpkg / "arch").write_text("amd64\n")


def prepare_configuration(root: Path) -> None:
    """What exists before packages are configured on an installed system: /etc/fstab (so
    initramfs-tools' fsck hook finds the ext4 root), the hostname, and no services started
    inside the build (there is no running systemd: /run/systemd/system does not exist)."""
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/fstab").write_text(fstab())
    (root / "etc/hostname").write_text(HOSTNAME + "\n")
    (root / "etc/hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n")
    # initramfs-tools' fsck hook looks up the root's type on its device, which does not exist
    # while the image is built ("Couldn't identify type of root file system"): name it, so
    # the initrd gets fsck.ext4 as on a system installed onto its disk (initramfs.conf(5)).
    conf_d = root / "etc/initramfs-tools/conf.d"
    conf_d.mkdir(parents=True, exist_ok=True)
    (conf_d / "fstype").write_text("FSTYPE=ext4\n")


def install_essential(root: Path, locked: Lock, names: Sequence[str]) -> None:
    debs = [str(fetch.store_path(locked.packages[n])) for n in sorted(names)]
    process.run(in_root_argv(root, None, ["dpkg", "--install", "--force-depends", *debs]))


def install_packages(root: Path, repo: Path, locked: Lock, names: Sequence[str]) -> None:
    sources = root / "etc/apt/sources.list.d/sonix-peer.sources"
    sources.write_text(
        f"Types: deb\nURIs: file:{REPO_IN_ROOT}\nSuites: ./\nTrusted: yes\n"
    )
    apt = ["-o", "APT::Sandbox::User=root", "-o", "Acquire::Languages=none"]
    process.run(in_root_argv(root, repo, ["apt-get", *apt, "update", "-q"]))
    specs = [f"{n}={locked.packages[n].version}" for n in sorted(names)]
    process.run(in_root_argv(root, repo, [
        "apt-get", *apt, "install", "-y", "-q", "--no-install-recommends", *specs,
    ]))
    sources.unlink()
    # What mmdebstrap cleans: the indices of the (gone) local repository, apt's caches.
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin"):
        for path in root.glob(pattern):
            if path.is_file():
                path.unlink()


def check_installed(root: Path, names: Sequence[str]) -> None:
    status = control.parse_stanzas((root / "var/lib/dpkg/status").read_text())
    installed = {s["Package"] for s in status if s.get("Status") == "install ok installed"}
    missing, extra = sorted(set(names) - installed), sorted(installed - set(names))
    if missing or extra:
        raise ui.die(
            f"the peer's dpkg status differs from the lock (missing: {', '.join(missing) or '-'};"
            f" extra: {', '.join(extra) or '-'})",
            hint="the system and peer sets must be a complete Debian system: run `sonix lock`",
        )


def configure_system(root: Path, key: str) -> None:
    (root / "etc/machine-id").write_text(machine_id(key) + "\n")
    network = root / "etc/systemd/network"
    network.mkdir(parents=True, exist_ok=True)
    (network / "80-ether.network").write_text(network_file())
    process.run(in_root_argv(root, None, ["systemctl", "enable", "systemd-networkd"]))
    install_backdoor(root)


def install_backdoor(root: Path) -> None:
    """The sonix test backdoor, copied from modules/testing: the benchmark driver asks the
    peer through it when multi-user.target is reached, `systemd-analyze time`, memory use."""
    testing = paths.source_root() / "modules" / "testing"
    script = root / "usr/lib/sonix/backdoor"
    script.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(testing / "backdoor.sh", script)
    script.chmod(0o755)
    units = root / "etc/systemd/system"
    (units / "sonix-backdoor.service").write_text(
        backdoor_unit((testing / "backdoor.nix").read_text())
    )
    wants = units / "sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "sonix-backdoor.service").symlink_to("../sonix-backdoor.service")


def make_esp(esp: Path, root: Path, key: str, kernel_version: str) -> tuple[Path, Path]:
    """The ESP as `bootctl install` and `kernel-install add` would fill it. Returns the
    kernel and initrd paths in it."""
    boot_efi = root / "usr/lib/systemd/boot/efi/systemd-bootx64.efi"
    initrd = root / f"boot/initrd.img-{kernel_version}"
    if not initrd.exists():
        raise ui.die(
            f"initramfs-tools made no {initrd.relative_to(root)}",
            hint="see the apt output above (the kernel's postinst runs update-initramfs)",
        )
    token = machine_id(key)
    for directory in ("EFI/BOOT", "EFI/systemd", "loader/entries", f"{token}/{kernel_version}"):
        (esp / directory).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(boot_efi, esp / "EFI/BOOT/BOOTX64.EFI")
    shutil.copyfile(boot_efi, esp / "EFI/systemd/systemd-bootx64.efi")
    (esp / "loader/loader.conf").write_text("#timeout 3\n#console-mode keep\n")
    (esp / "loader/entries.srel").write_text("type1\n")
    (esp / "loader/entries" / f"{token}-{kernel_version}.conf").write_text(
        loader_entry(token, kernel_version, KERNEL_OPTIONS)
    )
    kernel_copy = esp / token / kernel_version / "linux"
    initrd_copy = esp / token / kernel_version / f"initrd.img-{kernel_version}"
    shutil.copyfile(root / f"boot/vmlinuz-{kernel_version}", kernel_copy)
    shutil.copyfile(initrd, initrd_copy)
    return kernel_copy, initrd_copy


def make_disk(disk: Path, root: Path, esp: Path, work: Path) -> None:
    (tools,) = nix.build(paths.source_root() / "pkgs", "tools", what="building the tools tree")
    defs = work / "repart.d"
    defs.mkdir()
    for name, text in repart_definitions("/tmp/esp", "/tmp/root").items():
        (defs / name).write_text(text)
    # As the real root user (no user namespace): repart copies the root with its owners.
    process.run([
        "bwrap", "--ro-bind", str(tools), "/", "--ro-bind", "/nix/store", "/nix/store",
        "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/run",
        "--tmpfs", "/var/tmp",
        "--ro-bind", str(root), "/tmp/root", "--ro-bind", str(esp), "/tmp/esp",
        "--ro-bind", str(defs), "/tmp/defs", "--bind", str(disk.parent), "/tmp/out",
        "--unshare-pid", "--die-with-parent", "--clearenv",
        "--setenv", "PATH", "/usr/sbin:/usr/bin", "--setenv", "LC_ALL", "C.UTF-8",
        "--setenv", "SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH, "--",
        "systemd-repart", "--empty=create", "--size=auto", "--offline=yes",
        "--sector-size=512", "--no-pager", "--dry-run=no", "--seed=" + str(uuid.UUID(int=0)),
        "--definitions=/tmp/defs", f"/tmp/out/{disk.name}",
    ], capture=True)


def _tree_bytes(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            if not path.is_symlink():
                total += path.lstat().st_size
    return total


# ---- the build ----------------------------------------------------------------------------


def _inputs() -> list[bytes]:
    testing = paths.source_root() / "modules" / "testing"
    return [
        BUILD_VERSION.encode(),
        KERNEL_OPTIONS.encode(),
        (testing / "backdoor.sh").read_bytes(),
        (testing / "backdoor.nix").read_bytes(),
    ]


def build_peer(out_dir: Path) -> PeerImage:
    """The peer image in `out_dir/peer-<key>/` (cached per lock and builder inputs)."""
    locked, lock_text = common.read_lock_text()
    missing_sets = [s for s in SETS if s not in locked.sets]
    if missing_sets:
        raise ui.die(
            f"pkgs/lock.json has no set {', '.join(missing_sets)}",
            hint="add [sets.peer] to pkgs/packages.toml and run `sonix lock`",
        )
    if os.geteuid() != 0:
        raise ui.die("building the peer needs root (dpkg sets file owners in the root tree)",
                     hint="run it as root, like the VM tests on this machine kind")
    key = common.cache_key(lock_text, _inputs())
    final = out_dir / f"peer-{key}"
    if not (final / "disk.raw").exists():
        with ui.step("Building the Debian peer image"):
            _build(final, locked, key)
    return PeerImage(
        directory=final, disk=final / "disk.raw", kernel=final / "vmlinuz",
        initrd=final / "initrd.img", manifest=final / "manifest.json",
    )


def build_peer_image(out_dir: Path) -> Path:
    """The peer's disk image (see build_peer)."""
    return build_peer(out_dir).disk


def _build(final: Path, locked: Lock, key: str) -> None:
    names = locked.closure([r for s in SETS for r in locked.sets[s]])
    with ui.step(f"Fetching {len(names)} packages"):
        fetch.fetch(locked, names)
    with common.staging(final) as result:
        work = result.parent
        root, repo, esp = work / "root", work / "repo", work / "esp"
        root.mkdir()
        with ui.step("Reading the control files"):
            controls = read_controls(locked, names)
        make_repository(repo, locked, controls)
        essential = essential_closure(locked, names, controls)
        with ui.step(f"Extracting {len(essential)} essential packages"):
            extract_essential(root, locked, essential)
        prepare_configuration(root)
        with ui.step("Installing them with dpkg"):
            install_essential(root, locked, essential)
        rest = [n for n in names if n not in essential]
        with ui.step(f"Installing {len(rest)} packages with apt"):
            install_packages(root, repo, locked, rest)
        check_installed(root, names)
        configure_system(root, key)
        kernel_version, _ = common.kernel_image(root)
        kernel, initrd = make_esp(esp, root, key, kernel_version)
        with ui.step("Writing the disk image"):
            make_disk(result / "disk.raw", root, esp, work)
        shutil.copyfile(kernel, result / "vmlinuz")
        shutil.copyfile(initrd, result / "initrd.img")
        disk = result / "disk.raw"
        manifest = {
            "kernel_version": kernel_version,
            "kernel_options": KERNEL_OPTIONS,
            "packages": {n: locked.packages[n].version for n in names},
            "bytes": {
                "disk": disk.stat().st_size,
                "disk_allocated": disk.stat().st_blocks * 512,
                "root_tree": _tree_bytes(root),
                "usr_tree": _tree_bytes(root / "usr"),
                "initrd": initrd.stat().st_size,
                "kernel": kernel.stat().st_size,
            },
        }
        (result / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
