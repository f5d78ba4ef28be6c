"""The private apt configuration: which mirror, what the configuration says, index errors."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sonix import process, ui
from sonix.debian import apt

FIXTURES = Path(__file__).parent / "fixtures" / "debian"


def test_mirror_from_deb822_sources_skips_security_and_disabled() -> None:
    mirror = apt.find_mirror({}, FIXTURES / "sources.list.d", Path("/nonexistent"))
    assert mirror.uri == "http://mirror.example.invalid/debian"
    assert mirror.source.endswith("debian.sources")


def test_mirror_from_one_line_sources_list() -> None:
    mirror = apt.find_mirror({}, Path("/nonexistent"), FIXTURES / "sources.list")
    assert mirror.uri == "http://oneline.example.invalid/debian"


def test_mirror_from_the_environment_wins() -> None:
    env = {"SONIX_DEBIAN_MIRROR": "http://override.example.invalid/debian"}
    mirror = apt.find_mirror(env, FIXTURES / "sources.list.d", FIXTURES / "sources.list")
    assert mirror == apt.Mirror("http://override.example.invalid/debian", "$SONIX_DEBIAN_MIRROR")


def test_no_mirror_is_an_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ui.SonixError) as error:
        apt.find_mirror({}, tmp_path, tmp_path / "sources.list")
    assert error.value.hint is not None and "SONIX_DEBIAN_MIRROR" in error.value.hint


def test_configure_writes_a_private_trixie_configuration(tmp_path: Path) -> None:
    mirror = apt.Mirror("http://mirror.example.invalid/debian", "test")
    cfg = apt.configure(mirror, ["linux-initramfs-tool"], root=tmp_path)
    conf = cfg.config_file.read_text()
    assert f'Dir::State "{tmp_path}/state";' in conf
    assert 'Dir::Etc::SourceList "/dev/null";' in conf  # the host's sources are not read
    assert 'APT::Install-Recommends "false";' in conf
    sources = (tmp_path / "etc/sources.list.d/trixie.sources").read_text()
    assert "Suites: trixie\n" in sources and f"URIs: {mirror.uri}\n" in sources
    status = (tmp_path / "status/status").read_text()
    assert "Provides: linux-initramfs-tool\n" in status
    assert cfg.env["APT_CONFIG"] == str(tmp_path / "apt.conf")
    before = cfg.config_file.stat().st_mtime_ns
    apt.configure(mirror, ["linux-initramfs-tool"], root=tmp_path)
    assert cfg.config_file.stat().st_mtime_ns == before  # idempotent: not rewritten


def _fake(stdout: str, stderr: str = "", code: int = 0) -> Any:
    def run(argv: Sequence[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(argv), code, stdout, stderr)

    return run


def test_update_without_network_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        process,
        "run",
        _fake(
            "Err:1 http://mirror.example.invalid/debian trixie InRelease\n"
            "  Could not resolve 'mirror.example.invalid'\n",
            "E: Failed to fetch http://mirror.example.invalid/debian/dists/trixie/InRelease\n",
            100,
        ),
    )
    cfg = apt.configure(apt.Mirror("http://mirror.example.invalid/debian", "x.sources"), [],
                        root=tmp_path)
    with pytest.raises(ui.SonixError) as error:
        apt.update(cfg)
    assert "cannot read the trixie package index from http://mirror.example.invalid/debian" in (
        error.value.message
    )
    assert "(mirror from x.sources)" in error.value.message
    assert error.value.hint is not None and "network" in error.value.hint


def test_unavailable_compares_what_apt_cache_printed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # apt-cache show silently skips versions it does not know
    monkeypatch.setattr(process, "run", _fake("Package: bash\nVersion: 5.2-1\n\n"))
    cfg = apt.configure(apt.Mirror("http://m.invalid/debian", "t"), [], root=tmp_path)
    assert apt.unavailable(cfg, ["bash=5.2-1", "systemd=1.0"]) == ["systemd=1.0"]
