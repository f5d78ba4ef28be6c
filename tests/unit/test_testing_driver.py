"""The test driver without QEMU: `retry`, the backdoor protocol, and `Machine` against a fake
QEMU process whose "guest" runs the commands with the host's bash (same framing as
modules/testing/backdoor.sh), so succeed/fail/waits/copies/reboot/crash are checked in
milliseconds. The real thing: tests/vm/test_driver_selftest.py."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sonix.testing import (
    CommandFailed,
    Driver,
    Machine,
    MachineError,
    UnitFailed,
    WaitTimeout,
    retry,
)
from sonix.testing import (
    machine as machine_module,
)
from sonix.testing.backdoor import (
    HEADER_SIZE,
    ProtocolError,
    Reply,
    ReplyParser,
    encode_request,
)
from sonix.vm import qemu

# ---- retry ----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_retry_returns_when_the_check_holds() -> None:
    clock = FakeClock()
    results = iter([False, False, True])
    retry(lambda last: next(results), 60, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [0.2, pytest.approx(0.3)]


def test_retry_times_out_with_a_last_try() -> None:
    clock = FakeClock()
    seen: list[bool] = []

    def check(last_try: bool) -> bool:
        seen.append(last_try)
        return False

    with pytest.raises(WaitTimeout, match="timed out after 10s waiting for the flag"):
        retry(check, 10, what="the flag", clock=clock, sleep=clock.sleep)
    assert seen[-1] is True and not any(seen[:-1])
    assert max(clock.sleeps) == 2.0  # the delay grows but stays bounded
    assert clock.now <= 10


def test_retry_lets_machine_errors_through() -> None:
    def check(last_try: bool) -> bool:
        raise MachineError("QEMU died")

    with pytest.raises(MachineError):
        retry(check, 10, sleep=lambda s: None)


# ---- protocol -------------------------------------------------------------------------------


def test_request_has_a_fixed_size_header_and_a_length_framed_script() -> None:
    data = encode_request("echo ä\n", 30)
    header, payload = data[:HEADER_SIZE], data[HEADER_SIZE:]
    assert header.endswith(b"\n") and len(header) == 64
    assert header.split() == [b"SONIX-RUN", b"30", b"8"]
    assert payload == "echo ä\n".encode()


def test_reply_parser() -> None:
    parser = ReplyParser()
    assert parser.feed("SONIX-BACKDOOR-READY") is None
    assert parser.feed("SONIX-OUT " + base64.b64encode(b"out\n").decode()) is None
    assert parser.feed("SONIX-ERR ") is None
    reply = parser.feed("SONIX-STATUS 3")
    assert reply is not None
    assert (reply.status, reply.stdout, reply.stderr) == (3, "out\n", "")
    with pytest.raises(ProtocolError):
        ReplyParser().feed("SONIX-STATUS 0")
    with pytest.raises(ProtocolError):
        ReplyParser().feed("SONIX-OUT !!!")


# ---- Machine against a fake QEMU ------------------------------------------------------------


def _option(argv: list[str], flag: str, prefix: str) -> str:
    for i, arg in enumerate(argv[:-1]):
        if arg == flag and argv[i + 1].startswith(prefix):
            return argv[i + 1]
    raise AssertionError(f"no {flag} {prefix}… in {argv}")


def _path(option: str) -> str:
    for part in option.split(","):
        if part.startswith("path="):
            return part.removeprefix("path=")
    return option.removeprefix("unix:").split(",")[0]


class FakeQemu:
    """Stands in for subprocess.Popen(qemu argv): connects to the serial and backdoor sockets,
    serves QMP, and runs backdoor requests with the host's bash in a scratch directory."""

    instances: ClassVar[list[FakeQemu]] = []
    panics_left: ClassVar[int] = 0  # boots whose kernel panics before the backdoor
    panic_resets: ClassVar[bool] = False  # the panic resets the VM (QEMU exits, -no-reboot)
    # How KVM fails on this "host" (None: it works): "internal" (QEMU reports a KVM internal
    # error and stays alive, the guest paused), "silent" (nothing at all), "msr" (QEMU aborts).
    kvm_failure: ClassVar[str | None] = None
    watchdog_resets: ClassVar[int] = 0  # boots that hang until the watchdog resets them

    def __init__(self, argv: list[str], log: Any) -> None:
        self.argv = argv
        self.log_path = Path(log.name)  # QEMU writes on its own descriptor of the log
        self.returncode: int | None = None
        self._qmp_conn: Any = None
        self._qmp_ready = threading.Event()
        self.monitor: list[str] = []
        self.boots = 0
        self.hung = False
        self._stop = threading.Event()
        self.serial = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.serial.connect(_path(_option(argv, "-chardev", "socket,id=serial0")))
        self.backdoor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.backdoor.connect(_path(_option(argv, "-chardev", "socket,id=backdoor")))
        self.qmp_server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.qmp_server.bind(_path(_option(argv, "-qmp", "unix:")))
        self.qmp_server.listen(1)
        threading.Thread(target=self._qmp, daemon=True).start()
        threading.Thread(target=self._guest, daemon=True).start()
        FakeQemu.instances.append(self)

    def _exit(self, status: int) -> None:
        """QEMU ends by itself (e.g. a guest reset under -no-reboot)."""
        self.returncode = status
        self._stop.set()
        for sock in (self.serial, self.backdoor, self.qmp_server):
            sock.close()
        if self._qmp_conn is not None:
            self._qmp_conn.close()

    def _kvm_fails(self) -> bool:
        accel = self.argv[self.argv.index("-accel") + 1]
        if accel != "kvm" or FakeQemu.kvm_failure is None:
            return False
        with open(self.log_path, "ab") as log:
            if FakeQemu.kvm_failure == "internal":
                log.write(b"KVM internal error. Suberror: 1\nextra data[0]: 0x1\n"
                          b"emulation failure\nEAX=00000000 EBX=00807000\n")
            elif FakeQemu.kvm_failure == "msr":
                log.write(b"qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n")
        if FakeQemu.kvm_failure == "msr":
            self._exit(134)
        return True

    def _fire_watchdog(self) -> None:
        """The guest hung; the i6300esb resets it, which under -no-reboot ends QEMU."""
        self._qmp_ready.wait(5)
        for event in ('{"event": "WATCHDOG", "data": {"action": "reset"}}',
                      '{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-reset"}}'):
            self._qmp_conn.sendall(event.encode() + b"\n")
        self._exit(0)

    def _boot(self) -> None:
        self.boots += 1
        if self._kvm_fails():
            return
        if FakeQemu.watchdog_resets > 0 and "i6300esb" in self.argv:
            FakeQemu.watchdog_resets -= 1
            self.serial.sendall(b"Welcome to sonix\r\n")  # and then nothing: hung
            threading.Timer(0.2, self._fire_watchdog).start()
            return
        if FakeQemu.panics_left > 0:
            FakeQemu.panics_left -= 1
            self.serial.sendall(b"Kernel panic - not syncing: Fatal exception in interrupt\r\n")
            if FakeQemu.panic_resets:  # no "Rebooting in": a panic in an interrupt may not say
                self.returncode = 0
                self._stop.set()
                for sock in (self.serial, self.backdoor, self.qmp_server):
                    sock.close()
            return
        self.serial.sendall(f"Linux booting (boot {self.boots})\r\nlogin: \r\n".encode())
        self.backdoor.sendall(b"SONIX-BACKDOOR-READY\n")

    def _guest(self) -> None:
        self._boot()
        reader = self.backdoor.makefile("rb")
        while not self._stop.is_set():
            header = reader.read(HEADER_SIZE)
            if len(header) < HEADER_SIZE:
                return
            _, timeout, length = header.split()
            script = reader.read(int(length)).decode()
            if "poweroff" in script:
                self.kill()
                return
            if self.hung:
                continue
            result = subprocess.run(
                ["bash", "-c", script], capture_output=True, timeout=int(timeout) or None,
                check=False,
            )
            reply = (
                f"SONIX-OUT {base64.b64encode(result.stdout).decode()}\n"
                f"SONIX-ERR {base64.b64encode(result.stderr).decode()}\n"
                f"SONIX-STATUS {result.returncode}\n"
            )
            self.backdoor.sendall(reply.encode())

    def _qmp(self) -> None:
        try:
            conn, _ = self.qmp_server.accept()
        except OSError:
            return
        file = conn.makefile("rwb")
        file.write(b'{"QMP": {}}\n')
        file.flush()
        self._qmp_conn = conn
        self._qmp_ready.set()
        for line in file:
            request = json.loads(line)
            if request["execute"] == "human-monitor-command":
                command = request["arguments"]["command-line"]
                self.monitor.append(command)
                if command == "sendkey ctrl-alt-delete":
                    threading.Timer(0.05, self._boot).start()
            file.write(b'{"return": {}}\n')
            file.flush()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._stop.wait(timeout):
            raise subprocess.TimeoutExpired(self.argv, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            self.returncode = -9
        self._stop.set()
        for sock in (self.serial, self.backdoor, self.qmp_server):
            sock.close()


@pytest.fixture
def fake_qemu(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeQemu]]:
    FakeQemu.instances = []
    FakeQemu.panics_left = 0
    FakeQemu.kvm_failure = None
    FakeQemu.watchdog_resets = 0
    monkeypatch.setattr(machine_module, "launch", FakeQemu)
    yield FakeQemu
    for instance in FakeQemu.instances:
        instance.kill()


