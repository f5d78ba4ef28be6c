"""`sonix bench secure-boot` (issue 15): what the chain of trust costs a boot, measured in one
run against plain sonix under the same accelerator.

    ./sonix bench secure-boot [--runs N] [--json]

Three builds of examples/minimal.nix with the test backdoor, the same version:
  plain       no Secure Boot; OVMF without Secure Boot, no TPM
  secure-boot signed (boot.secureBoot, keys made for the run); OVMF's Secure Boot build
              (SMM), a software TPM (swtpm): enrolled on its first boot, then Secure Boot on
              and every boot measured
  sealed      the same plus boot.encryption: the root is LUKS2 sealed to the signed PCR 11
              policy, unlocked by the TPM at every boot

Each machine boots once uncounted (repart, enrolment, encryption), then `runs` times, the
systems taking turns so that a slow patch of the host hits all of them. A boot is a power
cycle: host wall clock from QEMU's start to multi-user.target, and `systemd-analyze time` in
the guest. Reported: medians, the ratio to plain, and the UKI's size signed and unsigned.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sonix import build, paths, secureboot, ui
from sonix.bench import add_workload
from sonix.bench.compare import PHASES, BootSample, boot_once, median, ratio, sonix_config
from sonix.testing.driver import Driver
from sonix.vm import qemu

SYSTEMS = {
    # name: (settings, secure boot firmware and TPM)
    "plain": ("", False),
    "secure-boot": ("boot.secureBoot = {{ enable = true; keyDirectory = \"{keys}\"; }};", True),
    "sealed": ("boot.secureBoot = {{ enable = true; keyDirectory = \"{keys}\"; }}; "
               "boot.encryption.enable = true;", True),
}
DISK_BYTES = 4 << 30
MEMORY_MIB = 1536
TARGET = 1.15  # issue 15: Secure Boot + TPM at most 15 % slower to multi-user.target


def register(workloads: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_workload(
        workloads, "secure-boot",
        "boot time and UKI size with Secure Boot, a TPM and sealed state, against plain",
        __doc__, run, runs=(3, "measured boots per system"),
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--out", type=Path,
                        default=paths.source_root() / "docs/benchmarks/secure-boot.md",
                        help="the Markdown report (default: docs/benchmarks/secure-boot.md)")


def run(args: argparse.Namespace) -> int:
    if args.runs < 1:
        raise ui.die(f"--runs {args.runs}: at least one measured boot is needed")
    report = measure(args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(report))
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(args.out)
    return 0


def measure(runs: int) -> dict[str, Any]:
    # The keys beside, not inside, a 0700 tree: Nix's build users read the private ones.
    keys_dir = Path(tempfile.mkdtemp(prefix="sonix-bench-sb-keys-", dir="/tmp"))
    try:
        with tempfile.TemporaryDirectory(prefix="sonix-bench-sb-") as tmp_name:
            tmp = Path(tmp_name)
            keys, _ = secureboot.ensure_keys(keys_dir)
            version = f'image.version = "bench.sb.{int(time.time())}";'
            builds = {}
            for name, (settings, _) in SYSTEMS.items():
                config = sonix_config(tmp, name, version + " " + settings.format(
                    keys=keys.directory))
                with ui.step(f"Building {name}"):
                    builds[name] = build.build_system(config, tmp / f"out-{name}")
            boots: dict[str, list[BootSample]] = {name: [] for name in SYSTEMS}
            accel = qemu.accelerator(paths.state_dir() / "vm")
            with Driver(tmp / "vm") as driver:
                machines = {
                    name: driver.machine(name, image=builds[name].image, disk_size=DISK_BYTES,
                                         memory_mib=MEMORY_MIB, secure_boot=firmware,
                                         tpm=firmware)
                    for name, (_, firmware) in SYSTEMS.items()
                }
                for name, machine in machines.items():
                    with ui.step(f"{name}: first boot (not counted)"):
                        boot_once(machine, boot_complete=False)
                        check(name, machine.succeed(CHECK))
                        machine.shutdown()
                for run_number in range(runs):
                    for name, machine in machines.items():
                        with ui.step(f"{name}: boot {run_number + 1} of {runs}"):
                            boots[name].append(boot_once(machine, boot_complete=False))
                            machine.shutdown()
    finally:
        shutil.rmtree(keys_dir, ignore_errors=True)
    return report_of(runs, accel, builds, boots)


# What each system must be for its figures to mean anything: Secure Boot on (or off), the
# root sealed (or not).
CHECK = ("printf 'secureboot=%s root=%s\\n' "
         "\"$(od -An -tu1 -j4 -N1 /sys/firmware/efi/efivars/SecureBoot-"
         "8be4df61-93ca-11d2-aa0d-00e098032b8c 2>/dev/null | tr -d ' ' || echo none)\" "
         "\"$(findmnt -no SOURCE /)\"")


def check(name: str, state: str) -> None:
    secure = "secureboot=1" in state
    sealed = "root=/dev/mapper/root" in state
    expected = (name != "plain", name == "sealed")
    if (secure, sealed) != expected:
        raise ui.die(f"{name}: the machine is not what it should be to measure ({state.strip()})")


def report_of(runs: int, accel: str, builds: dict[str, build.BuildResult],
              boots: dict[str, list[BootSample]]) -> dict[str, Any]:
    systems: dict[str, Any] = {}
    for name, samples in boots.items():
        figures: dict[str, Any] = {
            "multi_user_s": median([b.wall_multi_user for b in samples]),
            "phases_s": {phase: median([b.phases.get(phase) for b in samples])
                         for phase in PHASES},
            "uki_bytes": builds[name].manifest["bytes"]["uki"],
            "boots": [b.wall_multi_user for b in samples],
        }
        systems[name] = figures
    plain = systems["plain"]
    for figures in systems.values():
        figures["ratio_to_plain"] = ratio(figures["multi_user_s"], plain["multi_user_s"])
        figures["uki_extra_bytes"] = figures["uki_bytes"] - plain["uki_bytes"]
    return {"date": time.strftime("%Y-%m-%d"), "host": f"{os.cpu_count()} cores",
            "accel": accel, "runs": runs, "target_ratio": TARGET, "systems": systems}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Secure Boot, TPM and sealed state: boot cost (`sonix bench secure-boot`)",
        "",
        f"{report['date']}, {report['host']}, {report['accel']}, median of {report['runs']} "
        "boots per system after one uncounted boot each, the systems taking turns. Wall clock "
        "from QEMU's start to multi-user.target; phases from `systemd-analyze time`. Target "
        f"(issue 15): Secure Boot + TPM at most {round((report['target_ratio'] - 1) * 100)} % "
        "slower than plain.",
        "",
        "| system | to multi-user (s) | ratio | " + " | ".join(PHASES) + " | UKI (MiB) | "
        "UKI extra (bytes) |",
        "|---" * (5 + len(PHASES)) + "|",
    ]
    for name, s in report["systems"].items():
        phases = " | ".join(_cell(s["phases_s"][p]) for p in PHASES)
        lines.append(f"| {name} | {_cell(s['multi_user_s'])} | {_cell(s['ratio_to_plain'])} | "
                     f"{phases} | {s['uki_bytes'] / (1 << 20):.1f} | {s['uki_extra_bytes']} |")
    lines += ["", "Boots (s): " + "; ".join(
        f"{name} {', '.join(str(b) for b in s['boots'])}" for name, s in report["systems"].items()
    ), ""]
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"
