"""Building a system: the host side of `sonix build` and `sonix run`.

Fetches the locked .debs that the store lacks, evaluates the configuration (so that errors
name the file and the option before any build starts), then runs the derivations of
modules/system/build.nix and lays out the results in an output directory.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sonix import nix, paths, ui


@dataclass(frozen=True)
class BuildResult:
    """What a build produced. Paths point into the output directory (symlinks to the store)."""

    out_dir: Path
    toplevel: Path
    image: Path
    uki: Path
    initrd: Path
    manifest: dict[str, Any]


def nix_path(path: Path) -> str:
    """A Nix path expression for any absolute path."""
    return f'(/. + "{path.resolve()}")'


def check_host_tools() -> None:
    missing = [tool for tool in ("nix-build", "bwrap") if shutil.which(tool) is None]
    if missing:
        raise ui.die(
            f"missing host tools: {', '.join(missing)}",
            hint="run ./sonix once (it installs nix-bin and bubblewrap)",
        )


def check_disk_space(where: Path, need_bytes: int = 3 << 30) -> None:
    free = shutil.disk_usage(where).free
    if free < need_bytes:
        raise ui.die(
            f"not enough disk space in {where}: {free >> 20} MiB free, a build needs "
            f"about {need_bytes >> 20} MiB",
            hint="free some space (e.g. `nix-collect-garbage`) or use another --output",
        )


def evaluate(config: Path) -> dict[str, Any]:
    """Evaluate the configuration far enough to catch its errors, and read what the build and
    the VM runner need (image name and version)."""
    root = paths.source_root()
    expr = (
        f"let s = import {root}/default.nix {{ configuration = {nix_path(config)}; }}; in "
        "builtins.seq s.config.system.build.toplevel.drvPath "
        "{ inherit (s.config.image) name version; }"
    )
    result: dict[str, Any] = nix.eval_expr_json(expr, what=f"evaluating {config}")
    return result


def build_system(config: Path, out_dir: Path | None = None) -> BuildResult:
    """Build the system of CONFIG; results go to out_dir (default .sonix/build/<stem>)."""
    config = config.resolve()
    if not config.exists():
        raise ui.die(f"configuration {config} does not exist", hint="give a .nix module file")
    check_host_tools()
    out_dir = (out_dir or paths.state_dir() / "build" / config.stem).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    check_disk_space(out_dir)

    from sonix.debian import fetch  # the package set; imported here to keep `sonix --help` fast

    with ui.step("Fetching missing Debian packages"):
        fetch.fetch_sets(None)
    with ui.step(f"Evaluating {config.name}"):
        info = evaluate(config)
    with ui.step(f"Building {info['name']} {info['version']}"):
        (toplevel,) = nix.build(
            paths.source_root() / "default.nix",
            "config.system.build.toplevel",
            exprs={"configuration": nix_path(config)},
            out_link=out_dir / "system",
            what=f"building {config}",
        )
    return lay_out(toplevel, out_dir)


def lay_out(toplevel: Path, out_dir: Path) -> BuildResult:
    """Symlinks to the build results, with stable names, in out_dir."""
    image_dir = toplevel / "image"
    manifest: dict[str, Any] = json.loads((image_dir / "manifest.json").read_text())
    links = {
        "disk.raw": image_dir / "disk.raw",
        manifest["uki"]: image_dir / manifest["uki"],
        "initrd.img": toplevel / "initrd" / "initrd.img",
        "manifest.json": image_dir / "manifest.json",
    }
    for name, target in links.items():
        link = out_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target.resolve())
    return BuildResult(
        out_dir=out_dir,
        toplevel=toplevel,
        image=out_dir / "disk.raw",
        uki=out_dir / manifest["uki"],
        initrd=out_dir / "initrd.img",
        manifest=manifest,
    )
