"""`sonix bench compare`: sonix against the Debian peer and the kernel-only floor, in one run.

Three systems from the same locked Debian 13 packages, booted on this machine one after the
other under the same accelerator:

- **sonix**: examples/minimal.nix with the test backdoor (the driver's root shell);
- **peer**: the same packages installed the way a Debian user would (sonix.bench.peer);
- **floor**: the same kernel straight into a trivial init (sonix.bench.floor).

Per system: `runs` boots after one first boot that is not counted (sonix partitions its disk
then), each a power cycle of the same disk. A boot is timed on the host from QEMU's start to
multi-user.target (and, for sonix, boot-complete.target: the peer has no boot counting), and
in the guest by `systemd-analyze time`. boot-complete.target is only reached on a boot that
systemd-boot counts (a release's first boots, until systemd-bless-boot marks it good), so
before each sonix power cycle the bench gives the booted UKI a counter again (`+3`), as an
update does: every measured sonix boot is then the first boot of a release. Memory used
(MemTotal - MemAvailable) is read when the boot has finished (`systemctl is-system-running
--wait`). The last boot of each gives a boot chart (`systemd-analyze plot`, rendered to PNG
with rsvg-convert). Builds, sizes and evaluation are measured once per run. Figures are
medians; ratios are sonix / peer.

The peer's initrd (initramfs-tools) runs no systemd, so systemd-analyze counts it in the
"kernel" phase: the kernel log splits it off (from "Run /init as init process" to the root's
systemd's first message). Nor does the peer's systemd see the boot loader's EFI timestamps
(efivarfs is a module, loaded later), so it has no firmware and loader phases.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sonix import build, nix, paths, process, ui
from sonix.bench import floor, peer
from sonix.testing import Driver, Machine
from sonix.vm import qemu


def register(workloads: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = workloads.add_parser(
        "compare",
        help="measure sonix against a Debian installation of the same packages",
        description="Builds and boots, in one run on this machine, the minimal sonix server, "
        "a peer made from the same locked Debian 13 packages the way a Debian user installs "
        "them (dpkg/apt with maintainer scripts, initramfs-tools, ext4, systemd-boot) and the "
        "same kernel booting straight into a trivial init. Writes medians and sonix/peer "
        "ratios to OUT/benchmarks.md, the raw figures to OUT/benchmarks/results.json and a "
        "boot chart per system to OUT/benchmarks/bootchart-*.png.",
    )
    parser.add_argument("--runs", type=int, default=5,
                        help="measured boots per system, after one that is not counted (5)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: one boot each (the first, uncounted one is "
                        "skipped), the peer from the cache")
    parser.add_argument("--out", type=Path, default=paths.source_root() / "docs",
                        help="where benchmarks.md and benchmarks/ go (default: docs/)")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep builds and VM disks here (default: a temporary directory)")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    runs = 1 if args.quick else args.runs
    report = run(args.out, runs=runs, cold_peer=not args.quick, warmup=not args.quick,
                 work=args.work)
    for name, value in report["summary"]["targets"].items():
        ui.info(f"{name}: {value}")
    print(args.out / "benchmarks.md")
    return 0

T = TypeVar("T")
MINIMAL = paths.source_root() / "examples/minimal.nix"
BACKDOOR = paths.source_root() / "modules/testing/backdoor.nix"
PHASES = ("firmware", "loader", "kernel", "initrd", "userspace")
BOOT_TIMEOUT = 900.0
MEMORY_MIB = 1536  # the same for sonix and the peer
DISK_BYTES = 4 << 30


# ---- parsing -----------------------------------------------------------------------------


def analyze_phases(text: str) -> dict[str, float]:
    """The phases of `systemd-analyze time` ("1min 2.5s (kernel)", "830ms (loader)") in s."""
    phases = {}
    pattern = r"(?:(\d+)min )?(?:([\d.]+)s|([\d.]+)ms) \((" + "|".join(PHASES) + r")\)"
    for minutes, seconds, millis, name in re.findall(pattern, text):
        value = 60 * float(minutes or 0) + (float(seconds) if seconds else float(millis) / 1000)
        phases[name] = round(value, 3)
    return phases


def initramfs_seconds(dmesg: str) -> float | None:
    """The time an initrd without systemd (initramfs-tools) ran, from the kernel log: from
    the kernel's "Run /init" to the root's systemd announcing itself. None when the initrd
    runs systemd (then systemd-analyze has an initrd phase of its own)."""
    start = re.search(r"^\[\s*([\d.]+)\] Run /init as init process", dmesg, re.M)
    end = re.search(r"^\[\s*([\d.]+)\] systemd\[1\]: ", dmesg, re.M)
    if start is None or end is None or end.start() < start.start():
        return None
    return round(float(end[1]) - float(start[1]), 3)


def memory_used(meminfo: str) -> int:
    """MemTotal - MemAvailable of /proc/meminfo, in bytes."""
    fields = {k: int(v.split()[0]) * 1024 for k, v in
              (line.split(":", 1) for line in meminfo.splitlines() if ":" in line)}
    return fields["MemTotal"] - fields["MemAvailable"]


# `cat` of both in one command: the figures of one moment, before anything else is run.
CPU_ACCOUNTING = "getconf CLK_TCK; head -n 1 /proc/stat; cat /proc/1/stat"


def cpu_seconds(text: str) -> tuple[float, float]:
    """(all CPUs busy, PID 1 alone) in CPU seconds since the kernel started, from the output
    of CPU_ACCOUNTING. Busy is /proc/stat's user, nice, system, irq and softirq (not idle,
    iowait or steal); PID 1's is its utime + stime (the initrd's systemd and the root's are
    one process). Under TCG, where every boot is CPU-bound, this is the boot's work, and it
    varies less from boot to boot than the wall clock."""
    lines = text.splitlines()
    if len(lines) < 3 or not lines[1].startswith("cpu "):
        raise ValueError(f"not CLK_TCK, /proc/stat and /proc/1/stat: {text[:200]!r}")
    ticks = int(lines[0])
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in lines[1].split()[1:8])
    # /proc/1/stat: "1 (systemd) S 0 ..."; the name may hold spaces, so count after ")".
    after_name = lines[2].rsplit(")", 1)[1].split()
    utime, stime = int(after_name[11]), int(after_name[12])
    busy = user + nice + system + irq + softirq
    return round(busy / ticks, 2), round((utime + stime) / ticks, 2)


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


# ---- measurements ------------------------------------------------------------------------


@dataclass
class BootSample:
    """One boot: host wall clock from QEMU's start, guest phases, memory after boot."""

    wall_multi_user: float
    wall_boot_complete: float | None
    phases: dict[str, float]
    memory_used: int
    cpu_busy_s: float | None = None  # CPU time of all CPUs when the boot has settled
    pid1_cpu_s: float | None = None  # of it, PID 1's own


