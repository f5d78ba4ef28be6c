"""Secure Boot firmware and the software TPM: QEMU's argv, OVMF's Secure Boot build, swtpm's
start, stop and lifetime with a real swtpm (and a real QEMU where it matters), the runner's and
the driver's handling, and the boot report's chain-of-trust fields. tests/vm boots for real
(tests/vm/test_updates.py)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from test_process import alive
from test_testing_driver import FakeQemu, fake_qemu  # noqa: F401 (a fixture)
from test_vm_run import Calls, _config, world  # noqa: F401 (a fixture)

from sonix import cli, process, ui
from sonix.testing import Machine
from sonix.vm import check, qemu, swtpm

needs_swtpm = pytest.mark.skipif(shutil.which("swtpm") is None, reason="swtpm is not installed")


def _tpm(tmp_path: Path) -> qemu.Tpm:
    return qemu.Tpm(state=tmp_path / "vm" / "tpm", socket=tmp_path / "run" / "swtpm",
                    log=tmp_path / "vm" / "swtpm.log")


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


# ---- QEMU's argv and the firmware ------------------------------------------------------------


def test_secure_boot_and_tpm_argv() -> None:
    spec = qemu.VmSpec(
        name="sb", accel="tcg",
        firmware=qemu.Firmware(Path("/ovmf/OVMF_CODE_4M.secboot.fd"), Path("/s/OVMF_VARS.fd"),
                               secure_boot=True),
        disk=Path("/s/disk.raw"), serial=Path("/run/x/serial"), user_net=False,
        tpm=qemu.Tpm(state=Path("/s/tpm"), socket=Path("/run/x/swtpm"), log=Path("/s/l")),
    )
    argv = qemu.qemu_argv(spec)
    assert argv[argv.index("-machine") + 1] == "q35,smm=on"
    joined = " ".join(argv)
    assert (
        "-global driver=cfi.pflash01,property=secure,value=on "
        "-drive if=pflash,format=raw,unit=0,readonly=on,file=/ovmf/OVMF_CODE_4M.secboot.fd "
        "-drive if=pflash,format=raw,unit=1,file=/s/OVMF_VARS.fd"
    ) in joined
    assert (
        "-chardev socket,id=chrtpm,path=/run/x/swtpm -tpmdev emulator,id=tpm0,chardev=chrtpm "
        "-device tpm-tis,tpmdev=tpm0"
    ) in joined


def test_plain_firmware_has_no_smm_and_no_tpm() -> None:
    spec = qemu.VmSpec(name="p", firmware=qemu.Firmware(Path("/c"), Path("/v")))
    argv = qemu.qemu_argv(spec)
    assert argv[argv.index("-machine") + 1] == "q35"
    assert "-global" not in argv and "-tpmdev" not in argv


def test_secure_boot_firmware_starts_in_setup_mode_and_keeps_its_vars(tmp_path: Path) -> None:
    ovmf = tmp_path / "ovmf"
    ovmf.mkdir()
    (ovmf / "OVMF_CODE_4M.secboot.fd").write_bytes(b"secure code")
    (ovmf / "OVMF_VARS_4M.fd").write_bytes(b"no keys")
    state = tmp_path / "state"
    state.mkdir()
    firmware = qemu.prepare_firmware(state, ovmf, secure_boot=True)
    assert firmware.secure_boot and firmware.code.name == "OVMF_CODE_4M.secboot.fd"
    assert firmware.vars == state / "OVMF_VARS.fd" and firmware.vars.read_bytes() == b"no keys"
    firmware.vars.write_bytes(b"enrolled keys")
    assert qemu.prepare_firmware(state, ovmf, secure_boot=True).vars.read_bytes() == (
        b"enrolled keys"
    )
    (ovmf / "OVMF_CODE_4M.secboot.fd").unlink()
    with pytest.raises(ui.SonixError, match=r"OVMF_CODE_4M\.secboot\.fd") as error:
        qemu.find_ovmf(ovmf, secure_boot=True)
    assert "ovmf" in str(error.value.hint)


@pytest.mark.skipif(not Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd").is_file(),
                    reason="no Debian ovmf package")
def test_the_host_has_the_secure_boot_build() -> None:
    code, template = qemu.find_ovmf(secure_boot=True)
    assert code.name == "OVMF_CODE_4M.secboot.fd" and template.name == "OVMF_VARS_4M.fd"


# ---- swtpm -----------------------------------------------------------------------------------


def test_swtpm_argv(tmp_path: Path) -> None:
    tpm = _tpm(tmp_path)
    assert swtpm.swtpm_argv(tpm) == [
        "swtpm", "socket", "--tpm2", "--tpmstate", f"dir={tpm.state}",
        "--ctrl", f"type=unixio,path={tpm.socket}", "--terminate",
        "--log", f"file={tpm.log},level=1",
    ]
    with pytest.raises(ui.SonixError, match="comma"):
        swtpm.swtpm_argv(qemu.Tpm(Path("/a,b"), Path("/s"), Path("/l")))


def test_missing_swtpm_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ui.SonixError) as error:
        swtpm.start(_tpm(tmp_path))
    assert "swtpm-tools" in str(error.value.hint)


@needs_swtpm
def test_swtpm_that_exits_or_hangs_is_an_error_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tpm = _tpm(tmp_path)
    tpm.socket.parent.mkdir(parents=True)

    def broken(argv: list[str], log: object) -> process.Child:
        return process.spawn(["sh", "-c", f"echo cannot lock the state >> {tpm.log}; exit 3"])

    monkeypatch.setattr(swtpm, "launch", broken)
    with pytest.raises(ui.SonixError, match="status 3 before it was ready") as error:
        swtpm.start(tpm)
    assert "cannot lock the state" in error.value.message

    children: list[process.Child] = []

    def silent(argv: list[str], log: object) -> process.Child:
        children.append(process.spawn(["sleep", "30"]))
        return children[-1]

    monkeypatch.setattr(swtpm, "launch", silent)
    with pytest.raises(ui.SonixError, match="no socket"):
        swtpm.start(tpm, timeout=0.3)
    assert children[0].poll() is not None  # killed, not left behind


@needs_swtpm
def test_swtpm_keeps_its_state_across_restarts(tmp_path: Path) -> None:
    tpm = _tpm(tmp_path)
    tpm.socket.parent.mkdir(parents=True)
    state = tpm.state / "tpm2-00.permall"

    def power_on() -> bytes:
        """What QEMU does first (CMD_INIT); the TPM's permanent state is on disk then."""
        process.run(["swtpm_ioctl", "--unix", str(tpm.socket), "-i"], timeout=10)
        return state.read_bytes()

    with swtpm.running(tpm) as child:
        assert child is not None and child.poll() is None
        assert tpm.socket.exists()
        seeds = power_on()  # a new TPM: its seeds were made now
    assert child.poll() is not None
    # A new swtpm on the same directory: the lock is free and the same TPM comes back.
    with swtpm.running(tpm) as again:
        assert again is not None and again.poll() is None
        assert power_on() == seeds
    with swtpm.running(None) as nothing:
        assert nothing is None


