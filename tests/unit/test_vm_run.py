"""`sonix run`: host checks before the build, the VM's state, and --check's verdict as exit
status (QEMU, the builder and the boot are mocked; tests/vm boots for real)."""

from __future__ import annotations

import subprocess
import types
from pathlib import Path
from typing import Any

import pytest

from sonix import build, cli, paths, ui
from sonix.commands import run as run_command
from sonix.vm import check, qemu


class Calls:
    def __init__(self) -> None:
        self.built: list[Path] = []
        self.specs: list[qemu.VmSpec] = []
        self.argv: list[list[str]] = []


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Calls:
    calls = Calls()
    image = tmp_path / "disk.raw"
    image.write_bytes(b"\0" * 4096)

    def build_system(config: Path) -> Any:
        calls.built.append(config)
        return types.SimpleNamespace(image=image)

    monkeypatch.setattr(build, "build_system", build_system)
    monkeypatch.setenv("SONIX_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(qemu, "require_qemu", lambda: "/usr/bin/qemu-system-x86_64")
    monkeypatch.setattr(qemu, "find_ovmf", lambda directory=None: (Path("/c"), Path("/v")))
    monkeypatch.setattr(qemu, "accelerator", lambda cache: "tcg")
    monkeypatch.setattr(
        qemu, "prepare_firmware",
        lambda state, directory=None: qemu.Firmware(Path("/c"), state / "v"),
    )  # fmt: skip
    monkeypatch.setattr(qemu, "prepare_disk", lambda img, state, size: state / "disk.raw")

    def call(argv: list[str], **kwargs: Any) -> int:
        calls.argv.append(argv)
        return 0

    monkeypatch.setattr(subprocess, "call", call)
    return calls


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "web.nix"
    config.write_text("{ ... }: { }\n")
    return config


def test_run_boots_with_the_console_on_the_terminal(world: Calls, tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert cli.main(["run", str(config), "--memory", "1024", "--forward", "2222:22"]) == 0
    assert world.built == [config]
    (argv,) = world.argv
    assert argv[argv.index("-m") + 1] == "1024"
    assert "stdio,id=serial0,mux=on,signal=off,logfile=" in " ".join(argv)
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in " ".join(argv)
    assert str(paths.state_dir() / "vm" / "web" / "disk.raw") in " ".join(argv)


@pytest.mark.parametrize(("healthy", "status"), [(True, 0), (False, 1)])
def test_check_exit_status_is_the_verdict(
    world: Calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], healthy: bool, status: int,
) -> None:  # fmt: skip
    report = check.BootReport(
        state="running" if healthy else "degraded", failed=0 if healthy else 2,
        boot_complete="active", body="Startup finished in 1s (kernel) = 1s",
    )  # fmt: skip
    seen: list[qemu.VmSpec] = []
    monkeypatch.setattr(check, "boot_check", lambda spec, timeout: seen.append(spec) or report)
    assert cli.main(["run", str(_config(tmp_path)), "--check"]) == status
    out = capsys.readouterr().out
    assert out.startswith("Startup finished in 1s")
    assert ("web: healthy" in out) == healthy
    assert world.argv == []  # no interactive QEMU
    assert seen[0].name == "web" and seen[0].serial_log is not None


def test_bad_input_fails_before_building(world: Calls, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    assert cli.main(["run", str(tmp_path / "missing.nix")]) == 1
    assert cli.main(["run", str(_config(tmp_path)), "--disk-size", "huge"]) == 1
    assert cli.main(["run", str(_config(tmp_path)), "--forward", "22"]) == 1

    def no_ovmf(directory: Path | None = None) -> tuple[Path, Path]:
        raise ui.die("UEFI firmware not found", hint=qemu.OVMF_HINT)

    monkeypatch.setattr(qemu, "find_ovmf", no_ovmf)
    assert cli.main(["run", str(_config(tmp_path))]) == 1
    assert world.built == []


def test_forward_parsing() -> None:
    assert run_command.parse_forward("8080:80") == qemu.PortForward(8080, 80)
    with pytest.raises(ui.SonixError):
        run_command.parse_forward("a:b")
