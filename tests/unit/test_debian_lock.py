"""Lock resolution against a small fixture index (tests/unit/fixtures/debian), no network:
apt's answers come from fixture files through a fake `process.run`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sonix import process, ui
from sonix.debian import apt, control, lock

FIXTURES = Path(__file__).parent / "fixtures" / "debian"
INDEX = (FIXTURES / "Packages").read_text()
RECORDS = {r["Package"]: r for r in control.parse_stanzas(INDEX)}
SYSTEM_ROOTS = ["bash", "systemd", "dbus-system-bus-common", "linux-image-cloud-amd64"]


class FakeApt:
    """Answers apt-get/apt-cache calls like apt would for the fixture index."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        args = [str(a) for a in argv]
        self.calls.append(args)
        assert kwargs["env"]["APT_CONFIG"].endswith("apt.conf")
        out = ""
        if args[:2] == ["apt-get", "update"]:
            out = "Get:1 trixie InRelease\nReading package lists...\n"
        elif args[:2] == ["apt-cache", "pkgnames"]:
            out = "\n".join(RECORDS) + "\n"
        elif args[:2] == ["apt-get", "install"]:
            roots = [a for a in args[2:] if not a.startswith("-")]
            which = "services" if roots == ["openssh-server"] else "system"
            out = (FIXTURES / f"print-uris-{which}.txt").read_text()
        elif args[:2] == ["apt-cache", "show"]:
            names = [a.split("=")[0] for a in args[2:] if not a.startswith("-")]
            out = "\n\n".join(
                "\n".join(f"{k}: {v}" for k, v in RECORDS[n].items()) for n in names
            )
        else:
            raise AssertionError(f"unexpected command {args}")
        return subprocess.CompletedProcess(args, 0, out, "")


@pytest.fixture
def fake_apt(monkeypatch: pytest.MonkeyPatch) -> FakeApt:
    fake = FakeApt()
    monkeypatch.setattr(process, "run", fake)
    return fake


@pytest.fixture
def cfg(tmp_path: Path) -> apt.AptConfig:
    mirror = apt.Mirror("http://mirror.example.invalid/debian", "test")
    return apt.configure(mirror, ["linux-initramfs-tool"], root=tmp_path / "apt")


def test_read_roots() -> None:
    roots = lock.read_roots(FIXTURES / "packages.toml")
    assert [s.name for s in roots.sets] == ["services", "system"]
    assert roots.stubs == ("linux-initramfs-tool",)
    assert roots.all_roots == sorted({*SYSTEM_ROOTS, "openssh-server"})


def test_read_roots_rejects_empty_set(tmp_path: Path) -> None:
    bad = tmp_path / "packages.toml"
    bad.write_text("[sets.system]\nroots = []\n")
    with pytest.raises(ui.SonixError, match=r"sets.system.roots must be a non-empty list"):
        lock.read_roots(bad)


def test_resolve_depends_single_set() -> None:
    records = {n: RECORDS[n] for n in ["bash", "base-files", "libc6", "libgcc-s1",
                                       "gcc-14-base", "libtinfo6"]}
    deps = lock.resolve_depends(records)
    assert deps["bash"] == ("base-files", "libc6", "libtinfo6")  # Pre-Depends count too
    assert deps["libtinfo6"] == ("libc6",)  # `libc6:any` is libc6
    assert deps["libc6"] == ("libgcc-s1",)
    assert deps["libgcc-s1"] == ("gcc-14-base", "libc6")  # cycles are fine


def test_resolve_depends_provides_and_stub() -> None:
    names = ["linux-image-cloud-amd64", "linux-image-6.12.117+deb13-cloud-amd64", "kmod",
             "libkmod2", "linux-base", "libc6", "libgcc-s1", "gcc-14-base", "mawk", "needs-awk"]
    deps = lock.resolve_depends({n: RECORDS[n] for n in names}, stubs=["linux-initramfs-tool"])
    # initramfs-tools is not selected: the stub satisfies the clause, no edge
    assert deps["linux-image-6.12.117+deb13-cloud-amd64"] == ("kmod", "linux-base")
    # `gawk (>= 5) | awk`: gawk absent, mawk provides awk
    assert deps["needs-awk"] == ("mawk",)


