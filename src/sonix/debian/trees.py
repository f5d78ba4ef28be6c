"""Host programs from the locked Debian package trees (pkgs/): the test suite's etcd and
ignition-validate, the tools set's mkfs.fat and mtools. A tree is run with its own dynamic
loader and libraries, so nothing of the host's /usr is needed."""

from __future__ import annotations

from pathlib import Path


def tree_command(tree: Path, program: str) -> list[str]:
    """argv that runs `program` (from usr/bin or usr/sbin of `tree`) with the tree's libc."""
    [loader] = sorted(tree.glob("usr/lib/*-linux-gnu/ld-linux*.so.*"))
    binary = next((tree / d / program for d in ("usr/bin", "usr/sbin")
                   if (tree / d / program).exists()), tree / "usr/bin" / program)
    return [str(loader), "--library-path", str(loader.parent), str(binary)]
