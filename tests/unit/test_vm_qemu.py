"""The QEMU layer: exact argv for each kind of VM, the KVM probe and its cache, OVMF and disk
errors that say what to do, the boot report parser, the hub and the chardev channel."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sonix import process, ui
from sonix.vm import check, qemu
from sonix.vm.console import Channel
from sonix.vm.network import Hub

STORE = Path("/nix/store/x-selftest")


def test_direct_boot_argv() -> None:
    spec = qemu.VmSpec(
        name="alpha", accel="tcg", memory_mib=512, cpus=1,
        direct_boot=qemu.DirectBoot(STORE / "kernel", STORE / "initrd", "console=ttyS0 quiet"),
        serial=Path("/run/s/serial"), serial_log=Path("/state/serial.log"),
        backdoor=Path("/run/s/backdoor"), qmp=Path("/run/s/qmp"), user_net=False,
        nics=(qemu.Nic(Path("/run/n/vlan1"), qemu.mac_address(1, 2)),),
    )
    assert qemu.qemu_argv(spec) == [
        "qemu-system-x86_64", "-name", "alpha", "-accel", "tcg", "-machine", "q35",
        "-cpu", "qemu64", "-smp", "1", "-m", "512", "-nodefaults", "-display", "none",
        "-device", "virtio-rng-pci",
        "-device", "i6300esb", "-action", "watchdog=reset",
        "-kernel", "/nix/store/x-selftest/kernel", "-initrd", "/nix/store/x-selftest/initrd",
        "-append", "console=ttyS0 quiet",
        "-chardev",
        "socket,id=serial0,path=/run/s/serial,server=off,logfile=/state/serial.log,logappend=on",
        "-serial", "chardev:serial0",
        "-chardev", "socket,id=backdoor,path=/run/s/backdoor,server=off",
        "-device", "virtio-serial-pci",
        "-device", "virtserialport,chardev=backdoor,name=org.sonix.backdoor",
        "-qmp", "unix:/run/s/qmp,server=on,wait=off",
        "-netdev", "stream,id=vlan1,server=off,addr.type=unix,addr.path=/run/n/vlan1",
        "-device", "virtio-net-pci,netdev=vlan1,mac=52:54:00:12:01:02",
    ]


def test_image_argv_with_firmware_forwards_and_credentials() -> None:
    spec = qemu.VmSpec(
        name="web,1", accel="kvm",
        firmware=qemu.Firmware(Path("/ovmf/CODE.fd"), Path("/state/OVMF_VARS.fd")),
        disk=Path("/state/disk.raw"), serial="stdio",
        port_forwards=(qemu.PortForward(2222, 22),),
        guest_forwards=(qemu.GuestForward("10.0.2.100", 80, 8080),),
        credentials=(("sonix.report", "1"), ("a", "x,y")), no_reboot=True,
    )
    argv = qemu.qemu_argv(spec)
    assert argv[:13] == [
        "qemu-system-x86_64", "-name", "web,,1", "-accel", "kvm", "-machine", "q35",
        "-cpu", "host", "-smp", "2", "-m", "2048",
    ]
    joined = " ".join(argv)
    assert "-drive if=pflash,format=raw,unit=0,readonly=on,file=/ovmf/CODE.fd" in joined
    assert "-drive if=pflash,format=raw,unit=1,file=/state/OVMF_VARS.fd" in joined
    assert "-drive if=none,id=disk0,format=raw,file=/state/disk.raw" in joined
    assert "-chardev stdio,id=serial0,mux=on,signal=off -serial chardev:serial0" in joined
    assert "-mon chardev=serial0,mode=readline" in joined
    assert (
        "-netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,"
        f"guestfwd=tcp:10.0.2.100:80-cmd:{sys.executable} -m sonix.vm.relay 8080 "
        "-device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56"
    ) in joined
    assert "-smbios type=11,value=io.systemd.credential:sonix.report=1" in joined
    assert "-smbios type=11,value=io.systemd.credential:a=x,,y" in joined
    assert argv[-1] == "-no-reboot"
    assert "-kernel" not in argv and "-qmp" not in argv
    # The watchdog resets a hung guest; under -no-reboot that ends QEMU (the driver restarts it).
    assert "-device i6300esb -action watchdog=reset" in joined
    assert "i6300esb" not in qemu.qemu_argv(qemu.VmSpec(name="x", watchdog=False))
    twice = qemu.qemu_argv(qemu.VmSpec(name="x", extra_args=("-device", "i6300esb")))
    assert twice.count("i6300esb") == 1


def test_user_network_range_for_the_metadata_address() -> None:
    spec = qemu.VmSpec(
        name="x", user_network="169.254.169.0/24", user_net_mac="52:54:00:aa:bb:cc",
        guest_forwards=(qemu.GuestForward("169.254.169.254", 80, 8080),),
    )
    joined = " ".join(qemu.qemu_argv(spec))
    assert ("-netdev user,id=net0,net=169.254.169.0/24,restrict=on,"
            "guestfwd=tcp:169.254.169.254:80") in joined
    assert "-device virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:cc" in joined


def test_unknown_accelerator_is_refused() -> None:
    with pytest.raises(ValueError):
        qemu.qemu_argv(qemu.VmSpec(name="x", accel="hvf"))


# ---- KVM probe ------------------------------------------------------------------------------


# A fake qemu-system-x86_64 on PATH: a real process that behaves as QEMU does on a host of
# each kind, chosen by FAKE_OVMF / FAKE_KERNEL (which guest it is: whether -kernel is given).
# It logs its argv, writes its "guest's" serial output where -serial file: says, and stays
# alive (exec sleep) as QEMU does after a KVM internal error.
FAKE_QEMU = r"""#!/bin/bash
echo "$*" >> "$FAKE_CALLS"
serial=; kernel=
for a in "$@"; do
  case "$a" in file:*) serial=${a#file:} ;; -kernel) kernel=1 ;; esac
done
mode=${FAKE_OVMF:-ok}
[ -n "$kernel" ] && mode=${FAKE_KERNEL:-ok}
case "$mode" in
  ok) if [ -n "$kernel" ]; then
        printf '[    0.000000] Linux version 6.12.117+deb13-cloud-amd64\r\n' > "$serial"
      else printf '\033[2J\033[01;01H' > "$serial"; fi ;;
  internal) printf 'KVM internal error. Suberror: 1\nextra data[0]: 0x1\nemulation failure\n' >&2 ;;
  msr) echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2; exit 134 ;;
  exit) exit 0 ;;
  other) printf 'Decompressing Linux... ' > "$serial" ;;
  silent) ;;