@dataclass
class SystemFigures:
    name: str
    first_boot: BootSample | None = None
    boots: list[BootSample] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    build_cold_s: float | None = None
    build_warm_s: float | None = None
    eval_s: float | None = None
    eval_peak_rss: int | None = None
    chart: str | None = None
    blame: str = ""  # `systemd-analyze blame` and `critical-chain` of the last boot

    def median_of(self, pick: Callable[[BootSample], float | None]) -> float | None:
        return median([pick(b) for b in self.boots])


@dataclass
class FloorFigures:
    wall_to_init: list[float] = field(default_factory=list)  # QEMU start -> marker (host)
    kernel_to_init: list[float] = field(default_factory=list)  # kernel's own uptime at /init
    initrd_bytes: int = 0


@dataclass
class InitrdFloorFigures:
    """sonix's own initrd booted by the floor's kernel with no disk, up to sysinit.target: the
    least a systemd stage 1 costs here, whatever the initrd then does (issue 8's initrd
    target is measured against it). Times on the host clock, from the console."""

    wall_to_init: list[float] = field(default_factory=list)  # QEMU start -> /init runs
    init_to_first_target: list[float] = field(default_factory=list)  # /init -> PID 1's first
    init_to_sysinit: list[float] = field(default_factory=list)  # /init -> sysinit.target
    initrd_bytes: int = 0


def timed(step: Callable[[], T]) -> tuple[float, T]:
    start = time.monotonic()
    result = step()
    return time.monotonic() - start, result


