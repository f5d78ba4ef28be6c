"""`sonix run`: host checks before the build, the VM's state, and --check's verdict as exit
status (QEMU, the builder and the boot are mocked; tests/vm boots for real)."""

from __future__ import annotations

import io
import socket
import subprocess
import threading
import time
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sonix import build, cli, paths, process, ui
from sonix.commands import run as run_command
from sonix.vm import check, qemu


class Calls:
    def __init__(self) -> None:
        self.built: list[Path] = []
        self.specs: list[qemu.VmSpec] = []
        self.argv: list[list[str]] = []
        self.accel = "tcg"  # what the probe says
        self.kernels: list[Path | None] = []  # what the probe was given
        self.kvm_failure = b""  # what QEMU under KVM writes on stderr (then it stays alive)
        self.signals: list[str] = []


class FakeQemu:
    """process.spawn for the interactive QEMU: exits 0 at once under TCG; under KVM
    writes `kvm_failure` on stderr and runs until it is terminated."""

    def __init__(self, calls: Calls, argv: list[str], **kwargs: Any) -> None:
        calls.argv.append(argv)
        self.calls = calls
        self.kvm = argv[argv.index("-accel") + 1] == "kvm"
        self.stderr = io.BytesIO(calls.kvm_failure if self.kvm else b"")
        self.returncode: int | None = None if self.kvm and calls.kvm_failure else 0

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            time.sleep(timeout or 0)
            raise subprocess.TimeoutExpired("qemu", timeout or 0)
        return self.returncode

    def terminate(self) -> None:
        self.calls.signals.append("TERM")
        self.returncode = -15

    def kill(self) -> None:
        self.calls.signals.append("KILL")
        self.returncode = -9


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Calls:
    calls = Calls()
    image = tmp_path / "disk.raw"
    image.write_bytes(b"\0" * 4096)
    toplevel = tmp_path / "system"
    (toplevel / "usr" / "boot").mkdir(parents=True)
    (toplevel / "usr" / "boot" / "vmlinuz-6.12").write_bytes(b"bzImage")

    def build_system(config: Path) -> Any:
        calls.built.append(config)
        return types.SimpleNamespace(image=image, toplevel=toplevel)

    monkeypatch.setattr(build, "build_system", build_system)
    monkeypatch.setenv("SONIX_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(qemu, "require_qemu", lambda: "/usr/bin/qemu-system-x86_64")
    monkeypatch.setattr(qemu, "find_ovmf",
                        lambda directory=None, *, secure_boot=False: (Path("/c"), Path("/v")))
    def accelerator(cache: Path, kernel: Path | None = None) -> str:
        calls.kernels.append(kernel)
        return "tcg" if qemu._Fallback.reason else calls.accel

    monkeypatch.setattr(qemu, "accelerator", accelerator)
    monkeypatch.setattr(qemu._Fallback, "reason", None)
    monkeypatch.delenv("SONIX_ACCEL", raising=False)
    monkeypatch.setattr(
        qemu, "prepare_firmware",
        lambda state, directory=None, *, secure_boot=False: qemu.Firmware(Path("/c"), state / "v"),
    )
    monkeypatch.setattr(qemu, "prepare_disk", lambda img, state, size: state / "disk.raw")

    monkeypatch.setattr(process, "spawn",
                        lambda argv, **kwargs: FakeQemu(calls, argv, **kwargs))
    monkeypatch.setattr(qemu, "KVM_SILENCE", 0.3)
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
    assert "-device i6300esb -action watchdog=reset" in " ".join(argv)
    # The probe boots the image's own kernel.
    assert world.kernels == [tmp_path / "system" / "usr" / "boot" / "vmlinuz-6.12"]


@pytest.mark.parametrize("failure", [
    b"KVM internal error. Suberror: 1\nextra data[0]: 0x1\nemulation failure\nEAX=0\n",
    b"",  # silent: the serial log stays empty
])
def test_run_falls_back_to_tcg_when_kvm_fails(
    world: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str], failure: bytes
) -> None:
    world.accel = "kvm"
    world.kvm_failure = failure or b"qemu-system-x86_64: warning: host doesn't support pni\n"
    assert cli.main(["run", str(_config(tmp_path))]) == 0
    assert [a[a.index("-accel") + 1] for a in world.argv] == ["kvm", "tcg"]
    assert world.signals == ["TERM"]  # QEMU gives the terminal back
    err = capsys.readouterr().err
    assert err.count("KVM cannot run guests on this host") == 1
    assert "extra data" not in err  # the register dump goes to qemu.log only
    log = (paths.state_dir() / "vm" / "web" / "qemu.log").read_bytes()
    assert log.startswith(world.kvm_failure)


