"""Pieces of the image builder (src/sonix/in_nix_build/image.py) that need no tools: the special
modes of nspawn machines' trees, and the reproducible usr tar that applies them."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from sonix.in_nix_build import image


def test_machine_trees_special_modes_become_the_hosts(tmp_path: Path) -> None:
    usr = tmp_path / "out/usr"
    box = usr / "lib/machines/box"
    (box / "usr/bin").mkdir(parents=True)
    (box / "usr/bin/su").write_text("su\n")
    (box / "nix-support").mkdir()
    (box / "nix-support/special-modes").write_text(
        "/etc/shadow 0640 0 42\n/usr/bin/su 4755 0 0\n/usr/sbin/unix_chkpwd 2755 0 42\n")
    (usr / "lib/machines/bare/usr").mkdir(parents=True)  # no modes of its own
    modes_file = tmp_path / "out/nix-support/special-modes"
    modes_file.parent.mkdir()
    modes_file.write_text("/usr/bin/mount 4755 0 0\n")

    image.merge_machine_modes(usr, modes_file)

    assert modes_file.read_text().splitlines() == [
        "/usr/bin/mount 4755 0 0",
        # /etc entries are the container's tmpfiles' business, as on a host.
        "/usr/lib/machines/box/usr/bin/su 4755 0 0",
        "/usr/lib/machines/box/usr/sbin/unix_chkpwd 2755 0 42",
    ]
    assert not (box / "nix-support").exists()
    modes = image.read_special_modes(modes_file)
    assert modes["lib/machines/box/usr/bin/su"] == (0o4755, 0, 0)

    tree = tmp_path / "tree"
    image.copy_tree(tmp_path / "out/usr", tree / "usr")
    image.write_usr_tar(tree, modes, tmp_path / "usr.tar")
    with tarfile.open(tmp_path / "usr.tar") as tar:
        su = tar.getmember("lib/machines/box/usr/bin/su")
    assert (su.mode, su.uid, su.gid) == (0o4755, 0, 0)


def test_no_machines_no_change(tmp_path: Path) -> None:
    (tmp_path / "usr").mkdir()
    modes_file = tmp_path / "special-modes"
    image.merge_machine_modes(tmp_path / "usr", modes_file)
    assert not modes_file.exists()


CONFIG = 'CONFIG_BPF_LSM=y\nCONFIG_LSM="landlock,lockdown,yama,apparmor,tomoyo,bpf,ipe"\n'


def test_lsm_parameter_is_the_kernels_order_without_the_disabled_ones(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(CONFIG)
    assert image.lsm_parameter(config, ["bpf"], ["rw"]) == (
        "lsm=landlock,lockdown,yama,apparmor,tomoyo,ipe")
    assert image.lsm_parameter(config, [], ["rw"]) is None
    # The configuration's own lsm= wins.
    assert image.lsm_parameter(config, ["bpf"], ["lsm=apparmor"]) is None


def test_lsm_parameter_needs_config_lsm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config"
    config.write_text("CONFIG_BPF_LSM=y\n")
    with pytest.raises(SystemExit):
        image.lsm_parameter(config, ["bpf"], [])
    assert "has no CONFIG_LSM, so bpf cannot be turned off" in capsys.readouterr().err


# Trixie's cloud kernel's modules.devname and what `kmod static-nodes --format=tmpfiles` made
# of it in a booted sonix VM (/run/tmpfiles.d/static-nodes.conf).
DEVNAME = """\
# Device nodes to trigger on-demand module loading.
cuse cuse c10:203
autofs4 autofs c10:235
loop loop-control c10:237
tun net/tun c10:200
dm_mod mapper/control c10:236
vfio vfio/vfio c10:196
"""
KMOD_OUTPUT = """\
c! /dev/cuse 0600 - - - 10:203
c! /dev/autofs 0600 - - - 10:235
c! /dev/loop-control 0600 - - - 10:237
d /dev/net 0755 - - -
c! /dev/net/tun 0600 - - - 10:200
d /dev/mapper 0755 - - -
c! /dev/mapper/control 0600 - - - 10:236
d /dev/vfio 0755 - - -
c! /dev/vfio/vfio 0600 - - - 10:196
"""


def test_static_nodes_are_what_kmod_writes_at_boot(tmp_path: Path) -> None:
    (tmp_path / "modules.devname").write_text(DEVNAME + "fake deep/er/node b8:1\n")
    lines = image.static_nodes_tmpfiles(tmp_path / "modules.devname").splitlines()
    assert lines[0].startswith("#")
    assert lines[1:-3] == KMOD_OUTPUT.splitlines()
    # Nested directories come parent first, each once.
    assert lines[-3:] == ["d /dev/deep 0755 - - -", "d /dev/deep/er 0755 - - -",
                          "b! /dev/deep/er/node 0600 - - - 8:1"]


def test_shipping_static_nodes_masks_kmod_static_nodes(tmp_path: Path) -> None:
    moddir = tmp_path / "usr/lib/modules/6.12.0"
    moddir.mkdir(parents=True)
    (moddir / "modules.devname").write_text(DEVNAME)
    units = tmp_path / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    (units / "kmod-static-nodes.service").write_text("[Service]\nExecStart=kmod static-nodes\n")

    image.ship_static_nodes(tmp_path, moddir)

    assert (units / "kmod-static-nodes.service").readlink() == Path("/dev/null")
    conf = (tmp_path / "usr/lib/tmpfiles.d/static-nodes.conf").read_text()
    assert conf.endswith(KMOD_OUTPUT)


def test_a_malformed_devname_line_is_named(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "modules.devname").write_text("loop loop-control 10:237\n")
    with pytest.raises(SystemExit):
        image.static_nodes_tmpfiles(tmp_path / "modules.devname")
    assert "loop loop-control 10:237" in capsys.readouterr().err


# The inputs: build.nix's diskConfig and system.buildManifest, read once into frozen records.

DISK_CONFIG = {
    "name": "sonix", "version": "2026.1", "espSize": "256M", "usrSlotSize": "512M",
    "usrVeritySlotSize": "8M", "compression": "lz4", "kernelParams": ["rw", "panic=5"],
    "disabledLsms": ["bpf"], "timeout": 0, "tries": 3, "stubDir": "/usr/lib/systemd/boot/efi",
}


def test_disk_config_is_read_into_a_frozen_record() -> None:
    cfg = image.DiskConfig.parse(DISK_CONFIG)
    assert cfg == image.DiskConfig(
        name="sonix", version="2026.1", esp_size="256M", usr_slot_size="512M",
        usr_verity_slot_size="8M", compression="lz4", kernel_params=("rw", "panic=5"),
        disabled_lsms=("bpf",), timeout=0, tries=3,
        stub_dir=Path("/usr/lib/systemd/boot/efi"),
    )
    with pytest.raises(AttributeError):
        cfg.tries = 1  # type: ignore[misc]


def test_disk_config_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(DISK_CONFIG))
    assert image.DiskConfig.read(path).usr_slot_size == "512M"
    path.write_text(json.dumps({**DISK_CONFIG, "tries": "3"}))
    with pytest.raises(image.ConfigError, match=f"^{path}: tries is '3', want an integer >= 0$"):
        image.DiskConfig.read(path)


@pytest.mark.parametrize(("change", "message"), [
    ({"tries": None}, "disk config: missing key 'tries'"),
    ({"tries": None, "timeout": None}, "disk config: missing key 'timeout', 'tries'"),
    ({"usrSize": "1G"}, "disk config: unknown key 'usrSize'"),
    ({"tries": True}, "disk config: tries is True, want an integer >= 0"),
    ({"timeout": -1}, "disk config: timeout is -1, want an integer >= 0"),
    ({"espSize": "256MB"}, "disk config: espSize is '256MB', want a string matching [0-9]+[KMG]?"),
    ({"compression": "gzip"},
     "disk config: compression is 'gzip', want a string matching lz4|lzma|none"),
    ({"kernelParams": "rw"}, "disk config: kernelParams is 'rw', want a list of strings"),
    ({"disabledLsms": [1]}, "disk config: disabledLsms is [1], want a list of strings"),
    ({"name": ""}, "disk config: name is '', want a string matching .+"),
    ({"stubDir": "lib/efi"}, "disk config: stubDir is 'lib/efi', want a string matching /.+"),
])
def test_disk_config_errors_name_the_key(change: dict[str, object], message: str) -> None:
    data = {k: v for k, v in {**DISK_CONFIG, **change}.items() if v is not None}
    with pytest.raises(image.ConfigError) as error:
        image.DiskConfig.parse(data)
    assert str(error.value) == message


def test_disk_config_must_be_an_object() -> None:
    with pytest.raises(image.ConfigError, match="disk config: want a JSON object, got list"):
        image.DiskConfig.parse([DISK_CONFIG])


def test_manifest_files_are_records(tmp_path: Path) -> None:
    source = tmp_path / "x"
    source.write_text("#!/bin/sh\n")
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({
        "usrFiles": {
            "lib/a.conf": {"kind": "text", "value": "a\n", "mode": "0644"},
            "bin/x": {"kind": "source", "value": str(source), "mode": "0755"},
            "lib/l": {"kind": "symlink", "value": "a.conf", "mode": "0644"},
        },
        "initrdUsrFiles": {},
    }))
    files = image.read_manifest(path, "usrFiles")
    assert files["lib/a.conf"] == image.ManifestFile(kind="text", value="a\n", mode=0o644)
    assert files["bin/x"].mode == 0o755
    assert image.read_manifest(path, "initrdUsrFiles") == {}

    root = tmp_path / "root"
    image.apply_manifest(root, files)
    assert (root / "lib/a.conf").read_text() == "a\n"
    assert (root / "lib/l").readlink() == Path("a.conf")
    assert (root / "bin/x").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize(("manifest", "message"), [
    ({}, "missing key 'usrFiles' (an object of files)"),
    ({"usrFiles": {"a": {"kind": "text", "value": "x"}}}, "usrFiles.'a': missing key 'mode'"),
    ({"usrFiles": {"a": {"kind": "file", "value": "x", "mode": "0644"}}},
     "usrFiles.'a': kind is 'file', want a string matching text|symlink|source"),
    ({"usrFiles": {"a": {"kind": "text", "value": "x", "mode": "644x"}}},
     "usrFiles.'a': mode is '644x', want a string matching [0-7]{3,4}"),
])
def test_manifest_errors_name_the_file_and_key(
    tmp_path: Path, manifest: dict[str, object], message: str
) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(image.ConfigError) as error:
        image.read_manifest(path, "usrFiles")
    assert str(error.value) == f"{path}: {message}"


def test_a_bad_config_stops_the_step_with_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({k: v for k, v in DISK_CONFIG.items() if k != "stubDir"}))
    monkeypatch.setattr("sys.argv", ["image.py", "disk", "--usr", "u", "--initrd", "i",
                                     "--config", str(config), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit):
        image.main()
    assert capsys.readouterr().err == f"image.py: error: {config}: missing key 'stubDir'\n"
    assert not (tmp_path / "out").exists()