def eval_figures(config: Path) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of evaluating `config` down to its system derivation."""
    root, configuration = paths.source_root(), build.nix_path(config)
    expr = (
        f"(import {root}/default.nix {{ configuration = {configuration}; }})"
        ".config.system.build.toplevel.drvPath"
    )
    measured = nix.eval_measured(["--expr", expr], what=f"evaluating {config}")
    return measured.seconds, measured.peak_rss


# Give the booted UKI on the ESP a boot counter again (the next boot is counted, so it reaches
# boot-complete.target as the first boot of a new release does).
REARM_BOOT_COUNTER = (
    "cd /boot/EFI/Linux && for f in *.efi; do case $f in *+*) ;;"
    ' *) mv "$f" "${f%.efi}+3.efi" ;; esac; done && sync'
)


def boot_once(machine: Machine, *, boot_complete: bool) -> BootSample:
    """Start the (stopped) machine, measure one boot, leave it running."""
    start = time.monotonic()
    machine.start()
    machine.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    wall_multi_user = time.monotonic() - start
    wall_complete = None
    if boot_complete:
        machine.wait_for_unit("boot-complete.target", timeout=BOOT_TIMEOUT)
        wall_complete = time.monotonic() - start
    # Finished: no jobs left (memory is read on a settled system).
    machine.execute("systemctl is-system-running --wait", timeout=BOOT_TIMEOUT)
    cpu_busy, pid1_cpu = cpu_seconds(machine.succeed(CPU_ACCOUNTING))
    analyze = machine.succeed("systemd-analyze time --no-pager", timeout=300)
    phases = analyze_phases(analyze)
    if "initrd" not in phases and "kernel" in phases:
        # initramfs-tools: systemd-analyze counts it as kernel time; the kernel log splits it.
        initrd = initramfs_seconds(machine.succeed("dmesg"))
        if initrd is not None:
            phases["initrd"] = initrd
            phases["kernel"] = round(phases["kernel"] - initrd, 3)
    memory = memory_used(machine.succeed("cat /proc/meminfo"))
    if boot_complete:
        machine.succeed(REARM_BOOT_COUNTER, timeout=300)
    return BootSample(
        wall_multi_user=round(wall_multi_user, 3),
        wall_boot_complete=round(wall_complete, 3) if wall_complete is not None else None,
        phases=phases,
        memory_used=memory,
        cpu_busy_s=cpu_busy,
        pid1_cpu_s=pid1_cpu,
    )


def boot_chart(machine: Machine, out: Path) -> Path:
    """`systemd-analyze plot` of the running machine as SVG and PNG; returns the PNG."""
    machine.succeed("systemd-analyze plot > /tmp/bootchart.svg", timeout=300)
    svg = out.with_suffix(".svg")
    machine.copy_from_machine("/tmp/bootchart.svg", svg)
    rsvg = shutil.which("rsvg-convert")
    if rsvg is None:
        raise ui.die("rsvg-convert is missing (it renders the boot charts)",
                     hint="apt-get install librsvg2-bin (./sonix installs it on first use)")
    png = out.with_suffix(".png")
    process.run([rsvg, "--background-color=white", "-o", png, svg], capture=True, timeout=300)
    return png


Inspect = Callable[[Machine], None]


def measure_boots(driver: Driver, figures: SystemFigures, image: Path, *, runs: int,
                  warmup: bool, boot_complete: bool, charts: Path,
                  inspect: Inspect | None = None) -> None:
    """`runs` measured boots of `image` (after a first one that is not counted, with
    `warmup`); the chart and `inspect` (checks of the quick test) on the last one."""
    machine = driver.machine(figures.name, image=image, disk_size=DISK_BYTES,
                             memory_mib=MEMORY_MIB, user_net=True)
    if warmup:
        with ui.step(f"{figures.name}: first boot (not counted)"):
            figures.first_boot = boot_once(machine, boot_complete=boot_complete)
            machine.shutdown()
    for run in range(runs):
        with ui.step(f"{figures.name}: boot {run + 1} of {runs}"):
            figures.boots.append(boot_once(machine, boot_complete=boot_complete))
            if run == runs - 1:
                figures.chart = boot_chart(machine, charts / f"bootchart-{figures.name}").name
                figures.blame = machine.succeed(
                    "systemd-analyze blame --no-pager | head -n 15; echo;"
                    " systemd-analyze critical-chain --no-pager", timeout=300)
                if inspect is not None:
                    inspect(machine)
            machine.shutdown()


def accel_of_run(first: str, last: str) -> str:
    """The accelerator of the report; when KVM failed a guest during the run (the test
    driver fell back to TCG), the figures mix both, and the report says so."""
    if first == last:
        return last
    ui.info(f"the accelerator changed during the run ({first} -> {last}): run "
            "`sonix bench compare` again for figures under one accelerator")
    return f"{first}, then {last} (KVM failed a guest)"


def measure_floor(driver: Driver, result: floor.Floor, runs: int) -> FloorFigures:
    figures = FloorFigures(initrd_bytes=result.initrd.stat().st_size)
    for run in range(runs):
        with ui.step(f"floor: boot {run + 1} of {runs}"):
            machine = driver.machine(f"floor{run}", direct_boot=result.direct_boot(),
                                     memory_mib=512, user_net=False)
            start = time.monotonic()
            machine.start()
            marker = machine.wait_for_console_text(rf"{floor.MARKER} [0-9]+\.[0-9]+",
                                                   timeout=BOOT_TIMEOUT)
            figures.wall_to_init.append(round(time.monotonic() - start, 3))
            figures.kernel_to_init.append(float(marker.split()[1]))
            machine.wait_for_shutdown(timeout=120)
    return figures


# The kernel prints this line as it starts /init; systemd (show_status) its targets.
KERNEL_RUNS_INIT = r"Run /init as init process"
SYSINIT_REACHED = r"Reached target [^\n]*System Initialization"


def measure_initrd_floor(driver: Driver, floor_build: floor.Floor, initrd: Path,
                         runs: int) -> InitrdFloorFigures:
    """Boot the floor's kernel with sonix's initrd and no disk: the initrd's systemd stops at
    sysinit.target (udev, journald, tmpfiles, modules: what every systemd stage 1 does
    before it looks for a disk)."""
    figures = InitrdFloorFigures(initrd_bytes=initrd.stat().st_size)
    append = (f"{floor.DEFAULT_APPEND} rd.systemd.unit=sysinit.target systemd.show_status=1 "
              "rd.udev.log_level=err")
    for run in range(runs):
        with ui.step(f"systemd initrd floor: boot {run + 1} of {runs}"):
            machine = driver.machine(
                f"initrd-floor{run}", memory_mib=512, user_net=False,
                direct_boot=qemu.DirectBoot(kernel=floor_build.kernel, initrd=initrd,
                                            append=append))
            start = time.monotonic()
            machine.start()
            machine.wait_for_console_text(KERNEL_RUNS_INIT, timeout=BOOT_TIMEOUT)
            at_init = time.monotonic()
            machine.wait_for_console_text(r"Reached target", timeout=BOOT_TIMEOUT)
            at_first = time.monotonic()
            # The first target may be sysinit.target itself; then it has been seen already.
            if not re.search(SYSINIT_REACHED, machine.console_text()):
                machine.wait_for_console_text(SYSINIT_REACHED, timeout=BOOT_TIMEOUT)
            at_sysinit = time.monotonic()
            machine.crash()
            figures.wall_to_init.append(round(at_init - start, 3))
            figures.init_to_first_target.append(round(at_first - at_init, 3))
            figures.init_to_sysinit.append(round(at_sysinit - at_init, 3))
    return figures


# ---- the sonix side ------------------------------------------------------------------------


def sonix_config(directory: Path, name: str, settings: str = "") -> Path:
    """examples/minimal.nix with the test backdoor, plus `settings`."""
    path = directory / f"{name}.nix"
    path.write_text(f"{{ lib, ... }}: {{ imports = [ {MINIMAL} {BACKDOOR} ]; {settings} }}\n")
    return path


def sonix_builds(work: Path, figures: SystemFigures) -> build.BuildResult:
    """Cold build (a new version: usr, initrd, image from the cached package tree) and warm
    rebuild after one changed option; evaluation time and peak memory."""
    stamp = f"bench.{int(time.time())}"
    cold_cfg = sonix_config(work, "sonix-cold", f'image.version = "{stamp}";')
    warm_cfg = sonix_config(
        work, "sonix-warm", f'image.version = "{stamp}"; networking.hostName = lib.mkForce "warm";')
    figures.eval_s, figures.eval_peak_rss = eval_figures(cold_cfg)
    figures.build_cold_s, result = timed(lambda: build.build_system(cold_cfg, work / "cold"))
    figures.build_warm_s, _ = timed(lambda: build.build_system(warm_cfg, work / "warm"))
    sizes = result.manifest["bytes"]
    figures.sizes = {
        "image": sizes["disk_allocated"], "usr": sizes["usr_fs"], "initrd": sizes["initrd"],
        "uki": sizes["uki"],
    }
    return result


def peer_build(work: Path, figures: SystemFigures, *, cold: bool) -> peer.PeerImage:
    """The peer; with `cold`, built from nothing into `work` (timed), else the cached one."""
    out = work / "peer" if cold else paths.state_dir() / "bench"
    figures.build_cold_s, image = timed(lambda: peer.build_peer(out))
    if not cold:
        figures.build_cold_s = None
    sizes = image.sizes()
    # The same keys as sonix's: the disk's allocated bytes, the /usr files (on ext4, so the
    # bytes of the files; sonix's is its compressed erofs), the initrd.
    figures.sizes = {"image": sizes["disk_allocated"], "usr": sizes["usr_tree"],
                     "initrd": sizes["initrd"]}
    return image


# ---- the report ----------------------------------------------------------------------------


def phase_of(name: str) -> Callable[[BootSample], float | None]:
    return lambda boot: boot.phases.get(name)


def summary(sonix: SystemFigures, peer_: SystemFigures, floor_: FloorFigures,
            initrd_floor: InitrdFloorFigures) -> dict[str, Any]:
    """Medians and ratios: what docs/benchmarks.md shows."""
    rows: dict[str, dict[str, float | None]] = {}

    def row(name: str, s: float | None, p: float | None) -> None:
        rows[name] = {"sonix": s, "peer": p, "ratio": ratio(s, p)}

    row("multi-user.target, host wall clock (s)",
        sonix.median_of(lambda b: b.wall_multi_user), peer_.median_of(lambda b: b.wall_multi_user))
    row("boot-complete.target, host wall clock (s)",
        sonix.median_of(lambda b: b.wall_boot_complete), None)
    floor_kernel = median(floor_.kernel_to_init)
    for phase in PHASES:
        row(f"{phase} (systemd-analyze, s)", sonix.median_of(phase_of(phase)),
            peer_.median_of(phase_of(phase)))
    row("CPU time used by the boot, all CPUs (s)", sonix.median_of(lambda b: b.cpu_busy_s),
        peer_.median_of(lambda b: b.cpu_busy_s))
    row("of it, PID 1 (s)", sonix.median_of(lambda b: b.pid1_cpu_s),
        peer_.median_of(lambda b: b.pid1_cpu_s))
    row("memory used after boot (MiB)", _mib(sonix.median_of(lambda b: b.memory_used)),
        _mib(peer_.median_of(lambda b: b.memory_used)))
    labels = (("image", "image (allocated)"), ("usr", "/usr (sonix: erofs; peer: ext4 files)"),
              ("initrd", "initrd"))
    for key, label in labels:
        row(f"{label} (MiB)", _mib(sonix.sizes.get(key)), _mib(peer_.sizes.get(key)))
    row("evaluation (s)", sonix.eval_s, None)
    row("evaluation peak memory (MiB)", _mib(sonix.eval_peak_rss), None)
    row("cold build (s)", sonix.build_cold_s, peer_.build_cold_s)
    row("warm rebuild, one option changed (s)", sonix.build_warm_s, None)
    floor_wall = median(floor_.wall_to_init)
    sonix_wall = sonix.median_of(lambda b: b.wall_multi_user)
    peer_wall = peer_.median_of(lambda b: b.wall_multi_user)
    return {
        "rows": rows,
        "floor": {"wall_to_init_s": floor_wall, "kernel_to_init_s": floor_kernel,
                  "initrd_bytes": floor_.initrd_bytes},
        "initrd_floor": {
            "wall_to_init_s": median(initrd_floor.wall_to_init),
            "init_to_first_target_s": median(initrd_floor.init_to_first_target),
            "init_to_sysinit_s": median(initrd_floor.init_to_sysinit),
            "initrd_bytes": initrd_floor.initrd_bytes,
        },
        # What the targets leave, against what is spent before sonix's own work begins.
        "budgets": {
            "multi_user_s": _times(0.6, peer_wall),
            "multi_user_floor_s": _times(3, floor_wall),
            "initrd_s": _times(0.5, rows["initrd (systemd-analyze, s)"]["peer"]),
            "sonix_before_kernel_s": _before_kernel(sonix),
            "peer_before_kernel_s": _before_kernel(peer_),
        },
        "targets": {
            "multi-user: sonix / peer <= 0.6": ratio(sonix_wall, peer_.median_of(
                lambda b: b.wall_multi_user)),
            "multi-user: sonix / floor <= 3": ratio(sonix_wall, floor_wall),
            "initrd: sonix / peer <= 0.5": rows["initrd (systemd-analyze, s)"]["ratio"],
        },
    }


def _times(factor: float, value: float | None) -> float | None:
    return round(factor * value, 3) if value is not None else None


def _before_kernel(figures: SystemFigures) -> float | None:
    """Firmware and boot loader, about: the host's wall clock to multi-user.target less the
    guest's kernel, initrd and userspace phases (under TCG systemd-analyze cannot see the
    loader's timestamps)."""
    def before(boot: BootSample) -> float | None:
        phases = [boot.phases.get(name) for name in ("kernel", "initrd", "userspace")]
        if any(p is None for p in phases):
            return None
        return boot.wall_multi_user - sum(p for p in phases if p is not None)
    return figures.median_of(before)


