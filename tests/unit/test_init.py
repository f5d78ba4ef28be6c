"""`sonix init DIR`: the starter repository it writes, that it evaluates with the real package
set as `sonix build` evaluates it, and that it refuses to write into a non-empty DIR."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_core_modules import evaluate

from sonix import build, cli, starter, ui


def test_init_writes_the_starter_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "Web 1"
    assert cli.main(["init", str(directory)]) == 0
    assert capsys.readouterr().out == f"{directory / 'configuration.nix'}\n"
    assert sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) == [
        ".gitignore", "README.md", "configuration.nix", "keys", "keys/.gitkeep",
    ]
    host = (directory / "configuration.nix").read_text()
    assert 'networking.hostName = "web-1";' in host
    assert "trustedKeys = [ ./keys/trusted.gpg ];" in host
    assert ".sonix/" in (directory / ".gitignore").read_text()
    assert "sonix build configuration.nix" in (directory / "README.md").read_text()
    # Nothing left beside it (the temporary directory was renamed into place).
    assert [p.name for p in tmp_path.iterdir()] == ["Web 1"]


def test_the_starter_configuration_evaluates_as_sonix_build_evaluates_it(tmp_path: Path) -> None:
    """build.evaluate is the first step of `sonix build`: the toplevel derivation (image, UKI,
    usr) instantiates with the locked package set, from a directory outside the checkout."""
    host = starter.write(tmp_path / "host")
    assert build.evaluate(host) == {"name": "sonix", "version": "1"}


def test_an_empty_directory_is_used(tmp_path: Path) -> None:
    (tmp_path / "host").mkdir()
    host = starter.write(tmp_path / "host", "db-1")
    assert 'networking.hostName = "db-1";' in host.read_text()


@pytest.mark.parametrize("occupant", ["file", "dotfile", "is-a-file"])
def test_a_non_empty_directory_is_refused_and_nothing_is_written(
    tmp_path: Path, occupant: str
) -> None:
    target = tmp_path / "host"
    if occupant == "is-a-file":
        target.write_text("x")
    else:
        target.mkdir()
        (target / ("README" if occupant == "file" else ".git")).write_text("mine")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ui.SonixError, match="is not empty: nothing written"):
        starter.write(target)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_the_starter_gives_a_way_to_become_root(tmp_path: Path) -> None:
    host = starter.write(tmp_path / "host")
    credentials = evaluate(
        str(host), "systemd.services.systemd-sysusers.serviceConfig.SetCredential"
    )
    assert f"passwd.hashed-password.root:{starter.TRIAL_PASSWORD_HASH}" in credentials


@pytest.mark.parametrize(
    ("name", "hostname"),
    [("web-1", "web-1"), ("My Server!", "my-server"), ("---", "sonix"), ("a" * 80, "a" * 63)],
)
def test_hostname_from_the_directory(name: str, hostname: str) -> None:
    assert starter.hostname_for(Path("/x") / name) == hostname