@pytest.fixture
def machine(fake_qemu: type[FakeQemu], tmp_path: Path) -> Iterator[Machine]:
    m = Machine(
        "fake", tmp_path / "state", accel="tcg", user_net=False,
        direct_boot=qemu.DirectBoot(Path("/kernel"), Path("/initrd")),
    )
    yield m
    m.stop()


def test_machine_commands(machine: Machine) -> None:
    machine.start()
    assert machine.succeed("echo one", "echo two") == "one\ntwo\n"
    assert machine.execute("echo out; echo err >&2; exit 4") == (4, "out\n")
    assert machine.fail("exit 1") == ""
    with pytest.raises(CommandFailed) as failure:
        machine.succeed("echo why >&2; exit 2")
    assert failure.value.status == 2 and "why" in str(failure.value)
    assert not isinstance(failure.value, MachineError)
    with pytest.raises(CommandFailed):
        machine.fail("true")
    assert machine.boot_times and machine.is_up()
    argv = FakeQemu.instances[0].argv
    assert argv == qemu.qemu_argv(machine.spec(Path(_path(argv[argv.index("-qmp") + 1])).parent))


def test_machine_waits(machine: Machine, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    machine.succeed(f"(sleep 0.5; echo ok > {flag}) >/dev/null 2>&1 &")
    assert machine.wait_until_succeeds(f"cat {flag}", timeout=30) == "ok\n"
    machine.wait_until_fails(f"rm {flag}", timeout=30)
    with pytest.raises(WaitTimeout):
        machine.wait_until_succeeds("false", timeout=1)
    assert machine.wait_for_console_text(r"boot \d+", timeout=5) == "boot 1"
    with pytest.raises(WaitTimeout):
        machine.wait_for_console_text(r"boot \d+", timeout=0.3)


def test_typing_on_the_serial_console(machine: Machine) -> None:
    with pytest.raises(MachineError, match="not running"):
        machine.send_console_text("too early\n")
    machine.start()
    machine.send_console_text("recovery key\n")
    guest = FakeQemu.instances[-1].serial
    guest.settimeout(5)
    typed = b""
    while len(typed) < len(b"recovery key\n"):
        typed += guest.recv(64)
    assert typed == b"recovery key\n"


def test_wait_for_unit(machine: Machine, tmp_path: Path) -> None:
    # A fake systemctl in PATH: a.service is active, b.service has failed.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(
        "#!/bin/bash\n"
        'case "$*" in *a.service) echo active ;; *b.service) echo failed ;;\n'
        "  list-jobs*) ;; *) echo inactive ;; esac\n"
    )
    (bin_dir / "journalctl").write_text("#!/bin/bash\necho 'b: crashed'\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    machine.start()
    original = machine._run

    def run_with_path(command: str, timeout: float | None) -> Reply:
        return original(f"PATH={bin_dir}:$PATH; {command}", timeout)

    machine._run = run_with_path  # type: ignore[method-assign]  # the tools above first
    machine.wait_for_unit("a.service", timeout=10)
    with pytest.raises(UnitFailed, match="b: crashed"):
        machine.wait_for_unit("b.service", timeout=10)
    with pytest.raises(UnitFailed, match="no job is queued"):
        machine.wait_for_unit("c.service", timeout=10)


def test_copy_both_ways(machine: Machine, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "d").mkdir(parents=True)
    (source / "d" / "bin.dat").write_bytes(bytes(range(256)) * 50)
    (source / "x.sh").write_text("echo x\n")
    (source / "x.sh").chmod(0o750)
    guest = tmp_path / "guest"  # the fake guest shares the host's file system
    machine.copy_from_host(source, str(guest))
    assert (guest / "d" / "bin.dat").read_bytes() == bytes(range(256)) * 50
    assert (guest / "x.sh").stat().st_mode & 0o777 == 0o750
    back = tmp_path / "back"
    machine.copy_from_machine(str(guest), back)
    assert (back / "d" / "bin.dat").read_bytes() == bytes(range(256)) * 50
    assert (back / "x.sh").stat().st_mode & 0o777 == 0o750
    machine.copy_from_machine(str(guest / "x.sh"), tmp_path / "one.sh")
    assert (tmp_path / "one.sh").read_text() == "echo x\n"
    with pytest.raises(CommandFailed, match="no such file"):
        machine.copy_from_machine(str(tmp_path / "missing"), back)


def test_reboot_crash_shutdown(machine: Machine) -> None:
    machine.start()
    machine.succeed("true")
    machine.reboot()
    assert not machine.is_up()
    assert machine.wait_for_console_text(r"boot \d+", timeout=5) == "boot 2"
    machine.succeed("true")  # waits for the new boot's READY
    fake = FakeQemu.instances[-1]
    assert fake.monitor == ["sendkey ctrl-alt-delete"] and fake.boots == 2
    machine.crash()
    assert not machine.is_running()
    machine.succeed("true")  # a command boots it again
    assert len(FakeQemu.instances) == 2
    machine.shutdown(timeout=10)
    assert not machine.is_running()


def test_a_dead_vm_is_a_machine_error(machine: Machine) -> None:
    machine.start()
    FakeQemu.instances[-1].kill()
    with pytest.raises(MachineError, match=r"went away|exited"):
        machine.succeed("true")


def test_a_silent_backdoor_is_a_machine_error(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine.start()
    machine.connect()
    FakeQemu.instances[-1].hung = True
    monkeypatch.setattr(machine_module, "REPLY_MARGIN", 0.5)
    with pytest.raises(MachineError, match=r"no reply from the backdoor within 1s"):
        machine.execute("true", timeout=0.5)
    assert not machine.is_running()  # an infrastructure failure stops the VM


@pytest.fixture
def image_machine(
    fake_qemu: type[FakeQemu], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Machine]:
    """A machine that boots a disk image (power-cycled on guest reboots), without OVMF."""
    firmware = qemu.Firmware(tmp_path / "code.fd", tmp_path / "vars.fd")
    monkeypatch.setattr(qemu, "prepare_firmware", lambda state, *, secure_boot: firmware)
    monkeypatch.setattr(qemu, "prepare_disk", lambda image, state, size: tmp_path / "disk.raw")
    monkeypatch.setattr(machine_module, "HUNG_PANIC_QUIET", 0.5)
    m = Machine("fake", tmp_path / "state", accel="tcg", user_net=False, image=tmp_path / "i")
    yield m
    m.stop()


def test_a_hung_kernel_panic_is_reset_like_a_watchdog_would(image_machine: Machine) -> None:
    FakeQemu.panics_left = 1
    assert image_machine.succeed("echo up") == "up\n"
    assert image_machine.panic_resets == 1
    assert [q.boots for q in FakeQemu.instances] == [1, 1]  # a power cycle, not a warm reset


def test_a_kernel_panic_that_resets_the_vm_is_a_power_cycle(
    image_machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeQemu, "panic_resets", True)
    FakeQemu.panics_left = 1
    assert image_machine.succeed("echo up") == "up\n"
    assert [q.boots for q in FakeQemu.instances] == [1, 1]
    assert image_machine.panic_resets == 0  # not a hung panic: QEMU ended by itself
    assert image_machine.watchdog_resets == 0  # QMP said guest-reset, not WATCHDOG
    # The same while a console wait runs (wait_for_reboot(console=...) in the update tests).
    image_machine.crash()
    FakeQemu.panics_left = 1
    assert image_machine.wait_for_console_text(r"boot \d+", timeout=5) == "boot 1"
    assert len(FakeQemu.instances) == 4


def test_a_kernel_that_keeps_panicking_is_a_machine_error(image_machine: Machine) -> None:
    FakeQemu.panics_left = 10
    with pytest.raises(MachineError, match="did not come up") as failure:
        image_machine.connect(timeout=5)
    assert "Kernel panic" in str(failure.value)
    assert image_machine.panic_resets == machine_module.HUNG_PANIC_RESETS


def test_a_watchdog_reset_under_no_reboot_is_a_power_cycle(image_machine: Machine) -> None:
    # The guest prints no reboot message: only QMP says why QEMU ended.
    FakeQemu.watchdog_resets = 1
    assert image_machine.succeed("echo up") == "up\n"
    assert [q.boots for q in FakeQemu.instances] == [1, 1]
    assert all("-no-reboot" in q.argv for q in FakeQemu.instances)
    assert image_machine.watchdog_resets == 1


def test_a_guest_that_powers_off_is_not_restarted(image_machine: Machine) -> None:
    image_machine.start()
    image_machine.connect()
    FakeQemu.instances[-1]._exit(0)  # no SHUTDOWN guest-reset event, no reboot message
    with pytest.raises(MachineError, match="exited unexpectedly"):
        image_machine.connect()
    assert len(FakeQemu.instances) == 1


# ---- KVM that only half works ---------------------------------------------------------------


@pytest.fixture
def probed_kvm(
    fake_qemu: type[FakeQemu], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Path:
    """The probe said KVM (as the 16-byte probe did on the host of issue 14); the cache."""
    monkeypatch.delenv("SONIX_ACCEL", raising=False)
    monkeypatch.setenv("SONIX_STATE_DIR", str(tmp_path / "sonix-state"))
    monkeypatch.setattr(qemu._Fallback, "reason", None)
    monkeypatch.setattr(qemu, "_probe_kvm", lambda work, kernel: ("kvm", "probe passed"))
    monkeypatch.setattr(qemu, "KVM_SILENCE", 0.5)
    return tmp_path / "sonix-state" / "vm" / "accel"


def _accels() -> list[str]:
    return [q.argv[q.argv.index("-accel") + 1] for q in FakeQemu.instances]


@pytest.mark.parametrize("failure", ["internal", "silent", "msr"])
def test_kvm_failure_restarts_under_tcg_for_good(
    probed_kvm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, failure: str,
) -> None:
    FakeQemu.kvm_failure = failure
    boot = qemu.DirectBoot(Path("/kernel"))  # console=ttyS0: it should print at once
    first = Machine("a", tmp_path / "a", direct_boot=boot, user_net=False)
    second = Machine("b", tmp_path / "b", direct_boot=boot, user_net=False)
    try:
        assert first.succeed("echo up") == "up\n"
        assert second.succeed("echo up") == "up\n"
    finally:
        first.stop()
        second.stop()
    assert _accels() == ["kvm", "tcg", "tcg"]
    said = [line for line in capsys.readouterr().err.splitlines() if "KVM cannot run" in line]
    assert len(said) == 1 and "TCG from now on" in said[0]
    assert probed_kvm.read_text().split()[1] == "tcg"
    # A later run (a new process) starts under TCG at once.
    monkeypatch.setattr(qemu._Fallback, "reason", None)
    assert qemu.accelerator(probed_kvm.parent) == "tcg"


def test_kvm_failure_while_waiting_for_console_text(
    probed_kvm: Path, image_machine: Machine
) -> None:
    FakeQemu.kvm_failure = "internal"
    image_machine.accel = None
    assert image_machine.wait_for_console_text(r"boot \d+", timeout=10) == "boot 1"
    assert _accels() == ["kvm", "tcg"]


def test_a_quiet_kernel_is_not_taken_for_a_kvm_failure(
    probed_kvm: Path, tmp_path: Path
) -> None:
    # No console=ttyS0: silence proves nothing, so only QEMU's own report counts.
    FakeQemu.kvm_failure = "silent"
    machine = Machine("q", tmp_path / "q", user_net=False,
                      direct_boot=qemu.DirectBoot(Path("/kernel"), append="quiet"))
    try:
        with pytest.raises(MachineError, match="did not come up within 2s"):
            machine.connect(timeout=2)
    finally:
        machine.stop()
    assert _accels() == ["kvm"]


@pytest.mark.parametrize("forced", ["env", "argument"])
def test_a_chosen_kvm_fails_clearly_instead_of_falling_back(
    probed_kvm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forced: str
) -> None:
    FakeQemu.kvm_failure = "internal"
    if forced == "env":
        monkeypatch.setenv("SONIX_ACCEL", "kvm")
    machine = Machine("k", tmp_path / "k", direct_boot=qemu.DirectBoot(Path("/kernel")),
                      user_net=False, accel="kvm" if forced == "argument" else None)
    with pytest.raises(MachineError, match="KVM cannot run this guest") as failure:
        machine.connect(timeout=30)
    hint = "SONIX_ACCEL" if forced == "env" else "accel=None"
    assert "KVM internal error" in str(failure.value) and hint in str(failure.value)
    assert _accels() == ["kvm"] and not machine.is_running()
    assert not probed_kvm.exists() or probed_kvm.read_text().split()[1] == "kvm"


# ---- Driver ---------------------------------------------------------------------------------


def test_driver_networks_limits_and_cleanup(fake_qemu: type[FakeQemu], tmp_path: Path) -> None:
    boot = qemu.DirectBoot(Path("/kernel"))
    state = tmp_path / "vm-tests"
    driver = Driver(state, max_running=2)
    a = driver.machine("a", direct_boot=boot, networks=(1,), accel="tcg", user_net=False)
    b = driver.machine("b", direct_boot=boot, networks=(1, 2), accel="tcg", user_net=False)
    c = driver.machine("c", direct_boot=boot, accel="tcg", user_net=False)
    assert [n.mac for n in a.nics] == ["52:54:00:12:01:01"]
    assert [n.mac for n in b.nics] == ["52:54:00:12:01:02", "52:54:00:12:02:02"]
    assert a.nics[0].socket == b.nics[0].socket != b.nics[1].socket
    with pytest.raises(ValueError):
        driver.machine("a", direct_boot=boot)
    a.start()
    b.start()
    with pytest.raises(MachineError, match="at most 2"):
        c.start()
    a.succeed("true")
    driver.close(failed=True)
    assert (state / "a" / "qemu.log").exists()  # kept for the failing test
    assert not a.is_running() and not b.is_running()
    driver.close(failed=False)
    assert not state.exists()
