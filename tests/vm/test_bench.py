"""`sonix bench compare` in its quick mode (one boot each, the cached peer), end to end, so that the
benchmark cannot rot (issue 8): the three systems build and boot, the report, the JSON and
the boot charts are written. On the way, the peer's last boot is checked to be the Debian way
of booting, and the floor's marker is read (compare.measure_floor), and sonix's initrd boots
with no disk up to sysinit.target (compare.measure_initrd_floor).

The figures themselves are not asserted beyond being there: timings belong in the benchmark,
not in tests (docs/benchmarks.md comes from a full `./sonix bench compare` run).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sonix.bench import compare, peer
from sonix.testing import Machine

pytestmark = pytest.mark.vm


def peer_boots_the_debian_way(machine: Machine) -> None:
    analyze = machine.succeed("systemd-analyze time --no-pager", timeout=300)
    # Debian's default.target is graphical.target (reached right after multi-user.target).
    assert re.search(r"(multi-user|graphical)\.target reached after", analyze), analyze
    # systemd-boot's type #1 entry, initramfs-tools' initrd (no systemd in it: no initrd
    # phase in systemd-analyze), ext4 root checked by the initrd, dpkg knows every package.
    assert f"root=PARTUUID={peer.ROOT_PARTUUID}" in machine.succeed("cat /proc/cmdline")
    assert "(initrd)" not in analyze
    machine.succeed("test -e /run/initramfs/fsck-root")
    assert machine.succeed("findmnt -no FSTYPE /").strip() == "ext4"
    machine.succeed("dpkg-query -W initramfs-tools linux-image-cloud-amd64 systemd-boot")
    machine.succeed("systemctl is-active systemd-networkd")


def test_quick_bench_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = compare.run(out, runs=1, cold_peer=False, warmup=False, work=tmp_path / "work",
                         inspect={"peer": peer_boots_the_debian_way})
    rows = report["summary"]["rows"]
    for name in ("multi-user.target, host wall clock (s)", "userspace (systemd-analyze, s)",
                 "initrd (systemd-analyze, s)", "memory used after boot (MiB)",
                 "/usr (sonix: erofs; peer: ext4 files) (MiB)",
                 "initrd (MiB)", "CPU time used by the boot, all CPUs (s)", "of it, PID 1 (s)"):
        row = rows[name]
        assert row["sonix"] and row["peer"] and row["ratio"], (name, row)
    for system in ("sonix", "peer"):
        cpu = rows["CPU time used by the boot, all CPUs (s)"][system]
        assert rows["of it, PID 1 (s)"][system] < cpu < 4 * rows[
            "multi-user.target, host wall clock (s)"][system], (system, cpu)  # 2 vCPUs, settled
    assert rows["boot-complete.target, host wall clock (s)"]["sonix"]
    assert rows["evaluation (s)"]["sonix"] and rows["warm rebuild, one option changed (s)"]["sonix"]
    assert report["summary"]["floor"]["wall_to_init_s"] > 0
    initrd_floor = report["summary"]["initrd_floor"]
    # sonix's initrd is larger than the floor's 1 KiB: /init starts later; PID 1 starts, then
    # reaches sysinit.target.
    assert initrd_floor["wall_to_init_s"] > report["summary"]["floor"]["wall_to_init_s"]
    assert 0 < initrd_floor["init_to_first_target_s"] <= initrd_floor["init_to_sysinit_s"]
    assert all(v is not None for v in report["summary"]["budgets"].values())
    assert all(v is not None for v in report["summary"]["targets"].values())

    text = (out / "benchmarks.md").read_text()
    assert "| multi-user.target, host wall clock (s) |" in text
    saved = json.loads((out / "benchmarks/results.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(report["summary"]))
    for system in ("sonix", "peer"):
        chart = out / "benchmarks" / f"bootchart-{system}.png"
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", chart
        assert f"bootchart-{system}.png" in text
