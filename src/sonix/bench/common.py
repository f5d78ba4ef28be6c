"""Shared by the peer and floor builders: the cache key, the locked kernel, atomic results."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from sonix import nix, paths, ui
from sonix.debian import lock
from sonix.debian.lock import Lock

KERNEL_PACKAGE = "linux-image-cloud-amd64"


def cache_key(lock_text: str, inputs: Iterable[bytes]) -> str:
    """16 hex digits naming a result: the lock file's text plus the builder's own inputs
    (a version string, files it copies). Pure."""
    digest = hashlib.sha256(lock_text.encode())
    for item in inputs:
        digest.update(hashlib.sha256(item).digest())
    return digest.hexdigest()[:16]


def read_lock_text() -> tuple[Lock, str]:
    path = lock.lock_file()
    return lock.read_lock(path), path.read_text()


def kernel_package(locked: Lock) -> str:
    """The versioned kernel package that linux-image-cloud-amd64 depends on."""
    if KERNEL_PACKAGE not in locked.packages:
        raise ui.die(
            f"{KERNEL_PACKAGE} is not in pkgs/lock.json",
            hint="add it to the system set in pkgs/packages.toml and run `sonix lock`",
        )
    versioned = [d for d in locked.packages[KERNEL_PACKAGE].depends if d.startswith("linux-image-")]
    if len(versioned) != 1:
        raise ui.die(f"{KERNEL_PACKAGE} depends on {versioned or 'no'} linux-image-* package")
    return versioned[0]


def unpacked_package(name: str) -> Path:
    """`pkgs.<name>` built: the .deb's files (the .deb must be fetched)."""
    (out,) = nix.build(
        paths.source_root() / "pkgs", f'"{name}"', what=f"unpacking the locked {name}"
    )
    return out


def kernel_image(tree: Path) -> tuple[str, Path]:
    """(kernel version, vmlinuz) of an unpacked kernel package or a root tree."""
    found = sorted((tree / "boot").glob("vmlinuz-*"))
    if len(found) != 1:
        raise ui.die(f"expected one /boot/vmlinuz-* in {tree}, found {len(found)}")
    return found[0].name.removeprefix("vmlinuz-"), found[0]


@contextlib.contextmanager
def staging(final: Path) -> Iterator[Path]:
    """A fresh directory next to `final` to build into; renamed to `final` when the block
    ends without an error, removed otherwise. Nothing half-written is ever at `final`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        result = work / "result"
        result.mkdir()
        yield result
        if final.exists():  # built meanwhile by someone else: theirs is as good
            return
        os.rename(result, final)
        prune_others(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def prune_others(final: Path) -> None:
    """Remove the results of other keys (`peer-<key>` next to `peer-<this key>`): they were
    built from another lock or builder and only take room (the peer's is ~470 MiB)."""
    prefix = final.name.rsplit("-", 1)[0] + "-"
    for other in final.parent.glob(prefix + "*"):
        if other != final and other.is_dir() and not other.name.startswith("."):
            shutil.rmtree(other, ignore_errors=True)
