"""`sonix init DIR` then `sonix build DIR/configuration.nix`, unchanged, from a directory
outside the checkout: the starter repository builds a bootable image (issue 20). The unit
tests (tests/unit/test_init.py) check what it writes and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

from sonix import cli


def test_the_starter_repository_builds_unchanged(tmp_path: Path) -> None:
    host = tmp_path / "web-1"
    assert cli.main(["init", str(host)]) == 0
    out = tmp_path / "out"
    assert cli.main(["build", str(host / "configuration.nix"), "--output", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["name"] == "sonix"
    assert (out / manifest["uki"]).is_file()
    assert (out / "disk.raw").stat().st_size > 0