def test_resolve_depends_versioned_provides() -> None:
    names = ["dbus-system-bus-common", "systemd", "libsystemd0", "mount", "libc6", "libgcc-s1",
             "gcc-14-base"]
    deps = lock.resolve_depends({n: RECORDS[n] for n in names})
    # `adduser (>= 3.130) | systemd-sysusers`: systemd Provides systemd-sysusers (= 257…)
    assert deps["dbus-system-bus-common"] == ("systemd",)


def test_resolve_depends_unsatisfied_is_an_error() -> None:
    with pytest.raises(ui.SonixError, match=r"kmod 34.2-2 depends on libkmod2 \(= 34.2-2\)"):
        lock.resolve_depends({n: RECORDS[n] for n in ["kmod", "libc6", "libgcc-s1",
                                                      "gcc-14-base"]})


def test_resolve_depends_prefers_what_each_set_selected() -> None:
    """The services set selects adduser, the system set does not: dbus-system-bus-common's
    `adduser | systemd-sysusers` must resolve to systemd, which both sets select."""
    system = (FIXTURES / "print-uris-system.txt").read_text()
    services = (FIXTURES / "print-uris-services.txt").read_text()
    selections = {
        "system": [p.name for p in apt.parse_print_uris(system)],
        "services": [p.name for p in apt.parse_print_uris(services)],
    }
    roots = lock.read_roots(FIXTURES / "packages.toml")
    result = lock.build_lock(roots, selections, INDEX)
    assert result.packages["dbus-system-bus-common"].depends == ("systemd",)
    assert result.set_closure("system") == sorted(selections["system"])
    assert result.set_closure("services") == sorted(selections["services"])


def test_parse_print_uris_keeps_the_epoch() -> None:
    planned = apt.parse_print_uris((FIXTURES / "print-uris-services.txt").read_text())
    passwd = next(p for p in planned if p.name == "passwd")
    assert (passwd.version, passwd.architecture) == ("1:4.17.4-2", "amd64")
    assert passwd.file == "passwd_1:4.17.4-2_amd64.deb"


def test_lock_end_to_end(fake_apt: FakeApt, cfg: apt.AptConfig, tmp_path: Path) -> None:
    roots = lock.read_roots(FIXTURES / "packages.toml")
    result = lock.lock(roots, cfg)
    assert fake_apt.calls[0][:2] == ["apt-get", "update"]
    assert ["apt-get", "install", "-y", "-qq", "--print-uris", *SYSTEM_ROOTS] in fake_apt.calls
    bash = result.packages["bash"]
    assert bash.to_json() == {
        "name": "bash",
        "version": "5.2.37-2+b10",
        "architecture": "amd64",
        "filename": "pool/main/b/bash/bash_5.2.37-2+b10_amd64.deb",
        "size": int(RECORDS["bash"]["Size"]),
        "sha256": RECORDS["bash"]["SHA256"],
        "depends": ["base-files", "libc6", "libtinfo6"],
    }
    assert "initramfs-tools" not in result.packages
    # the file: stable order, rewriting it is a no-op
    path = tmp_path / "lock.json"
    assert lock.write_lock(result, path)
    assert not lock.write_lock(lock.lock(roots, cfg), path)
    data = json.loads(path.read_text())
    assert list(data["packages"]) == sorted(data["packages"])
    assert data["sets"]["system"]["roots"] == sorted(SYSTEM_ROOTS)
    assert lock.read_lock(path) == result


def test_lock_unknown_root_names_the_closest(
    fake_apt: FakeApt, cfg: apt.AptConfig, tmp_path: Path
) -> None:
    bad = tmp_path / "packages.toml"
    bad.write_text('[sets.system]\nroots = ["bash", "systemdd"]\n')
    with pytest.raises(ui.SonixError) as error:
        lock.lock(lock.read_roots(bad), cfg)
    assert "unknown Debian package in pkgs/packages.toml" in str(error.value)
    assert "systemdd (closest: systemd" in str(error.value)
    assert not any(c[:2] == ["apt-get", "install"] for c in fake_apt.calls)


def test_store_name_replaces_characters_the_store_refuses() -> None:
    pkg = lock.LockedPackage("passwd", "1:4.17~rc1-2", "amd64", "pool/x.deb", 1, "0" * 64)
    assert pkg.store_name == "passwd_1-4.17-rc1-2_amd64.deb"
    assert pkg.spec == "passwd=1:4.17~rc1-2"