@needs_swtpm
@pytest.mark.skipif(shutil.which(qemu.QEMU) is None, reason="no QEMU")
@pytest.mark.parametrize("how", ["quit", "kill"])
def test_swtpm_ends_with_its_qemu(tmp_path: Path, how: str) -> None:
    """QEMU 7.2 connects to swtpm with the argv qemu_argv makes; when QEMU ends, by a quit
    (it shuts swtpm down) or killed (swtpm's --terminate), swtpm ends too."""
    tpm = _tpm(tmp_path)
    tpm.socket.parent.mkdir(parents=True)
    spec = qemu.VmSpec(name="t", user_net=False, watchdog=False, tpm=tpm,
                       serial=tmp_path / "run" / "serial", memory_mib=128, cpus=1)
    argv = [a for a in qemu.qemu_argv(spec) if a != "chardev:serial0"]
    argv = argv[:argv.index("-chardev", argv.index("tpm-tis,tpmdev=tpm0"))]  # no serial
    child = swtpm.start(tpm)
    vm = process.spawn([*argv, "-S", "-monitor", "stdio"], stdin=subprocess.PIPE,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # QEMU connected (or failed: then it has exited)
        assert vm.poll() is None, vm.stderr.read() if vm.stderr else ""
        assert child.poll() is None
        if how == "quit":
            assert vm.stdin is not None
            vm.stdin.write(b"quit\n")
            vm.stdin.flush()
            vm.wait(10)
        else:
            process.stop(vm, grace=0)
        assert _gone(child.pid) or child.poll() is not None
        child.wait(10)
    finally:
        process.stop(vm, grace=0)
        swtpm.stop(child)


@needs_swtpm
def test_swtpm_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    tpm = _tpm(tmp_path)
    tpm.socket.parent.mkdir(parents=True)
    starter = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from sonix.vm import qemu, swtpm\n"
        f"child = swtpm.start(qemu.Tpm(Path({str(tpm.state)!r}), Path({str(tpm.socket)!r}), "
        f"Path({str(tpm.log)!r})))\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert alive(pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _gone(pid), "swtpm outlived the process that started it"
    finally:
        parent.kill()
        parent.wait()


# ---- the runner ------------------------------------------------------------------------------


def test_run_secure_boot_tpm_starts_swtpm_around_qemu(
    world: Calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    events: list[str] = []
    tpms: list[qemu.Tpm] = []

    def start(tpm: qemu.Tpm, timeout: float = 0) -> process.Stoppable:
        events.append("swtpm up")
        tpms.append(tpm)
        return process.Child.__new__(process.Child)  # never used: stop() is replaced too

    monkeypatch.setattr(swtpm, "start", start)
    monkeypatch.setattr(
        swtpm, "stop", lambda child: events.append(f"swtpm stopped {len(world.argv)}")
    )
    monkeypatch.setattr(swtpm, "require_swtpm", lambda: "/usr/bin/swtpm")
    firmwares: list[bool] = []

    def prepare_firmware(state: Path, directory: Path | None = None, *,
                         secure_boot: bool = False) -> qemu.Firmware:
        firmwares.append(secure_boot)
        return qemu.Firmware(Path("/c.secboot"), state / "v", secure_boot=secure_boot)

    monkeypatch.setattr(qemu, "prepare_firmware", prepare_firmware)
    monkeypatch.setattr(qemu, "find_ovmf", lambda directory=None, *, secure_boot=False: (
        Path("/c"), Path("/v")))
    assert cli.main(["run", str(_config(tmp_path)), "--secure-boot", "--tpm"]) == 0
    (argv,) = world.argv
    assert firmwares == [True]
    assert argv[argv.index("-machine") + 1] == "q35,smm=on"
    (tpm,) = tpms
    assert f"socket,id=chrtpm,path={tpm.socket}" in argv
    assert tpm.state.parent == tpm.log.parent  # beside the disk, in the state directory
    assert (tpm.state.parent / "disk.raw").as_posix() in " ".join(argv)
    assert events == ["swtpm up", "swtpm stopped 1"]  # up before QEMU, stopped after it
    assert not tpm.socket.parent.exists()  # the runtime directory is removed


def test_run_tpm_without_swtpm_fails_before_building(
    world: Calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert cli.main(["run", str(_config(tmp_path)), "--tpm"]) == 1
    assert world.built == []


# ---- the driver ------------------------------------------------------------------------------


@pytest.fixture
def tpm_machine(
    fake_qemu: type[FakeQemu], tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> Iterator[tuple[Machine, list[process.Child], list[list[str]]]]:
    """An image machine with Secure Boot firmware and a real swtpm (the QEMU is fake)."""
    firmware = qemu.Firmware(tmp_path / "code.fd", tmp_path / "vars.fd", secure_boot=True)
    monkeypatch.setattr(qemu, "prepare_firmware", lambda state, *, secure_boot: firmware)
    monkeypatch.setattr(qemu, "prepare_disk", lambda image, state, size: tmp_path / "disk.raw")
    started: list[process.Child] = []
    argvs: list[list[str]] = []
    real_launch = swtpm.launch

    def launch(argv: list[str], log: BinaryIO) -> process.Child:
        argvs.append(argv)
        started.append(real_launch(argv, log))
        return started[-1]

    monkeypatch.setattr(swtpm, "launch", launch)
    m = Machine("fake", tmp_path / "state", accel="tcg", user_net=False, image=tmp_path / "i",
                secure_boot=True, tpm=True)
    yield m, started, argvs
    m.stop()


@needs_swtpm
def test_driver_starts_a_swtpm_for_each_qemu_on_the_same_state(
    tpm_machine: tuple[Machine, list[process.Child], list[list[str]]],
) -> None:
    machine, started, argvs = tpm_machine
    assert machine.succeed("echo up") == "up\n"
    (first,) = started
    assert first.poll() is None
    argv = FakeQemu.instances[0].argv
    assert argv[argv.index("-machine") + 1] == "q35,smm=on"
    assert "-tpmdev" in argv and "-no-reboot" in argv
    # A power cycle (a crash, then any command) gets a new swtpm on the same state.
    machine.crash()
    assert first.poll() is not None
    assert machine.succeed("echo again") == "again\n"
    assert len(started) == 2 and started[1].poll() is None
    assert [a[a.index("--tpmstate") + 1] for a in argvs] == [
        f"dir={machine.tpm_state}"] * 2
    assert machine.tpm_state.parent == machine.state_dir  # beside the disk and the vars
    machine.stop()
    assert all(child.poll() is not None for child in started)


def test_secure_boot_needs_an_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="secure_boot needs an image"):
        Machine("x", tmp_path, direct_boot=qemu.DirectBoot(Path("/k")), secure_boot=True)


def test_driver_reports_a_swtpm_that_does_not_start(
    tpm_machine: tuple[Machine, list[process.Child], list[list[str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    machine, _, _ = tpm_machine

    def fail(tpm: qemu.Tpm, timeout: float = 0) -> process.Child:
        raise ui.SonixError("swtpm exited with status 1 before it was ready")

    monkeypatch.setattr(swtpm, "start", fail)
    from sonix.testing import MachineError

    with pytest.raises(MachineError, match="fake: swtpm exited"):
        machine.start()
    assert FakeQemu.instances == []  # no QEMU without its TPM
    assert not machine.is_running()


# ---- the boot report -------------------------------------------------------------------------

END = "SONIX-BOOT-REPORT-END state=running failed=0 boot-complete=active"
TEXT = f"SONIX-BOOT-REPORT-BEGIN\r\n## chain of trust\r\n{END}"


def test_report_carries_the_chain_of_trust() -> None:
    report = check.parse_report(
        TEXT + " secure-boot=setup tpm=tpm2 root-encrypted=no var-encrypted=yes\r\n"
    )
    assert report is not None and report.healthy
    assert (report.secure_boot, report.tpm, report.root_encrypted, report.var_encrypted) == (
        "setup", "tpm2", "no", "yes"
    )
    assert report.security_summary() == (
        "Secure Boot setup, TPM tpm2, root encrypted no, /var encrypted yes"
    )


def test_report_of_an_older_image_says_unknown() -> None:
    report = check.parse_report(TEXT + "\r\n")
    assert report is not None and report.healthy
    assert report.secure_boot == report.tpm == report.root_encrypted == "unknown"


@pytest.mark.parametrize(("files", "expected"), [
    ({}, "secure-boot=off tpm=none"),
    ({"SecureBoot": 1, "SetupMode": 0, "tpm": "2"}, "secure-boot=on tpm=tpm2"),
    ({"SecureBoot": 0, "SetupMode": 1}, "secure-boot=setup tpm=none"),
])
def test_boot_report_script_reads_efi_variables_and_the_tpm(
    tmp_path: Path, files: dict[str, int | str], expected: str
) -> None:
    """The guest side (modules/testing/boot-report.sh), with /sys under a scratch root."""
    script = (Path(__file__).parents[2] / "modules" / "testing" / "boot-report.sh").read_text()
    functions = script[script.index("efi_byte() {"):script.index('security="')]
    root = tmp_path / "root"
    efivars = root / "sys/firmware/efi/efivars"
    efivars.mkdir(parents=True)
    guid = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
    for name, value in files.items():
        if name == "tpm":
            (root / "sys/class/tpm/tpm0").mkdir(parents=True)
            (root / "sys/class/tpm/tpm0/tpm_version_major").write_text(f"{value}\n")
        else:
            (efivars / f"{name}-{guid}").write_bytes(b"\x06\x00\x00\x00" + bytes([int(value)]))
    functions = functions.replace("/sys/", f"{root}/sys/")
    out = subprocess.run(
        ["bash", "-c", functions + 'echo "secure-boot=$(secure_boot) tpm=$(tpm) '
         'root=$(encrypted /)"'],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert out.startswith(expected + " root=")
    assert out.split("root=")[1] in ("yes", "no")


def test_a_new_tpm_is_made_with_swtpm_setup_and_the_sha256_bank_only(tmp_path: Path) -> None:
    tpm = _tpm(tmp_path)
    assert swtpm.manufacture_argv(tpm) == [
        "swtpm_setup", "--tpm2", "--tpmstate", str(tpm.state), "--pcr-banks", "sha256",
        "--logfile", str(tpm.log),
    ]


@needs_swtpm
def test_swtpm_manufactures_a_new_tpm_once(tmp_path: Path) -> None:
    tpm = _tpm(tmp_path)
    tpm.socket.parent.mkdir(parents=True)
    with swtpm.running(tpm):
        pass
    log = tpm.log.read_text()
    assert "activated PCR banks sha256 among sha1,sha256,sha384,sha512" in log, log
    assert (tpm.state / swtpm.STATE_FILE).stat().st_size > 0
    with swtpm.running(tpm):  # the same TPM: not made again
        pass
    assert tpm.log.read_text().count("Starting vTPM manufacturing") == 1


def test_a_failing_swtpm_setup_is_an_error_that_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, script in (("swtpm", "exit 0"), ("swtpm_setup", "echo 'no space left' >&2; exit 1")):
        (fake / name).write_text(f"#!/bin/sh\n{script}\n")
        (fake / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    with pytest.raises(ui.SonixError, match=r"swtpm_setup failed \(status 1\): no space left"):
        swtpm.start(_tpm(tmp_path))
    assert not (tmp_path / "vm" / "tpm" / swtpm.STATE_FILE).exists()
