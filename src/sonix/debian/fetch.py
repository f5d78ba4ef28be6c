"""Locked .debs into the Nix store, as fixed-output paths.

pkgs/default.nix refers to every .deb as a fixed-output derivation (flat sha256 of the file):
when its path is valid in the store Nix builds nothing. This module makes those paths valid:
it asks Nix which ones are missing, downloads all of them in one apt run (one index update,
apt's parallel downloads and progress display), checks every sha256, and only then adds them
with `nix-store --add-fixed sha256`, which yields exactly the derivations' output paths.
Nothing is added when anything is wrong.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from sonix import nix, ui
from sonix.debian import apt, lock
from sonix.debian.lock import Lock, LockedPackage

STORE_DIR = "/nix/store"
_NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"


def _nix_base32(data: bytes) -> str:
    length = (len(data) * 8 - 1) // 5 + 1
    chars = []
    for n in range(length - 1, -1, -1):
        b = n * 5
        i, j = divmod(b, 8)
        c = data[i] >> j
        if i + 1 < len(data):
            c |= data[i + 1] << (8 - j)
        chars.append(_NIX_BASE32[c & 0x1F])
    return "".join(chars)


def fixed_output_path(sha256_hex: str, name: str, store_dir: str = STORE_DIR) -> Path:
    """The store path of a flat sha256 fixed-output (what `nix-store --add-fixed sha256` and a
    derivation with outputHashMode = "flat" both give), computed like Nix does."""
    inner = hashlib.sha256(f"fixed:out:sha256:{sha256_hex}:".encode()).hexdigest()
    digest = hashlib.sha256(f"output:out:sha256:{inner}:{store_dir}:{name}".encode()).digest()
    compressed = bytearray(20)
    for i, byte in enumerate(digest):
        compressed[i % 20] ^= byte
    return Path(store_dir) / f"{_nix_base32(bytes(compressed))}-{name}"


def store_path(package: LockedPackage) -> Path:
    return fixed_output_path(package.sha256, package.store_name)


def missing_packages(locked: Lock, names: Iterable[str]) -> list[LockedPackage]:
    packages = [locked.packages[n] for n in sorted(set(names))]
    invalid = nix.invalid_paths([store_path(p) for p in packages])
    return [p for p in packages if store_path(p) in invalid]


def apt_file_name(package: LockedPackage) -> str:
    """The name `apt-get download` gives the file (an epoch's `:` is written `%3a`)."""
    return f"{package.name}_{package.version.replace(':', '%3a')}_{package.architecture}.deb"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def fetch(locked: Lock, names: Iterable[str], cfg: apt.AptConfig | None = None) -> list[Path]:
    """Make the store paths of the named locked packages valid; returns the ones added."""
    wanted = sorted(set(names))
    missing = missing_packages(locked, wanted)
    if not missing:
        ui.info(f"all {len(wanted)} .debs are in the Nix store")
        return []
    cfg = cfg or apt.configure(apt.find_mirror(), locked.stubs)
    with apt.exclusive(cfg):
        return _download_and_add(locked, missing, cfg)


def _download_and_add(
    locked: Lock, missing: Sequence[LockedPackage], cfg: apt.AptConfig
) -> list[Path]:
    with ui.step(f"Reading the {locked.suite} package index"):
        apt.update(cfg)
    specs = [p.spec for p in missing]
    gone = apt.unavailable(cfg, specs)
    if gone:
        raise ui.die(
            f"the mirror no longer serves {len(gone)} locked package version"
            f"{'s' if len(gone) > 1 else ''}: {', '.join(gone)}",
            hint="run `sonix lock` to lock the versions it serves now, then fetch again",
        )
    staging = Path(tempfile.mkdtemp(prefix="debs-", dir=cfg.root))
    try:
        size = sum(p.size for p in missing)
        with ui.step(f"Downloading {len(missing)} .debs ({_mib(size)})"):
            apt.download(cfg, specs, staging)
        files = _verify(missing, staging)
        with ui.step(f"Adding {len(files)} .debs to the Nix store"):
            added = nix.store_add_fixed(files)
        expected = [store_path(p) for p in missing]
        if added != expected:
            raise ui.die(
                "nix-store --add-fixed gave unexpected store paths",
                hint="this is a bug in sonix: the store path computation disagrees with Nix",
            )
        return added
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_sets(set_names: Sequence[str] | None = None) -> list[Path]:
    """What `sonix fetch [--set NAME]...` does, for other commands (`sonix build` fetches
    first): the closures of these sets of pkgs/lock.json (default: every locked package)."""
    locked = lock.read_lock()
    if set_names:
        unknown = sorted(set(set_names) - locked.sets.keys())
        if unknown:
            raise ui.die(
                f"unknown package set {', '.join(unknown)}",
                hint=f"the sets of pkgs/lock.json are: {', '.join(sorted(locked.sets))}",
            )
        names = [n for s in set_names for n in locked.set_closure(s)]
    else:
        names = list(locked.packages)
    return fetch(locked, names)


def _verify(packages: Sequence[LockedPackage], staging: Path) -> list[Path]:
    """Check every download against the lock; rename to the store names. All or nothing."""
    files: list[Path] = []
    problems: list[str] = []
    for p in packages:
        downloaded = staging / apt_file_name(p)
        if not downloaded.is_file():
            problems.append(f"{p.spec}: apt did not download {downloaded.name}")
            continue
        actual = sha256_file(downloaded)
        if actual != p.sha256:
            problems.append(f"{p.spec}: sha256 {actual}, locked {p.sha256}")
            continue
        target = staging / p.store_name
        downloaded.rename(target)
        files.append(target)
    if problems:
        raise ui.die(
            "downloaded .debs do not match pkgs/lock.json (nothing was added to the store):\n  "
            + "\n  ".join(problems),
            hint="the mirror serves different files for these versions: run `sonix lock` "
            "if that is expected, otherwise check the mirror",
        )
    return files
