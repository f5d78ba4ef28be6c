"""eval-config.nix: the core modules plus the user's, with assertions checked on build."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonix import docs, nix, paths, ui

FIXTURES = Path(__file__).parent / "fixtures"


def eval_checked(module: Path) -> object:
    expr = (
        f"(import {paths.source_root()}/eval-config.nix "
        f"{{ modules = [ {docs.nix_path(module)} ]; }}).checked.ports"
    )
    return nix.eval_expr_json(expr)


def test_every_failed_assertion_is_listed() -> None:
    with pytest.raises(ui.SonixError) as error:
        eval_checked(FIXTURES / "failing-assertions.nix")
    text = str(error.value)
    assert "Failed assertions:" in text
    assert "- ports must not repeat: 22 22" in text
    assert "- at most one port" in text
    assert "this one holds" not in text


def test_warnings_are_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = tmp_path / "ok.nix"
    module.write_text(
        "{ lib, ... }: { options.ports = lib.mkOption { type = lib.types.listOf lib.types.port;"
        ' description = "p"; }; config.ports = [ 80 ];'
        ' config.warnings = [ "port 80 is plain HTTP" ]; }'
    )
    assert eval_checked(module) == [80]
    assert "warning: port 80 is plain HTTP" in capsys.readouterr().err
