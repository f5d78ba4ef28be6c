#!/usr/bin/env python3
"""The OCI image builder: a root tree of locked Debian packages as an oci-archive.

Runs inside the locked trixie tools tree (bubblewrap), called by the derivation of
`oci.images.<name>` (modules/services/oci-containers.nix); standard library only:

    oci.py --tree TREE --config JSON --out OUT

TREE is a `pkgs.usrTree` (usr/, etc/, var/, the bin/lib/sbin links, nix-support/special-modes);
JSON names the image and its runtime settings. OUT/<name>.tar is an OCI image layout in a tar
(what `podman save --format oci-archive` writes and the `oci-archive:` transport reads):

    oci-layout                      {"imageLayoutVersion": "1.0.0"}
    index.json                      one manifest, annotated with the image's name
    blobs/sha256/<manifest>         the image manifest
    blobs/sha256/<config>           the image configuration (entrypoint, env, ...)
    blobs/sha256/<layer>            one uncompressed layer: the whole tree

Every byte is a function of the tree and the JSON: names sorted, owner root (unless the
packages' special modes say otherwise), mtimes SOURCE_DATE_EPOCH, no hard links, JSON with
sorted keys. See docs/containers.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "1"))
CHUNK = 1 << 20

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"

# Not part of the container's root: the store's bookkeeping of the tree.
SKIP = {"nix-support"}
# Directories a root needs that no package ships: a sticky /tmp and root's home.
EXTRA_DIRS = {"tmp": 0o1777, "root": 0o700}
# The merged-/usr links of a Debian root, which package trees leave out (a sonix host gets
# them from systemd at switch-root): without /lib64, no dynamic executable starts.
MERGED_USR = ("bin", "lib", "lib64", "sbin")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(message: str) -> None:
    print(f"‣ {message}", file=sys.stderr, flush=True)


def die(message: str) -> NoReturn:
    print(f"oci.py: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


@dataclass(frozen=True)
class ImageConfig:
    """What the configuration says about the image (`oci.images.<name>`)."""

    name: str  # the archive's file name: <name>.tar
    reference: str  # the name podman gives the image, e.g. localhost/sonix/web:latest
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[str, ...]  # KEY=VALUE, in order
    working_dir: str
    user: str
    exposed_ports: tuple[str, ...]  # 8080/tcp
    labels: tuple[tuple[str, str], ...]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ImageConfig:
        return cls(
            name=raw["name"],
            reference=raw["reference"],
            entrypoint=tuple(raw.get("entrypoint", [])),
            cmd=tuple(raw.get("cmd", [])),
            env=tuple(f"{k}={v}" for k, v in sorted(raw.get("environment", {}).items())),
            working_dir=raw.get("workingDir", "/"),
            user=raw.get("user", ""),
            exposed_ports=tuple(sorted(raw.get("exposedPorts", []))),
            labels=tuple(sorted(raw.get("labels", {}).items())),
        )


# ------------------------------------------------------------------------------------------
# The layer: the tree as one reproducible tar


def read_special_modes(modes_file: Path) -> dict[str, tuple[int, int, int]]:
    """`path mode uid gid` lines (pkgs/build-support/merge.sh), keyed by the path relative to
    the root: the setuid bits and owners that the Nix store cannot keep."""
    modes: dict[str, tuple[int, int, int]] = {}
    if modes_file.is_file():
        for line in modes_file.read_text().splitlines():
            fields = line.split()
            if len(fields) == 4:
                modes[fields[0].lstrip("/")] = (
                    int(fields[1], 8), int(fields[2]), int(fields[3]))
    return modes


def walk(tree: Path) -> Iterator[tuple[str, Path]]:
    """(name in the layer, path) of everything in the tree, parents first, names sorted."""

    def below(directory: Path, prefix: str) -> Iterator[tuple[str, Path]]:
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            name = f"{prefix}{entry.name}"
            yield name, entry
            if entry.is_dir() and not entry.is_symlink():
                yield from below(entry, name + "/")

    top = sorted([p for p in tree.iterdir() if p.name not in SKIP] +
                 [tree / d for d in EXTRA_DIRS if not (tree / d).exists()] +
                 [tree / d for d in MERGED_USR
                  if (tree / "usr" / d).is_dir() and not (tree / d).is_symlink()
                  and not (tree / d).exists()],
                 key=lambda p: p.name)
    for entry in top:
        yield entry.name, entry
        if entry.is_dir() and not entry.is_symlink():
            yield from below(entry, entry.name + "/")


def tar_info(name: str, path: Path, special: dict[str, tuple[int, int, int]]) -> tarfile.TarInfo:
    """A header that depends only on the entry's kind, content size and link target: store
    modes are normalised (0755 for directories and executables, 0644 otherwise), and a file
    is never written as a hard link (the store may or may not have deduplicated it)."""
    info = tarfile.TarInfo(name)
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if name in MERGED_USR and not path.exists() and not path.is_symlink():
        info.type = tarfile.SYMTYPE
        info.linkname = f"usr/{name}"
        info.mode = 0o777
        return info
    if not path.exists() and not path.is_symlink():  # an EXTRA_DIRS entry
        info.type = tarfile.DIRTYPE
        info.mode = EXTRA_DIRS[name]
        return info
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = EXTRA_DIRS.get(name, 0o755)
    elif stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
    else:
        die(f"{path}: neither a file, a directory nor a symlink")
    if name in special and not info.issym():
        info.mode, info.uid, info.gid = special[name]
    return info


@dataclass(frozen=True)
class Blob:
    digest: str  # sha256:<hex>
    size: int

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")


def write_layer(tree: Path, out: Path) -> Blob:
    """The tree as an uncompressed tar (uncompressed, so its digest is also its diff_id)."""
    special = read_special_modes(tree / "nix-support/special-modes")
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in walk(tree):
            info = tar_info(name, path, special)
            if info.isreg():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return blob_of_file(out)


# ------------------------------------------------------------------------------------------
# The JSON documents


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def blob_of(data: bytes) -> Blob:
    return Blob(f"sha256:{hashlib.sha256(data).hexdigest()}", len(data))


def blob_of_file(path: Path) -> Blob:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return Blob(f"sha256:{digest.hexdigest()}", path.stat().st_size)


def image_config(cfg: ImageConfig, layer: Blob) -> dict[str, Any]:
    created = dt.datetime.fromtimestamp(EPOCH, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    env = list(cfg.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    config: dict[str, Any] = {"Env": env, "WorkingDir": cfg.working_dir}
    if cfg.entrypoint:
        config["Entrypoint"] = list(cfg.entrypoint)
    if cfg.cmd:
        config["Cmd"] = list(cfg.cmd)
    if cfg.user:
        config["User"] = cfg.user
    if cfg.exposed_ports:
        config["ExposedPorts"] = {port: {} for port in cfg.exposed_ports}
    if cfg.labels:
        config["Labels"] = dict(cfg.labels)
    return {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        "history": [{"created": created, "created_by": f"sonix oci.images.{cfg.name}"}],
    }


def manifest(config: Blob, layer: Blob) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": layer.digest, "size": layer.size}],
    }


def index(cfg: ImageConfig, manifest_blob: Blob) -> dict[str, Any]:
    # The full name as the reference annotation, as `podman save --format oci-archive` writes
    # it: podman names the image it pulls from the archive after it.
    return {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": manifest_blob.digest,
            "size": manifest_blob.size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {REF_NAME: cfg.reference},
        }],
    }


# ------------------------------------------------------------------------------------------
# The archive


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mtime, info.mode = tarfile.DIRTYPE, EPOCH, 0o755
    tar.addfile(info)


def write_archive(out: Path, layer_file: Path, layer: Blob,
                  documents: list[tuple[Blob, bytes]], index_json: bytes) -> None:
    """The layout in a tar: fixed entry order (oci-layout, index.json, then the blobs by
    digest), root-owned entries with mtime SOURCE_DATE_EPOCH."""
    blobs = sorted([(layer, None), *documents], key=lambda b: b[0].digest)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        add_bytes(tar, "oci-layout", canonical({"imageLayoutVersion": "1.0.0"}))
        add_bytes(tar, "index.json", index_json)
        add_dir(tar, "blobs")
        add_dir(tar, "blobs/sha256")
        for blob, data in blobs:
            name = f"blobs/sha256/{blob.hex}"
            if data is not None:
                add_bytes(tar, name, data)
            else:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = layer.size, EPOCH, 0o644
                with layer_file.open("rb") as f:
                    tar.addfile(info, f)


def build(tree: Path, cfg: ImageConfig, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".layer-") as tmp:
        layer_file = Path(tmp) / "layer.tar"
        log(f"Writing the layer of {cfg.name} from {tree}")
        layer = write_layer(tree, layer_file)
        config_json = canonical(image_config(cfg, layer))
        config_blob = blob_of(config_json)
        manifest_json = canonical(manifest(config_blob, layer))
        manifest_blob = blob_of(manifest_json)
        index_json = canonical(index(cfg, manifest_blob))
        archive = out_dir / f"{cfg.name}.tar"
        log(f"Writing {archive.name} ({layer.size / (1 << 20):.1f} MiB layer {layer.hex[:12]})")
        write_archive(archive, layer_file, layer,
                      [(config_blob, config_json), (manifest_blob, manifest_json)], index_json)
    os.utime(archive, (EPOCH, EPOCH))
    return archive


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="oci.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    cfg = ImageConfig.from_json(json.loads(args.config.read_text()))
    if not (args.tree / "usr").is_dir():
        die(f"{args.tree} is not a root tree (no usr/)")
    archive = build(args.tree, cfg, args.out)
    print(archive)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
