"""OpenStack config drive images (vfat, label `config-2`) for tests and local use.

    image = make_config_drive(tmp / "config-2.img",
                              openstack_meta_data(uuid=..., hostname="web-1", ssh_keys=[key]),
                              user_data=ignition_bytes)
    # qemu ... -drive file=config-2.img,format=raw,if=virtio,readonly=on

The machine finds the drive by its label (/dev/disk/by-label/config-2) and reads
openstack/latest/meta_data.json and openstack/latest/user_data, as Nova writes them; see
docs/metadata-sources.md. The image is made without mounting anything: mkfs.fat and mtools
from the locked `tools` package set (pkgs/packages.toml), run with that tree's own dynamic
loader like sonix.testing.etcd runs etcd, never the host's.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sonix import nix, paths, process
from sonix.debian.trees import tree_command

LABEL = "config-2"
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}  # an image file has no BIOS geometry to check


@functools.cache
def tools_tree() -> Path:
    """The `tools` package tree (dosfstools, mtools), built once; a GC root in .sonix/."""
    [tree] = nix.build(
        paths.source_root() / "pkgs", "tools",
        out_link=paths.state_dir() / "provisioning" / "sonix-tools",
        what="the tools package set (mkfs.fat, mtools)",
    )
    return tree


def openstack_meta_data(
    *,
    uuid: str,
    hostname: str,
    ssh_keys: Sequence[str] = (),
    name: str | None = None,
    availability_zone: str = "nova",
) -> dict[str, Any]:
    """A meta_data.json as Nova writes it (the fields the machine reads, and a few more)."""
    return {
        "uuid": uuid,
        "hostname": hostname,
        "name": name or hostname.split(".")[0],
        "availability_zone": availability_zone,
        "launch_index": 0,
        "project_id": "0123456789abcdef0123456789abcdef",
        "public_keys": {f"key-{i}": key for i, key in enumerate(ssh_keys)},
        "keys": [{"name": f"key-{i}", "type": "ssh", "data": key}
                 for i, key in enumerate(ssh_keys)],
        "meta": {},
        "devices": [],
    }


def make_config_drive(
    image: Path,
    meta_data: Mapping[str, Any],
    user_data: bytes | None = None,
    *,
    ec2_meta_data: Mapping[str, Any] | None = None,
    network_data: Mapping[str, Any] | None = None,
    label: str = LABEL,
    tools: Path | None = None,
) -> Path:
    """Write a vfat config drive to `image` (replaced if it exists): openstack/latest/
    meta_data.json, user_data (when given), network_data.json (when given) and
    ec2/latest/meta-data.json (when given). Returns `image`."""
    tree = tools or tools_tree()
    files: dict[str, bytes] = {
        "openstack/latest/meta_data.json": json.dumps(meta_data, indent=2).encode(),
    }
    if user_data is not None:
        files["openstack/latest/user_data"] = user_data
    if network_data is not None:
        files["openstack/latest/network_data.json"] = json.dumps(network_data).encode()
    if ec2_meta_data is not None:
        files["ec2/latest/meta-data.json"] = json.dumps(ec2_meta_data).encode()
    # FAT12 needs no more than this for small files: 1 MiB plus the files, in KiB.
    size_kib = 1024 + sum(len(data) // 1024 + 4 for data in files.values())
    image.parent.mkdir(parents=True, exist_ok=True)
    image.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="config-drive-") as staging:
        root = Path(staging)
        for relative, data in files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(data)
        # --invariant: fixed volume id and timestamps, so the same input gives the same image.
        process.run([*tree_command(tree, "mkfs.fat"), "--invariant", "-n", label,
                     "-C", str(image), str(size_kib)], capture=True)
        tops = sorted({relative.split("/")[0] for relative in files})
        process.run([*tree_command(tree, "mcopy"), "-s", "-i", str(image),
                     *(str(root / top) for top in tops), "::/"], capture=True, env=MTOOLS_ENV)
    return image


def config_drive_files(image: Path, *, tools: Path | None = None) -> list[str]:
    """Every path on the image (`mdir -/ -b`), directories with a trailing slash."""
    result = process.run([*tree_command(tools or tools_tree(), "mdir"), "-/", "-b", "-i",
                          str(image), "::/"], capture=True, env=MTOOLS_ENV)
    return [line.removeprefix("::") for line in result.stdout.splitlines() if line.strip()]


def read_config_drive_file(image: Path, path: str, *, tools: Path | None = None) -> str:
    """A text file on the image (`mtype`), e.g. `openstack/latest/meta_data.json`."""
    result = process.run([*tree_command(tools or tools_tree(), "mtype"), "-i", str(image),
                          f"::/{path.lstrip('/')}"], capture=True, env=MTOOLS_ENV)
    return result.stdout


def config_drive_label(image: Path, *, tools: Path | None = None) -> str:
    """The volume label (`mlabel -s`)."""
    result = process.run([*tree_command(tools or tools_tree(), "mlabel"), "-s", "-i",
                          str(image), "::"], capture=True, env=MTOOLS_ENV)
    return result.stdout.strip().removeprefix("Volume label is").strip()
