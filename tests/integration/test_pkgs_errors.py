"""pkgs/ bad input: clear errors, nothing changed. No mirror needed (loopback at most)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def nix(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nix-build", "--no-out-link", *args], capture_output=True,
                          text=True, cwd=root, check=False)


def test_unknown_package_names_the_closest(root: Path) -> None:
    result = nix(root, "-E", '(import ./pkgs { }).usrTree { packages = [ "bash" "systemdd" ]; }')
    assert result.returncode != 0
    assert "pkgs: unknown package 'systemdd'" in result.stderr
    assert "(closest: systemd" in result.stderr
    assert "run `sonix lock`" in result.stderr


def test_a_deb_missing_from_the_store_says_fetch(root: Path, tmp_path: Path) -> None:
    data = json.loads((root / "pkgs/lock.json").read_text())
    data["packages"]["bash"]["sha256"] = "0" * 64  # a .deb no store can have
    lock = tmp_path / "lock.json"
    lock.write_text(json.dumps(data))
    result = nix(root, "-E", f"(import ./pkgs {{ lockFile = {lock}; }}).bash")
    assert result.returncode != 0
    assert "is not in the Nix store: run `sonix fetch`" in result.stderr


def test_helpers_are_there(root: Path) -> None:
    result = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E",
         "let p = import ./pkgs { }; in { s = p.sets.system; c = p.closure [ \"dash\" ];"
         " d = p.dash.type; t = p.tools.type;"
         " u = (p.usrTree { packages = [ \"dash\" ]; }).type; }"],
        capture_output=True, text=True, cwd=root, check=True,
    )
    value = json.loads(result.stdout)
    assert "systemd" in value["s"]
    assert "libc6" in value["c"] and "dash" in value["c"]
    assert {value["d"], value["t"], value["u"]} == {"derivation"}


def test_lock_without_network_changes_nothing(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "lock.json"
    env = {**os.environ, "SONIX_ROOT": str(root), "SONIX_STATE_DIR": str(tmp_path / "state"),
           "SONIX_DEBIAN_MIRROR": "http://127.0.0.1:9/debian"}
    result = subprocess.run([sys.executable, "-m", "sonix", "lock", "-o", str(out)],
                            capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 1
    assert "cannot read the trixie package index from http://127.0.0.1:9/debian" in result.stderr
    assert "hint: check the network" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