def test_the_repository_lock_is_consistent(root: Path) -> None:
    """pkgs/lock.json: every dependency is locked, sorted, and each set's closure recorded."""
    data = json.loads((root / "pkgs" / "lock.json").read_text())
    locked = lock.read_lock(root / "pkgs" / "lock.json")
    for pkg in locked.packages.values():
        assert set(pkg.depends) <= locked.packages.keys(), pkg.name
        assert list(pkg.depends) == sorted(pkg.depends)
    for name, body in data["sets"].items():
        assert body["closure"] == locked.set_closure(name)
    assert locked.to_json() == (root / "pkgs" / "lock.json").read_text()


def test_the_repository_lock_matches_the_roots(root: Path) -> None:
    """pkgs/lock.json was written from the current pkgs/packages.toml (else: `sonix lock`)."""
    roots = lock.read_roots(root / "pkgs" / "packages.toml")
    locked = lock.read_lock(root / "pkgs" / "lock.json")
    assert {s.name: tuple(sorted(s.roots)) for s in roots.sets} == dict(locked.sets), (
        "pkgs/packages.toml changed: run `sonix lock`"
    )
    assert roots.stubs == locked.stubs


def test_changes_lists_added_removed_and_updated_packages() -> None:
    def pkg(name: str, version: str, sha: str = "0") -> lock.LockedPackage:
        return lock.LockedPackage(name, version, "amd64", "pool/x.deb", 1, sha * 64)

    old = lock.Lock("trixie", "amd64", (), {}, {
        "a": pkg("a", "1"), "b": pkg("b", "1"), "c": pkg("c", "1"), "d": pkg("d", "1")})
    new = lock.Lock("trixie", "amd64", (), {}, {
        "a": pkg("a", "1"), "c": pkg("c", "2"), "d": pkg("d", "1", "f"), "e": pkg("e", "1")})
    assert lock.changes(old, new) == [
        "-b 1",
        "~c 1 → 2",
        "~d 1 (same version, other file or dependencies)",
        "+e 1",
    ]


KERNEL_NAMES = ["linux-image-6.12.117+deb13-cloud-amd64", "kmod", "libkmod2", "linux-base",
                "libc6", "libgcc-s1", "gcc-14-base"]


def test_resolve_depends_unstubbed_set_keeps_the_stub_edge_free() -> None:
    """A set resolved without stubs (the benchmark peer) selects initramfs-tools; the system
    set takes the stub. Edges are shared, and the stub wins the tie: the system closure must
    not gain initramfs-tools (the peer lists it as a root instead)."""
    names = [*KERNEL_NAMES, "initramfs-tools"]
    selections = {"system": KERNEL_NAMES, "peer": names}
    deps = lock.resolve_depends(
        {n: RECORDS[n] for n in names}, ["linux-initramfs-tool"], selections, ["peer"]
    )
    assert deps["linux-image-6.12.117+deb13-cloud-amd64"] == ("kmod", "linux-base")
    # Only unstubbed sets contain the kernel: the real package is the edge.
    deps = lock.resolve_depends(
        {n: RECORDS[n] for n in names}, ["linux-initramfs-tool"], {"peer": names}, ["peer"]
    )
    assert deps["linux-image-6.12.117+deb13-cloud-amd64"] == (
        "initramfs-tools", "kmod", "linux-base")


def test_read_roots_stubs_flag(tmp_path: Path) -> None:
    toml = tmp_path / "packages.toml"
    toml.write_text(
        '[sets.peer]\nstubs = false\nroots = ["bash"]\n[sets.system]\nroots = ["bash"]\n'
    )
    roots = lock.read_roots(toml)
    assert [(s.name, s.stubbed) for s in roots.sets] == [("peer", False), ("system", True)]
    toml.write_text('[sets.peer]\nstubs = "no"\nroots = ["bash"]\n')
    with pytest.raises(ui.SonixError, match=r"sets.peer.stubs must be true or false"):
        lock.read_roots(toml)


def test_print_uris_without_stubs_uses_an_empty_status(
    fake_apt: FakeApt, cfg: apt.AptConfig
) -> None:
    apt.print_uris(cfg, ["bash"], stubs=False)
    assert fake_apt.calls[-1] == [
        "apt-get", "install", "-y", "-qq", "--print-uris",
        "-o", f"Dir::State::status={cfg.root / 'status' / 'empty'}", "bash",
    ]
    assert (cfg.root / "status" / "empty").read_text() == ""