def _mib(value: float | int | None) -> float | None:
    return round(value / 2**20, 1) if value is not None else None


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def markdown(report: Mapping[str, Any]) -> str:
    s = report["summary"]
    lines = [
        "# sonix against a Debian installation of the same packages",
        "",
        f"Made by `./sonix bench compare --runs {report['runs']}` on {report['date']} "
        f"({report['host']}, accelerator {report['accel']}). Medians of {report['runs']} "
        "boots after a first boot that is not counted; ratio = sonix / peer. The peer is "
        "the same locked Debian 13 packages installed with dpkg/apt and maintainer scripts, "
        "initramfs-tools, ext4 root, systemd-boot (docs/benchmarks/peer.md); the floor is the "
        "same kernel booting straight into a trivial init. CPU time is read from /proc/stat "
        "and /proc/1/stat once the boot has settled (`systemctl is-system-running --wait`): "
        "under TCG every boot is CPU-bound, so it is the boot's work, and it varies less "
        "than the wall clock.",
        "",
        "| figure | sonix | peer | sonix / peer |",
        "|---|---:|---:|---:|",
    ]
    for name, row in s["rows"].items():
        lines.append(f"| {name} | {_cell(row['sonix'])} | {_cell(row['peer'])} | "
                     f"{_cell(row['ratio'])} |")
    floor_ = s["floor"]
    lines += [
        "",
        f"Floor: {_cell(floor_['wall_to_init_s'])} s from QEMU's start to /init (host wall "
        f"clock), {_cell(floor_['kernel_to_init_s'])} s of it in the kernel; its initrd is "
        f"{floor_['initrd_bytes']} bytes. The peer's initrd row is initramfs-tools' time from "
        "the kernel log (systemd-analyze counts it as kernel time); its firmware and loader "
        "phases are unknown (its systemd cannot read the loader's EFI variables that early).",
        "",
        *_initrd_floor_lines(s),
        "Builds: sonix's cold build is a new release (usr, initrd, image) from the package "
        "tree already in the Nix store, its warm rebuild one more with a changed option; the "
        "peer's is built from nothing (bootstrap, apt, initramfs-tools), so that ratio compares "
        "different work.",
        "",
        "| target | measured | met |",
        "|---|---:|---|",
    ]
    for name, value in s["targets"].items():
        limit = float(name.rsplit("<=", 1)[1])
        met = "—" if value is None else ("yes" if value <= limit else "no")
        lines.append(f"| {name} | {_cell(value)} | {met} |")
    lines += ["", "Boot charts (last measured boot, `systemd-analyze plot`):", ""]
    for system in ("sonix", "peer"):
        chart = report["systems"][system].get("chart")
        if chart:
            lines.append(f"- {system}: [{chart}](benchmarks/{chart})")
    for system in ("sonix", "peer"):
        blame = report["systems"][system].get("blame")
        if blame:
            lines += ["", f"Slowest units and the critical chain of {system}'s last boot:", "",
                      "```", blame.rstrip(), "```"]
    lines += ["", "Raw figures: [benchmarks/results.json](benchmarks/results.json).", ""]
    return "\n".join(lines)


