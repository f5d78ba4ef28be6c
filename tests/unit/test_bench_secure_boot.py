"""`sonix bench secure-boot`: its report from boot samples (the boots themselves are the
benchmark's, not a test's), and the check that each machine is what it is measured as."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sonix import ui
from sonix.bench import secure_boot
from sonix.bench.compare import BootSample
from sonix.build import BuildResult


def sample(seconds: float) -> BootSample:
    return BootSample(wall_multi_user=seconds, wall_boot_complete=None,
                      phases={"firmware": 5.0, "kernel": 8.0, "initrd": 20.0,
                              "userspace": seconds - 40}, memory_used=1)


def result(uki: int) -> BuildResult:
    manifest: dict[str, Any] = {"bytes": {"uki": uki}}
    return BuildResult(Path("/o"), Path("/t"), Path("/i"), Path("/u"), Path("/r"), manifest)


def test_report_medians_ratios_and_uki_sizes() -> None:
    builds = {"plain": result(20_000_000), "secure-boot": result(20_004_000),
              "sealed": result(20_004_000)}
    boots = {"plain": [sample(100), sample(90), sample(110)],
             "secure-boot": [sample(115), sample(120), sample(110)],
             "sealed": [sample(130), sample(125), sample(120)]}
    report = secure_boot.report_of(3, "tcg", builds, boots)
    systems = report["systems"]
    assert systems["plain"]["multi_user_s"] == 100
    assert systems["secure-boot"]["multi_user_s"] == 115
    assert systems["secure-boot"]["ratio_to_plain"] == 1.15
    assert systems["sealed"]["ratio_to_plain"] == 1.25
    assert systems["secure-boot"]["uki_extra_bytes"] == 4000
    assert systems["plain"]["phases_s"]["initrd"] == 20.0
    assert systems["plain"]["phases_s"]["loader"] is None
    text = secure_boot.markdown(report)
    assert "| secure-boot | 115 | 1.15 |" in text
    assert "at most 15 % slower" in text
    assert "sealed 130, 125, 120" in text


@pytest.mark.parametrize(("name", "state", "ok"), [
    ("plain", "secureboot=none root=/dev/vda6", True),
    ("plain", "secureboot=0 root=/dev/vda6", True),
    ("secure-boot", "secureboot=1 root=/dev/vda6", True),
    ("secure-boot", "secureboot=0 root=/dev/vda6", False),  # not enrolled: not measured
    ("sealed", "secureboot=1 root=/dev/mapper/root", True),
    ("sealed", "secureboot=1 root=/dev/vda6", False),
    ("plain", "secureboot=1 root=/dev/vda6", False),
])
def test_each_machine_is_checked_before_it_is_measured(name: str, state: str, ok: bool) -> None:
    if ok:
        secure_boot.check(name, state)
    else:
        with pytest.raises(ui.SonixError, match="not what it should be"):
            secure_boot.check(name, state)
