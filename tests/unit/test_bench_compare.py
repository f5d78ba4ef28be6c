"""The comparison benchmark's pure parts (sonix.bench.compare): reading systemd-analyze and
/proc/meminfo, medians and ratios, the peer's initrd split with the floor, the report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sonix import nix
from sonix.bench import compare
from sonix.bench import image as image_bench
from sonix.bench.compare import BootSample, FloorFigures, InitrdFloorFigures, SystemFigures


def test_analyze_phases_reads_every_unit_systemd_prints() -> None:
    text = (
        "Startup finished in 1.204s (firmware) + 830ms (loader) + 4.5s (kernel) + "
        "1min 2.250s (initrd) + 20.1s (userspace) = 1min 28.884s\n"
        "multi-user.target reached after 19.9s in userspace.\n"
    )
    assert compare.analyze_phases(text) == {
        "firmware": 1.204, "loader": 0.83, "kernel": 4.5, "initrd": 62.25, "userspace": 20.1,
    }
    assert compare.analyze_phases("Startup finished in 3.1s (kernel) + 9s (userspace)") == {
        "kernel": 3.1, "userspace": 9.0,
    }


def test_initramfs_time_from_the_kernel_log() -> None:
    dmesg = (
        "[    3.412000] Freeing unused kernel image memory: 2048K\n"
        "[    3.500100] Run /init as init process\n"
        "[    9.000000] EXT4-fs (vda2): mounted filesystem\n"
        "[   15.750100] systemd[1]: systemd 257.13-1~deb13u1 running in system mode\n"
    )
    assert compare.initramfs_seconds(dmesg) == 12.25
    assert (
        compare.initramfs_seconds("[ 1.0] systemd[1]: x\n[ 2.0] Run /init as init process\n")
        is None
    )
    assert compare.initramfs_seconds("[ 1.0] Run /init as init process\n") is None


def test_memory_used_is_total_minus_available() -> None:
    meminfo = "MemTotal:        1000 kB\nMemFree:          100 kB\nMemAvailable:     600 kB\n"
    assert compare.memory_used(meminfo) == 400 * 1024


def test_cpu_seconds_of_all_cpus_and_of_pid_1() -> None:
    text = (  # a booted peer, read through the backdoor
        "100\n"
        "cpu  7240 0 6794 14018 14 0 22 0 0 0\n"
        "1 (systemd) S 0 1 1 0 -1 4194560 6848 49063 112 58 1315 1520 1932 1697 20 0 1 0 73 "
        "24080384 3468 18446744073709551615\n"
    )
    assert compare.cpu_seconds(text) == (140.56, 28.35)  # idle and iowait are not busy
    odd_name = text.replace("(systemd)", "(sys temd) x)")
    assert compare.cpu_seconds(odd_name) == (140.56, 28.35)
    with pytest.raises(ValueError, match="not CLK_TCK"):
        compare.cpu_seconds("100\n")


def measure(*argv: str) -> tuple[int, float, int]:
    result = subprocess.run([sys.executable, "-I", "-S", "-c", nix.MEASURE_CHILD, *argv],
                            capture_output=True, text=True, check=True)
    status, seconds, kib = result.stdout.split()
    return int(status), float(seconds), int(kib)


def test_peak_memory_is_the_evaluators_not_the_callers() -> None:
    # The caller holds 256 MiB, as pytest or a CLI with a big report might; a child that
    # allocates 64 MiB is measured at about 64 MiB, `true` at a few.
    ballast = bytearray(256 << 20)
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])
    grow = "b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096])"
    status, _, kib = measure(sys.executable, "-c", grow)
    assert status == 0 and 64 << 10 < kib < 128 << 10
    status, _, kib = measure("true")
    assert status == 0 and kib < 64 << 10
    assert measure("false")[0] == 1
    del ballast


def boot(
    wall: float, phases: dict[str, float], memory: int = 100 << 20, complete: float | None = None
) -> BootSample:
    return BootSample(
        wall_multi_user=wall, wall_boot_complete=complete, phases=phases, memory_used=memory
    )


def figures() -> tuple[SystemFigures, SystemFigures, FloorFigures, InitrdFloorFigures]:
    sonix = SystemFigures("sonix", boots=[
        boot(30, {"kernel": 3, "initrd": 5, "userspace": 10}, complete=32),
        boot(40, {"kernel": 4, "initrd": 6, "userspace": 12}, complete=41),
        boot(35, {"kernel": 3.5, "initrd": 7, "userspace": 11}, complete=36),
    ], sizes={"image": 100 << 20, "usr": 80 << 20, "initrd": 8 << 20}, build_cold_s=30.0,
        build_warm_s=15.0, eval_s=0.1, eval_peak_rss=50 << 20)
    peer = SystemFigures(
        "peer",
        boots=[
            boot(60, {"kernel": 3, "initrd": 11, "userspace": 30}),
            boot(70, {"kernel": 4, "initrd": 13, "userspace": 40}),
            boot(50, {"kernel": 3, "initrd": 12, "userspace": 35}),
        ],
        sizes={"image": 400 << 20, "usr": 300 << 20, "initrd": 20 << 20},
        build_cold_s=120.0,
    )
    floor = FloorFigures(wall_to_init=[12, 10, 11], kernel_to_init=[3, 2.5, 3.5], initrd_bytes=1000)
    initrd_floor = InitrdFloorFigures(wall_to_init=[13, 14, 15], init_to_first_target=[1, 2, 1],
                                      init_to_sysinit=[4, 5, 6], initrd_bytes=8 << 20)
    return sonix, peer, floor, initrd_floor


def test_summary_medians_ratios_and_the_peers_initrd() -> None:
    summary = compare.summary(*figures())
    rows = summary["rows"]
    assert rows["multi-user.target, host wall clock (s)"] == {
        "sonix": 35,
        "peer": 60,
        "ratio": round(35 / 60, 3),
    }
    assert rows["boot-complete.target, host wall clock (s)"]["peer"] is None
    # The peer's measured kernel phase (15) holds initramfs-tools: kernel = the floor's own
    # kernel time (3), initrd = the rest (12).
    assert rows["kernel (systemd-analyze, s)"] == {
        "sonix": 3.5,
        "peer": 3,
        "ratio": round(3.5 / 3, 3),
    }
    assert rows["initrd (systemd-analyze, s)"] == {"sonix": 6, "peer": 12, "ratio": 0.5}
    assert rows["firmware (systemd-analyze, s)"] == {"sonix": None, "peer": None, "ratio": None}
    assert rows["image (allocated) (MiB)"] == {"sonix": 100, "peer": 400, "ratio": 0.25}
    assert rows["cold build (s)"]["ratio"] == 0.25
    assert summary["floor"]["wall_to_init_s"] == 11
    assert summary["targets"] == {
        "multi-user: sonix / peer <= 0.6": round(35 / 60, 3),
        "multi-user: sonix / floor <= 3": round(35 / 11, 3),
        "initrd: sonix / peer <= 0.5": 0.5,
    }
    assert summary["initrd_floor"] == {"wall_to_init_s": 14, "init_to_first_target_s": 1,
                                       "init_to_sysinit_s": 5, "initrd_bytes": 8 << 20}
    # Budgets: 0.6 x 60, 3 x 11, 0.5 x 12; before the kernel: wall less the three phases
    # (medians of 30-18, 40-22, 35-21.5 for sonix; 60-44, 70-57, 50-50 for the peer).
    assert summary["budgets"] == {"multi_user_s": 36, "multi_user_floor_s": 33, "initrd_s": 6,
                                  "sonix_before_kernel_s": 13.5, "peer_before_kernel_s": 13}


def test_markdown_report() -> None:
    sonix, peer, floor, initrd_floor = figures()
    sonix.chart, peer.chart = "bootchart-sonix.png", "bootchart-peer.png"
    report: dict[str, Any] = {
        "date": "2026-11-25", "host": "2 cores", "accel": "tcg", "runs": 3, "warmup": True,
        "systems": {"sonix": {"chart": sonix.chart}, "peer": {"chart": peer.chart}},
        "summary": compare.summary(sonix, peer, floor, initrd_floor),
    }
    text = compare.markdown(report)
    assert "| multi-user.target, host wall clock (s) | 35 | 60 | 0.583 |" in text
    assert "| boot-complete.target, host wall clock (s) | 36 | — | — |" in text
    assert "| multi-user: sonix / peer <= 0.6 | 0.583 | yes |" in text
    assert "| multi-user: sonix / floor <= 3 | 3.182 | no |" in text
    assert "[bootchart-peer.png](benchmarks/bootchart-peer.png)" in text
    assert ("/init runs 14 s after QEMU's start (the floor's trivial initrd: 11 s; the "
            "difference is unpacking the initrd), PID 1 reaches its first target 1 s and "
            "sysinit.target 5 s after /init.") in text
    assert "an initrd phase within 6 s (0.5 x the peer)" in text
    assert "about 13.5 s before sonix's kernel starts and 13 s before the peer's" in text


class _Machine:
    """A booted machine as `sonix bench image` sees it: systemd-analyze prints a ms phase."""

    def start(self) -> None:
        pass

    def wait_for_unit(self, unit: str, timeout: float) -> None:
        pass

    def succeed(self, command: str, timeout: float) -> str:
        assert command.startswith("systemd-analyze time")
        return ("Startup finished in 1.204s (firmware) + 830ms (loader) + 4.5s (kernel) + "
                "1min 2.250s (initrd) + 20.1s (userspace) = 1min 28.884s\n")

    def shutdown(self) -> None:
        pass


class _Driver:
    def __init__(self, state: Path) -> None:
        pass

    def __enter__(self) -> _Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def machine(self, name: str, **kwargs: object) -> _Machine:
        return _Machine()


def test_image_bench_reads_the_phases_as_compare_does(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    # One parser for both benchmarks: "830ms (loader)" is not dropped.
    monkeypatch.setattr(image_bench, "Driver", _Driver)
    phases = image_bench.boot_phases(tmp_path / "disk.raw", tmp_path / "vm")["systemd_analyze"]
    assert phases == {
        "firmware": 1.204, "loader": 0.83, "kernel": 4.5, "initrd": 62.25, "userspace": 20.1,
    }