def _initrd_floor_lines(s: Mapping[str, Any]) -> list[str]:
    floor_, budgets = s.get("initrd_floor"), s.get("budgets")
    if not floor_ or not budgets:
        return []
    return [
        f"systemd initrd floor: sonix's initrd booted by the same kernel with no disk "
        f"(`rd.systemd.unit=sysinit.target`): /init runs {_cell(floor_['wall_to_init_s'])} s "
        f"after QEMU's start (the floor's trivial initrd: {_cell(s['floor']['wall_to_init_s'])}"
        f" s; the difference is unpacking the initrd), PID 1 reaches its first target "
        f"{_cell(floor_['init_to_first_target_s'])} s and sysinit.target "
        f"{_cell(floor_['init_to_sysinit_s'])} s after /init.",
        "",
        f"What the targets leave: multi-user.target within {_cell(budgets['multi_user_s'])} s "
        f"(0.6 x the peer) and {_cell(budgets['multi_user_floor_s'])} s (3 x the floor), an "
        f"initrd phase within {_cell(budgets['initrd_s'])} s (0.5 x the peer). Firmware and "
        f"boot loader take about {_cell(budgets['sonix_before_kernel_s'])} s before sonix's "
        f"kernel starts and {_cell(budgets['peer_before_kernel_s'])} s before the peer's (host "
        "wall clock less the guest's phases); the floor has neither (QEMU loads its kernel).",
        "",
    ]