def test_run_with_a_chosen_kvm_fails_clearly(
    world: Calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SONIX_ACCEL", "kvm")
    world.accel = "kvm"
    world.kvm_failure = b"KVM internal error. Suberror: 1\n"
    assert cli.main(["run", str(_config(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "KVM cannot run this guest" in err and "unset SONIX_ACCEL" in err
    assert len(world.argv) == 1


@pytest.mark.parametrize(("healthy", "status"), [(True, 0), (False, 1)])
def test_check_exit_status_is_the_verdict(
    world: Calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], healthy: bool, status: int,
) -> None:
    report = check.BootReport(
        state="running" if healthy else "degraded", failed=0 if healthy else 2,
        boot_complete="active", body="Startup finished in 1s (kernel) = 1s",
    )
    seen: list[qemu.VmSpec] = []

    def boot_check(spec: qemu.VmSpec, timeout: float, cache: Path | None) -> check.BootReport:
        seen.append(spec)
        return report

    monkeypatch.setattr(check, "boot_check", boot_check)
    assert cli.main(["run", str(_config(tmp_path)), "--check"]) == status
    out = capsys.readouterr().out
    assert out.startswith("Startup finished in 1s")
    assert ("web: healthy" in out) == healthy
    assert world.argv == []  # no interactive QEMU
    assert seen[0].name == "web" and seen[0].serial_log is not None


def test_bad_input_fails_before_building(world: Calls, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["run", str(tmp_path / "missing.nix")]) == 1
    assert cli.main(["run", str(_config(tmp_path)), "--disk-size", "huge"]) == 1
    assert cli.main(["run", str(_config(tmp_path)), "--forward", "22"]) == 1

    def no_ovmf(directory: Path | None = None, *, secure_boot: bool = False) -> tuple[Path, Path]:
        raise ui.die("UEFI firmware not found", hint=qemu.OVMF_HINT)

    monkeypatch.setattr(qemu, "find_ovmf", no_ovmf)
    assert cli.main(["run", str(_config(tmp_path))]) == 1
    assert world.built == []


def test_forward_parsing() -> None:
    assert run_command.parse_forward("8080:80") == qemu.PortForward(8080, 80)
    with pytest.raises(ui.SonixError):
        run_command.parse_forward("a:b")


class FakeHeadlessQemu:
    """check.launch: connects to the serial socket; under KVM reports `failure` on its log
    and stays alive (or stays silent), under TCG prints a healthy boot report and exits."""

    instances: ClassVar[list[FakeHeadlessQemu]] = []
    failure: ClassVar[bytes] = b"KVM internal error. Suberror: 1\nemulation failure\n"

    def __init__(self, argv: list[str], log: Any) -> None:
        FakeHeadlessQemu.instances.append(self)
        self.argv = argv
        self.accel = argv[argv.index("-accel") + 1]
        self.returncode: int | None = None
        chardev = argv[argv.index("-chardev") + 1]
        path = chardev.split("path=")[1].split(",")[0]
        self.serial = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.serial.connect(path)
        if self.accel == "kvm":
            with open(log.name, "ab") as own:
                own.write(self.failure)
            return
        self.serial.sendall(
            f"{check.BEGIN}\nStartup finished in 1s\n{check.END} state=running failed=0 "
            "boot-complete=active\n".encode()
        )
        # The guest powers off a moment after its report (sooner would race the reader).
        threading.Timer(0.3, self.kill, kwargs={"status": 0}).start()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            raise subprocess.TimeoutExpired("qemu", timeout or 0)
        return self.returncode

    def kill(self, status: int = -9) -> None:
        if self.returncode is None:
            self.returncode = status
        self.serial.close()


@pytest.mark.parametrize("failure", [FakeHeadlessQemu.failure, b""])  # b"": silent
def test_check_falls_back_to_tcg_when_kvm_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    failure: bytes,
) -> None:
    monkeypatch.delenv("SONIX_ACCEL", raising=False)
    monkeypatch.setattr(qemu._Fallback, "reason", None)
    monkeypatch.setattr(qemu, "KVM_SILENCE", 0.5)
    monkeypatch.setattr(check, "launch", FakeHeadlessQemu)
    monkeypatch.setattr(FakeHeadlessQemu, "instances", [])
    monkeypatch.setattr(FakeHeadlessQemu, "failure", failure)
    spec = qemu.VmSpec(name="web", accel="kvm", serial_log=tmp_path / "serial.log",
                       firmware=qemu.Firmware(Path("/c"), Path("/v")))
    report = check.boot_check(spec, 30, tmp_path / "cache")
    assert report.healthy
    assert [q.accel for q in FakeHeadlessQemu.instances] == ["kvm", "tcg"]
    assert capsys.readouterr().err.count("KVM cannot run guests") == 1
    assert (tmp_path / "cache" / "accel").read_text().split()[1] == "tcg"
    # With SONIX_ACCEL=kvm the failure is an error, not a fallback (and not a hang).
    monkeypatch.setattr(qemu._Fallback, "reason", None)
    monkeypatch.setenv("SONIX_ACCEL", "kvm")
    with pytest.raises(ui.SonixError, match="KVM cannot run this guest"):
        check.boot_check(spec, 30, tmp_path / "cache")