esac
exec sleep 30
"""


@pytest.fixture
def fake_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """/dev/kvm usable, OVMF files, the fake QEMU first on PATH; returns the calls log."""
    monkeypatch.delenv("SONIX_ACCEL", raising=False)
    monkeypatch.setattr(qemu._Fallback, "reason", None)
    monkeypatch.setattr(os, "access", lambda path, mode: True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / qemu.QEMU).write_text(FAKE_QEMU)
    (bin_dir / qemu.QEMU).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    calls = tmp_path / "calls"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    ovmf = tmp_path / "ovmf"
    ovmf.mkdir()
    (ovmf / "CODE.fd").write_bytes(b"code")
    (ovmf / "VARS.fd").write_bytes(b"vars")
    monkeypatch.setattr(qemu, "find_ovmf", lambda: (ovmf / "CODE.fd", ovmf / "VARS.fd"))
    monkeypatch.setattr(qemu, "PROBE_TIMEOUT", 1.0)
    monkeypatch.setattr(qemu, "host_kernel", lambda: None)  # this host's /boot plays no part
    return calls


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


# (OVMF's behaviour, the kernel's behaviour, the answer, what the message names). The first
# rows are the host of issue 14: the 16-byte probe passed, real guests die.
PROBE_CASES = [
    ("ok", "ok", "kvm", ""),
    ("internal", "ok", "tcg", "KVM internal error. Suberror: 1"),
    ("ok", "internal", "tcg", "Linux (vmlinuz-6.12): KVM internal error"),
    ("ok", "silent", "tcg", "no output on the serial console within 1s"),
    ("ok", "other", "tcg", "Linux (vmlinuz-6.12): no output"),  # no "Linux version"
    ("ok", "exit", "tcg", "QEMU exited with status 0"),
    ("silent", "ok", "tcg", "OVMF: no output on the serial console within 1s"),
    ("msr", "ok", "tcg", "failed to set MSR 0x10a"),
    ("exit", "ok", "tcg", "OVMF: QEMU exited with status 0: no output"),
]


@pytest.mark.parametrize(("ovmf", "kernel", "answer", "why"), PROBE_CASES)
def test_probe_boots_ovmf_and_a_kernel(
    fake_host: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    ovmf: str, kernel: str, answer: str, why: str,
) -> None:
    monkeypatch.setenv("FAKE_OVMF", ovmf)
    monkeypatch.setenv("FAKE_KERNEL", kernel)
    vmlinuz = tmp_path / "vmlinuz-6.12"
    vmlinuz.write_bytes(b"bzImage")
    cache = tmp_path / "cache"
    started = time.monotonic()
    assert qemu.accelerator(cache, vmlinuz) == answer
    assert time.monotonic() - started < 5  # bounded: each guest gets PROBE_TIMEOUT at most
    calls = _calls(fake_host)
    assert calls[0].startswith("-accel kvm -cpu host -machine q35")
    assert "if=pflash" in calls[0] and "-kernel" not in calls[0]
    if ovmf in ("ok",):
        assert len(calls) == 2 and f"-kernel {vmlinuz} -append console=ttyS0" in calls[1]
    else:
        assert len(calls) == 1  # OVMF failed: the kernel is not tried
    cached = (cache / "accel").read_text()
    assert cached.split()[1] == answer and why in cached
    # Cached: no second probe.
    assert qemu.accelerator(cache, vmlinuz) == answer
    assert len(_calls(fake_host)) == len(calls)


def test_probe_without_a_kernel_boots_ovmf_only(fake_host: Path, tmp_path: Path) -> None:
    assert qemu.accelerator(tmp_path / "cache") == "kvm"
    assert len(_calls(fake_host)) == 1


def test_probe_without_ovmf_boots_the_kernel_only(
    fake_host: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_ovmf() -> tuple[Path, Path]:
        raise ui.die("UEFI firmware not found", hint=qemu.OVMF_HINT)

    monkeypatch.setattr(qemu, "find_ovmf", no_ovmf)
    assert qemu.accelerator(tmp_path / "a") == "tcg"  # nothing to boot: no answer but TCG
    assert _calls(fake_host) == []
    vmlinuz = tmp_path / "vmlinuz"
    vmlinuz.write_bytes(b"bzImage")
    assert qemu.accelerator(tmp_path / "b", vmlinuz) == "kvm"
    (call,) = _calls(fake_host)
    assert "-kernel" in call and "pflash" not in call


def test_probe_uses_the_hosts_newest_kernel(tmp_path: Path) -> None:
    assert qemu.host_kernel(tmp_path) is None
    for name, mtime in (("vmlinuz-6.1", 100), ("vmlinuz-6.12", 200), ("config-6.12", 300)):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (mtime, mtime))
    assert qemu.host_kernel(tmp_path) == tmp_path / "vmlinuz-6.12"
    toplevel = tmp_path / "system"
    (toplevel / "usr" / "boot").mkdir(parents=True)
    assert qemu.image_kernel(toplevel) is None
    (toplevel / "usr" / "boot" / "vmlinuz-6.12.117").write_bytes(b"x")
    assert qemu.image_kernel(toplevel) == toplevel / "usr" / "boot" / "vmlinuz-6.12.117"


def test_an_answer_of_the_old_probe_is_not_trusted(
    fake_host: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("FAKE_OVMF", "internal")
    monkeypatch.setattr(qemu, "PROBE_VERSION", "1")
    (cache / "accel").write_text(f"{qemu._cache_key()} kvm\n")  # the 16-byte probe passed
    monkeypatch.setattr(qemu, "PROBE_VERSION", "2")
    assert qemu.accelerator(cache) == "tcg"
    for damaged in ("", "kvm", "x y z", "\0\0"):
        (cache / "accel").write_text(damaged)
        assert qemu.accelerator(cache) == "tcg"  # probed again, no error


def test_fallback_is_for_good_and_said_once(
    fake_host: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = tmp_path / "cache"
    assert qemu.accelerator(cache) == "kvm"
    qemu.fall_back_to_tcg(cache, "QEMU said 'KVM internal error. Suberror: 1'")
    qemu.fall_back_to_tcg(cache, "the guest printed nothing")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "KVM internal error" in lines[0] and "TCG" in lines[0]
    assert qemu.accelerator(cache) == "tcg"
    # A new process: the in-process memory is gone, the cache holds it.
    monkeypatch.setattr(qemu._Fallback, "reason", None)
    assert qemu.accelerator(cache) == "tcg"
    assert len(_calls(fake_host)) == 1
    assert "fallback: QEMU said" in (cache / "accel").read_text()
    # SONIX_ACCEL still overrides the remembered fallback.
    monkeypatch.setenv("SONIX_ACCEL", "kvm")
    assert qemu.accelerator(cache) == "kvm" and not qemu.may_fall_back()


def test_fallback_holds_when_the_cache_cannot_be_written(
    fake_host: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    qemu.fall_back_to_tcg(blocker / "cache", "why")
    assert "could not remember it" in capsys.readouterr().err
    assert qemu.accelerator(blocker / "cache") == "tcg"


# (accel, QEMU's output, serial characters, silence bound, seconds since start) -> reason
WATCH_CASES = [
    ("kvm", "", 0, 30.0, 1.0, None),
    ("kvm", "KVM internal error. Suberror: 1\nemulation failure\n", 0, 30.0, 0.0,
     "QEMU said 'KVM internal error. Suberror: 1'"),
    ("kvm", "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n", 0, 30.0, 0.0,
     "failed to set MSR"),
    ("kvm", "error: kvm run failed Bad address\n", 5, 30.0, 0.0, "kvm run failed"),
    ("kvm", "", 0, 30.0, 31.0, "printed nothing on its serial console for 31s"),
    ("kvm", "", 1, 30.0, 300.0, None),  # it printed: later silence is an idle system
    ("kvm", "", 0, None, 300.0, None),  # no console=ttyS0: silence proves nothing
    ("kvm", "warning: host doesn't support requested feature\n", 0, 30.0, 2.0, None),
    ("tcg", "KVM internal error\n", 0, 30.0, 300.0, None),  # TCG is not watched
]


@pytest.mark.parametrize(("accel", "output", "serial", "silence", "elapsed", "reason"),
                         WATCH_CASES)
def test_kvm_watch(
    monkeypatch: pytest.MonkeyPatch, accel: str, output: str, serial: int,
    silence: float | None, elapsed: float, reason: str | None,
) -> None:
    watch = qemu.KvmWatch(accel, lambda: output, lambda: serial, silence)
    monkeypatch.setattr(time, "monotonic", lambda: watch.started + elapsed)
    found = watch.failure()
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_silence_bound_only_for_guests_that_print() -> None:
    image = qemu.VmSpec(name="x", firmware=qemu.Firmware(Path("/c"), Path("/v")))
    assert qemu.silence_bound(image) == qemu.KVM_SILENCE
    boot = qemu.DirectBoot(Path("/k"), append="panic=0 console=ttyS0,115200")
    assert qemu.silence_bound(qemu.VmSpec(name="x", direct_boot=boot)) == qemu.KVM_SILENCE
    for append in ("quiet", "console=tty0", "console=ttyS0 quiet", "console=ttyS0 loglevel=0",
                   "loglevel=3 console=ttyS0,115200", ""):
        boot = qemu.DirectBoot(Path("/k"), append=append)
        assert qemu.silence_bound(qemu.VmSpec(name="x", direct_boot=boot)) is None, append
    loud = qemu.DirectBoot(Path("/k"), append="console=ttyS0 loglevel=7")
    assert qemu.silence_bound(qemu.VmSpec(name="x", direct_boot=loud)) == qemu.KVM_SILENCE


def test_file_tail_reads_what_was_appended(tmp_path: Path) -> None:
    log = tmp_path / "qemu.log"
    assert qemu.file_tail(log)() == ""
    log.write_text("an older run: KVM internal error\n")
    tail = qemu.file_tail(log)
    assert tail() == ""
    with open(log, "a") as file:
        file.write("this run\n")
    assert tail() == "this run\n"


def test_accelerator_without_dev_kvm_does_not_probe(
    fake_host: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert qemu.accelerator(tmp_path) == "tcg"
    assert _calls(fake_host) == []


def test_accelerator_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SONIX_ACCEL", "kvm")
    assert qemu.accelerator(tmp_path) == "kvm"
    monkeypatch.setenv("SONIX_ACCEL", "xen")
    with pytest.raises(ui.SonixError, match="not an accelerator"):
        qemu.accelerator(tmp_path)


def test_missing_qemu_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ui.SonixError) as error:
        qemu.require_qemu()
    assert "qemu-system-x86" in str(error.value.hint)


# ---- firmware and disk ----------------------------------------------------------------------


def test_missing_ovmf_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(ui.SonixError) as error:
        qemu.find_ovmf(tmp_path)
    assert "OVMF_CODE_4M.fd" in error.value.message
    assert "ovmf" in str(error.value.hint)


def test_firmware_vars_are_copied_once(tmp_path: Path) -> None:
    ovmf = tmp_path / "ovmf"
    ovmf.mkdir()
    (ovmf / "OVMF_CODE_4M.fd").write_bytes(b"code")
    (ovmf / "OVMF_VARS_4M.fd").write_bytes(b"vars")
    state = tmp_path / "state"
    state.mkdir()
    firmware = qemu.prepare_firmware(state, ovmf)
    assert firmware.vars.read_bytes() == b"vars"
    firmware.vars.write_bytes(b"boot entries")
    assert qemu.prepare_firmware(state, ovmf).vars.read_bytes() == b"boot entries"


@pytest.fixture
def fake_cp(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append([str(a) for a in argv])
        Path(argv[-1]).write_bytes(Path(argv[-2]).read_bytes())
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(process, "run", run)
    return calls


def test_disk_is_a_sparse_enlarged_copy_kept_until_the_image_changes(
    fake_cp: list[list[str]], tmp_path: Path
) -> None:
    image = tmp_path / "image.raw"
    image.write_bytes(b"\1" * 4096)
    state = tmp_path / "state"
    state.mkdir()
    disk = qemu.prepare_disk(image, state, 1 << 20)
    assert fake_cp == [
        ["cp", "--sparse=always", "--reflink=auto", str(image), str(state / "disk.tmp")]
    ]
    assert disk.stat().st_size == 1 << 20
    disk.write_bytes(b"guest data".ljust(1 << 20, b"\0"))
    # Same image: the disk (with what the guest wrote) is kept; a larger size grows it.
    assert qemu.prepare_disk(image, state, 2 << 20) == disk
    assert disk.read_bytes().startswith(b"guest data")
    assert disk.stat().st_size == 2 << 20
    assert len(fake_cp) == 1
    # A new image: a fresh copy.
    image.write_bytes(b"\2" * 8192)
    os.utime(image, ns=(1, 1))
    qemu.prepare_disk(image, state, 1 << 20)
    assert len(fake_cp) == 2
    assert disk.read_bytes().startswith(b"\2")


def test_disk_errors(fake_cp: list[list[str]], tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / "image.raw"
    image.write_bytes(b"\1" * 8192)
    with pytest.raises(ui.SonixError, match="smaller than the image"):
        qemu.prepare_disk(image, tmp_path, 4096)
    with pytest.raises(ui.SonixError, match="does not exist"):
        qemu.prepare_disk(tmp_path / "missing.raw", tmp_path, 1 << 20)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 1024))
    with pytest.raises(ui.SonixError) as error:
        qemu.prepare_disk(image, tmp_path, 1 << 20)
    assert "not enough disk space" in error.value.message
    assert "--state-dir" in str(error.value.hint)
    assert fake_cp == []


@pytest.mark.parametrize(
    ("text", "size"),
    [("4G", 4 << 30), ("512M", 512 << 20), ("2GiB", 2 << 30), ("1048576", 1 << 20)],
)
def test_parse_size(text: str, size: int) -> None:
    assert qemu.parse_size(text) == size


def test_parse_size_error() -> None:
    with pytest.raises(ui.SonixError, match="not a size"):
        qemu.parse_size("lots")


# ---- boot report ----------------------------------------------------------------------------

REPORT = (
    "[  OK  ] Reached target multi-user.target\r\n"
    "SONIX-BOOT-REPORT-BEGIN\r\n"
    "## systemd-analyze time\r\n"
    "Startup finished in 4.3s (kernel) + 12.9s (initrd) + 35.7s (userspace) = 52.9s\r\n"
    "## failed units\r\n"
    "SONIX-BOOT-REPORT-END state=running failed=0 boot-complete=active\r\n"
)


def test_parse_report_healthy() -> None:
    report = check.parse_report(REPORT)
    assert report is not None
    assert report.healthy
    assert report.body.splitlines()[1].startswith("Startup finished in 4.3s (kernel)")
    assert "\r" not in report.body


@pytest.mark.parametrize(
    "end",
    [
        "state=degraded failed=1 boot-complete=active",
        "state=running failed=0 boot-complete=failed",
        "state=starting failed=0 boot-complete=active",
    ],
)
def test_parse_report_unhealthy(end: str) -> None:
    text = REPORT.replace("state=running failed=0 boot-complete=active", end)
    report = check.parse_report(text)
    assert report is not None and not report.healthy


def test_parse_report_incomplete() -> None:
    assert check.parse_report(REPORT.split("SONIX-BOOT-REPORT-END")[0]) is None


def test_check_spec_adds_the_credential_and_no_reboot() -> None:
    spec = qemu.VmSpec(name="m", credentials=(("x", "1"),))
    checked = check.check_spec(spec, Path("/run/c/serial"))
    argv = qemu.qemu_argv(checked)
    assert "-no-reboot" in argv
    assert "type=11,value=io.systemd.credential:sonix.report=1" in argv
    assert "type=11,value=io.systemd.credential:x=1" in argv
    assert "socket,id=serial0,path=/run/c/serial,server=off" in argv


# ---- hub and channel (real unix sockets, no QEMU) -------------------------------------------


def _frame(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


def test_hub_repeats_frames_to_the_other_ports(tmp_path: Path) -> None:
    hub = Hub(tmp_path / "vlan1").start()
    try:
        ports = []
        for _ in range(3):
            port = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            port.connect(str(hub.path))
            port.settimeout(5)
            ports.append(port)
        deadline = time.monotonic() + 5
        while len(hub._clients) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        ports[0].sendall(_frame(b"hello") + _frame(b"x" * 1500))
        for other in ports[1:]:
            assert other.recv(4 + 5, socket.MSG_WAITALL) == _frame(b"hello")
            assert other.recv(4 + 1500, socket.MSG_WAITALL) == _frame(b"x" * 1500)
        ports[0].settimeout(0.2)
        with pytest.raises(TimeoutError):
            ports[0].recv(1)  # the sender does not get its own frames
    finally:
        hub.close()
    assert not hub.path.exists()


def test_channel_waits_and_reads_lines(tmp_path: Path) -> None:
    channel = Channel(tmp_path / "serial")
    channel.listen()
    try:
        qemu_side = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        qemu_side.connect(str(channel.path))
        assert channel.wait_connected(5)
        assert channel.wait_for("ready", 0.1) is None
        qemu_side.sendall("boot…\r\nsystem ready\r\nline two\n".encode())
        found = channel.wait_for(r"system (\w+)", 5)
        assert found is not None and found.group(1) == "ready"
        # A match at the end of the text waits until the output is quiet (it might grow).
        qemu_side.sendall(b"MARKER-4")
        assert channel.wait_for(r"MARKER-4", 5) is not None
        threading.Timer(0.1, lambda: qemu_side.sendall(b"2 done\r\n")).start()
        found = channel.wait_for(r"MARKER-\d+", 5, settle=1.0)
        assert found is not None and found.group(0) == "MARKER-42"
        assert channel.read_line(5) == "boot…"
        assert channel.read_line(5) == "system ready"
        assert channel.read_line(5) == "line two"
        assert channel.read_line(5) == "MARKER-42 done"
        assert channel.read_line(0.1) is None
        channel.send(b"to guest")
        assert qemu_side.recv(8) == b"to guest"
        qemu_side.close()
    finally:
        channel.close()