@contextmanager
def work_dir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
    else:
        with tempfile.TemporaryDirectory(prefix="sonix-bench-") as tmp:
            yield Path(tmp)


def run(out: Path, *, runs: int, cold_peer: bool, warmup: bool = True, work: Path | None = None,
        inspect: Mapping[str, Inspect] | None = None) -> dict[str, Any]:
    """Build, boot and measure the three systems; write `out`/benchmarks.md and
    `out`/benchmarks/{results.json, bootchart-*.png}. Returns the report. `inspect` maps
    "sonix"/"peer" to checks run on the last boot (the quick test's)."""
    inspect = inspect or {}
    if runs < 1:
        raise ui.die(f"--runs {runs}: at least one measured boot is needed")
    charts = out / "benchmarks"
    charts.mkdir(parents=True, exist_ok=True)
    sonix = SystemFigures("sonix")
    peer_ = SystemFigures("peer")
    with work_dir(work) as tmp, Driver(tmp / "vms") as driver:
        with ui.step("Building sonix (cold, then warm)"):
            result = sonix_builds(tmp, sonix)
        with ui.step("Building the peer" + (" from nothing" if cold_peer else "")):
            peer_image = peer_build(tmp, peer_, cold=cold_peer)
        floor_build = floor.build_floor(paths.state_dir() / "bench")
        # The KVM probe boots OVMF and this kernel: before the clock of any boot starts.
        accel = qemu.accelerator(paths.state_dir() / "vm", floor_build.kernel)
        floor_ = measure_floor(driver, floor_build, runs)
        initrd_floor = measure_initrd_floor(driver, floor_build, result.initrd, runs)
        measure_boots(driver, sonix, result.image, runs=runs, warmup=warmup, boot_complete=True,
                      charts=charts, inspect=inspect.get("sonix"))
        measure_boots(driver, peer_, peer_image.disk, runs=runs, warmup=warmup,
                      boot_complete=False, charts=charts, inspect=inspect.get("peer"))
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "host": f"{os.cpu_count()} cores",
        "accel": accel_of_run(accel, qemu.accelerator(paths.state_dir() / "vm")),
        "runs": runs,
        "warmup": warmup,
        "systems": {"sonix": asdict(sonix), "peer": asdict(peer_)},
        "floor": asdict(floor_),
        "initrd_floor": asdict(initrd_floor),
    }
    report["summary"] = summary(sonix, peer_, floor_, initrd_floor)
    (charts / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "benchmarks.md").write_text(markdown(report))
    return report
