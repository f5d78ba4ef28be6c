"""Fetching: store paths computed like Nix, only missing .debs downloaded (one apt run), every
sha256 checked before anything is added, clear errors that change nothing."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sonix import process, ui
from sonix.debian import apt, fetch
from sonix.debian.lock import Lock, LockedPackage

CONTENT = {"bash": b"bash deb", "dash": b"dash deb", "passwd": b"passwd deb"}


def _pkg(name: str, version: str) -> LockedPackage:
    return LockedPackage(
        name, version, "amd64", f"pool/main/{name[0]}/{name}/{name}_{version}_amd64.deb",
        len(CONTENT[name]), hashlib.sha256(CONTENT[name]).hexdigest(),
    )


LOCK = Lock(
    "trixie", "amd64", (), {"system": ("bash", "passwd")},
    {"bash": _pkg("bash", "5.2-1"), "dash": _pkg("dash", "0.5~rc1-1"),
     "passwd": _pkg("passwd", "1:4.17-2")},
)


def test_fixed_output_path_matches_nix() -> None:
    # `nix-store --print-fixed-path sha256 2fd7…ab82 bash_5.2.37-2+b10_amd64.deb` (Nix 2.8)
    path = fetch.fixed_output_path(
        "2fd7b04f1b7caa29c4e683f5216e6af354a41e3cdcf6e75394d7cda680f9ab82",
        "bash_5.2.37-2+b10_amd64.deb",
    )
    assert str(path) == (
        "/nix/store/zkd4dnpb8vhxs24l53ni5ybmkqni8d8g-bash_5.2.37-2+b10_amd64.deb"
    )


def test_apt_file_name_writes_the_epoch_like_apt() -> None:
    assert fetch.apt_file_name(LOCK.packages["passwd"]) == "passwd_1%3a4.17-2_amd64.deb"


class FakeWorld:
    """nix-store and apt as seen by fetch: `present` are valid store paths; downloads write
    `served` contents (default: the right ones)."""

    def __init__(self, present: set[str], served: dict[str, bytes] | None = None,
                 index: set[str] | None = None) -> None:
        self.present = {str(fetch.store_path(LOCK.packages[n])) for n in present}
        self.served = served or CONTENT
        self.index = index if index is not None else {p.spec for p in LOCK.packages.values()}
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        args = [str(a) for a in argv]
        self.calls.append(args)
        out = ""
        if args[:2] == ["nix-store", "--check-validity"]:
            out = "".join(p + "\n" for p in args[3:] if p not in self.present)
        elif args[:2] == ["apt-get", "update"]:
            out = "Reading package lists...\n"
        elif args[:2] == ["apt-cache", "show"]:
            out = "\n".join(
                f"Package: {s.split('=')[0]}\nVersion: {s.split('=')[1]}\n"
                for s in args[3:] if s in self.index
            )
        elif args[:2] == ["apt-get", "download"]:
            for spec in args[2:]:
                name = spec.split("=")[0]
                target = Path(kw["cwd"]) / fetch.apt_file_name(LOCK.packages[name])
                target.write_bytes(self.served[name])
        elif args[:2] == ["nix-store", "--add-fixed"]:
            added = []
            for file in args[3:]:
                pkg = next(p for p in LOCK.packages.values() if p.store_name == Path(file).name)
                added.append(str(fetch.store_path(pkg)))
            out = "\n".join(added) + "\n"
        else:
            raise AssertionError(f"unexpected command {args}")
        return subprocess.CompletedProcess(args, 0, out, "")

    def commands(self) -> list[str]:
        return [" ".join(c[:2]) for c in self.calls]


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> apt.AptConfig:
    monkeypatch.setenv("SONIX_STATE_DIR", str(tmp_path / "state"))
    return apt.configure(apt.Mirror("http://mirror.example.invalid/debian", "t"), [],
                         root=tmp_path / "apt")


def test_everything_present_fetches_nothing(
    monkeypatch: pytest.MonkeyPatch, cfg: apt.AptConfig
) -> None:
    world = FakeWorld(present={"bash", "dash", "passwd"})
    monkeypatch.setattr(process, "run", world)
    assert fetch.fetch(LOCK, LOCK.packages, cfg) == []
    assert world.commands() == ["nix-store --check-validity"]


def test_missing_debs_are_fetched_in_one_apt_run_and_added(
    monkeypatch: pytest.MonkeyPatch, cfg: apt.AptConfig, tmp_path: Path
) -> None:
    world = FakeWorld(present={"dash"})
    monkeypatch.setattr(process, "run", world)
    added = fetch.fetch(LOCK, LOCK.packages, cfg)
    assert added == [fetch.store_path(LOCK.packages[n]) for n in ("bash", "passwd")]
    assert world.commands() == [
        "nix-store --check-validity", "apt-get update", "apt-cache show",
        "apt-get download", "nix-store --add-fixed",
    ]
    download = next(c for c in world.calls if c[:2] == ["apt-get", "download"])
    assert download == ["apt-get", "download", "bash=5.2-1", "passwd=1:4.17-2"]
    add = next(c for c in world.calls if c[:2] == ["nix-store", "--add-fixed"])
    assert [Path(f).name for f in add[3:]] == [
        "bash_5.2-1_amd64.deb", "passwd_1-4.17-2_amd64.deb"
    ]
    assert not list((tmp_path / "apt").glob("debs-*"))  # staging is cleaned up


def test_a_version_the_mirror_no_longer_serves_says_run_lock(
    monkeypatch: pytest.MonkeyPatch, cfg: apt.AptConfig
) -> None:
    world = FakeWorld(present=set(), index={"bash=5.2-1", "dash=0.5~rc1-1"})
    monkeypatch.setattr(process, "run", world)
    with pytest.raises(ui.SonixError) as error:
        fetch.fetch(LOCK, LOCK.packages, cfg)
    assert "no longer serves 1 locked package version: passwd=1:4.17-2" in error.value.message
    assert error.value.hint is not None and "sonix lock" in error.value.hint
    assert "apt-get download" not in world.commands()


def test_a_hash_mismatch_adds_nothing(
    monkeypatch: pytest.MonkeyPatch, cfg: apt.AptConfig, tmp_path: Path
) -> None:
    world = FakeWorld(present=set(), served={**CONTENT, "dash": b"tampered"})
    monkeypatch.setattr(process, "run", world)
    with pytest.raises(ui.SonixError) as error:
        fetch.fetch(LOCK, LOCK.packages, cfg)
    assert "dash=0.5~rc1-1: sha256 " in error.value.message
    assert "nothing was added to the store" in error.value.message
    assert "nix-store --add-fixed" not in world.commands()
    assert not list((tmp_path / "apt").glob("debs-*"))
