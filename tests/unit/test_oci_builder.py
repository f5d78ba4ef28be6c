"""The OCI archive builder (src/sonix/in_nix_build/oci.py): a tiny archive from a fake tree,
checked blob by blob (digests, sizes, media types, the name annotation podman reads) and
entry by entry (owners, modes, mtimes, no hard links), and built twice to the same bytes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from sonix.in_nix_build import oci

CONFIG = {
    "name": "web",
    "reference": "localhost/sonix/web:latest",
    "entrypoint": ["/usr/bin/python3", "-m", "http.server"],
    "cmd": ["8080"],
    "environment": {"LANG": "C.UTF-8"},
    "workingDir": "/srv",
    "exposedPorts": ["8080/tcp"],
    "labels": {"org.example.role": "test"},
}


def fake_tree(root: Path, *, mtime: int = 1) -> Path:
    """A root like pkgs.usrTree makes: usr/, etc/, the bin link, special modes, and two
    files the store deduplicated into one inode."""
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib").mkdir()
    (root / "etc").mkdir()
    (root / "nix-support").mkdir()
    hello = root / "usr/bin/hello"
    hello.write_text("#!/bin/sh\necho hello\n")
    hello.chmod(0o555)
    (root / "usr/bin/su").write_bytes(b"\x7fELF su")
    (root / "usr/bin/su").chmod(0o555)
    (root / "usr/lib/data").write_text("data\n")
    os.link(root / "usr/lib/data", root / "usr/lib/same-data")
    (root / "etc/shadow").write_text("root:*:20000::::::\n")
    (root / "etc/shadow").chmod(0o444)
    (root / "bin").symlink_to("usr/bin")
    (root / "nix-support/special-modes").write_text(
        "/usr/bin/su 4755 0 0\n/etc/shadow 0640 0 42\n")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.utime(Path(dirpath, name), (mtime, mtime), follow_symlinks=False)
    return root


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                for m in tar.getmembers()}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    tree = fake_tree(tmp_path / "tree")
    return oci.build(tree, oci.ImageConfig.from_json(CONFIG), tmp_path / "out")


def test_layout_index_manifest_and_config_digests(archive: Path) -> None:
    assert archive.name == "web.tar"
    files = members(archive)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[:4] == ["oci-layout", "index.json", "blobs", "blobs/sha256"]
    assert names[4:] == sorted(names[4:])
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}

    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    [entry] = index["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    # podman names the image after this annotation when it pulls from the archive.
    assert entry["annotations"] == {oci.REF_NAME: "localhost/sonix/web:latest"}
    assert oci.REF_NAME == "org.opencontainers.image.ref.name"
    manifest_bytes = files[f"blobs/sha256/{entry['digest'].removeprefix('sha256:')}"]
    assert sha256(manifest_bytes) == entry["digest"] and len(manifest_bytes) == entry["size"]

    manifest = json.loads(manifest_bytes)
    config_ref, [layer_ref] = manifest["config"], manifest["layers"]
    assert config_ref["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert layer_ref["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    config_bytes = files[f"blobs/sha256/{config_ref['digest'].removeprefix('sha256:')}"]
    layer_bytes = files[f"blobs/sha256/{layer_ref['digest'].removeprefix('sha256:')}"]
    assert sha256(config_bytes) == config_ref["digest"] and len(config_bytes) == config_ref["size"]
    assert sha256(layer_bytes) == layer_ref["digest"] and len(layer_bytes) == layer_ref["size"]
    # Exactly the three blobs, nothing else.
    assert sorted(n for n in files if n.startswith("blobs/sha256/")) == sorted(
        f"blobs/sha256/{d.removeprefix('sha256:')}"
        for d in (entry["digest"], config_ref["digest"], layer_ref["digest"]))

    config: dict[str, Any] = json.loads(config_bytes)
    # An uncompressed layer: its digest is its diff_id.
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer_ref["digest"]]}
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["config"] == {
        "Entrypoint": ["/usr/bin/python3", "-m", "http.server"],
        "Cmd": ["8080"],
        "Env": [oci.DEFAULT_PATH, "LANG=C.UTF-8"],
        "WorkingDir": "/srv",
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"org.example.role": "test"},
    }


def layer_members(archive: Path) -> dict[str, tarfile.TarInfo]:
    files = members(archive)
    manifest_digest = json.loads(files["index.json"])["manifests"][0]["digest"]
    manifest = json.loads(files[f"blobs/sha256/{manifest_digest.removeprefix('sha256:')}"])
    layer = files[f"blobs/sha256/{manifest['layers'][0]['digest'].removeprefix('sha256:')}"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_layer_is_the_tree_with_normalised_owners_modes_and_times(archive: Path) -> None:
    layer = layer_members(archive)
    assert list(layer) == [
        "bin", "etc", "etc/shadow", "lib", "root", "tmp", "usr", "usr/bin", "usr/bin/hello",
        "usr/bin/su", "usr/lib", "usr/lib/data", "usr/lib/same-data",
    ]
    assert "nix-support" not in layer
    assert layer["bin"].issym() and layer["bin"].linkname == "usr/bin"
    # The tree has usr/lib but no lib: the merged-/usr link is added (lib64 is how the
    # dynamic loader is found); usr/sbin and usr/lib64 are not in it, so neither are links.
    assert layer["lib"].issym() and layer["lib"].linkname == "usr/lib"
    assert (layer["usr/bin/hello"].mode, layer["usr/lib/data"].mode) == (0o755, 0o644)
    assert layer["usr"].isdir() and layer["usr"].mode == 0o755
    # The special modes that the store cannot hold.
    assert layer["usr/bin/su"].mode == 0o4755
    assert (layer["etc/shadow"].mode, layer["etc/shadow"].gid) == (0o640, 42)
    assert (layer["tmp"].mode, layer["root"].mode) == (0o1777, 0o700)
    for name, info in layer.items():
        assert info.mtime == oci.EPOCH, name
        assert (info.uname, info.gname) == ("", ""), name
        assert not info.islnk(), f"{name} is a hard link"
        if name != "etc/shadow":
            assert (info.uid, info.gid) == (0, 0), name
    assert layer["usr/lib/same-data"].size == len("data\n")


def test_same_tree_same_bytes(tmp_path: Path) -> None:
    cfg = oci.ImageConfig.from_json(CONFIG)
    first = oci.build(fake_tree(tmp_path / "a", mtime=1), cfg, tmp_path / "out-a")
    # Other mtimes and no deduplicated inode: the same archive all the same.
    second_tree = fake_tree(tmp_path / "b", mtime=12345)
    (second_tree / "usr/lib/same-data").unlink()
    (second_tree / "usr/lib/same-data").write_text("data\n")
    second = oci.build(second_tree, cfg, tmp_path / "out-b")
    assert first.read_bytes() == second.read_bytes()
    other = oci.build(fake_tree(tmp_path / "c"), oci.ImageConfig.from_json(
        {**CONFIG, "cmd": ["9090"]}), tmp_path / "out-c")
    assert other.read_bytes() != first.read_bytes()


def test_minimal_config_gets_a_path_and_no_empty_keys(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "tree")
    archive = oci.build(tree, oci.ImageConfig.from_json(
        {"name": "min", "reference": "localhost/sonix/min:latest"}), tmp_path / "out")
    files = members(archive)
    manifest_digest = json.loads(files["index.json"])["manifests"][0]["digest"]
    manifest = json.loads(files[f"blobs/sha256/{manifest_digest.removeprefix('sha256:')}"])
    config_digest = manifest["config"]["digest"].removeprefix("sha256:")
    config = json.loads(files[f"blobs/sha256/{config_digest}"])
    assert config["config"] == {"Env": [oci.DEFAULT_PATH], "WorkingDir": "/"}


def test_main_refuses_a_directory_that_is_not_a_root(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    with pytest.raises(SystemExit):
        oci.main(["--tree", str(tmp_path), "--config", str(config), "--out", str(tmp_path / "o")])
