"""What ends a trial boot that hangs (issue 14, section 4): the watchdog settings
(systemd.watchdog.*) and the limits that sonix-trial-generator arms on trial boots
(health.bootTimeLimit, health.emergencyTimeLimit).

The generator is a shell script that the configuration writes; here it runs on the host with
/bin/sh against fake trees (SONIX_GENERATOR_ROOT), one case per row of a table: where it runs
(initrd or system), what says the boot is on trial, the kernel command line, and the files it
must write. The VM test (tests/vm/test_hung_boots.py) boots it for real.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_core_modules import error_of, evaluate, initrd, text, usr

GENERATOR = "lib/systemd/system-generators/sonix-trial-generator"
EFIVAR = "sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
SELECTED = "sys/firmware/efi/efivars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
COUNTED_BOOT = "lib/sonix/counted-boot"
WATCHDOG = "lib/systemd/system.conf.d/50-sonix-watchdog.conf"


# ---- the watchdog --------------------------------------------------------------------------


def test_watchdog_defaults_in_the_system_and_the_initrd() -> None:
    expected = (
        "# sonix: systemd.watchdog.*, systemd.crashAction\n[Manager]\nCrashAction=reboot\n"
        "RebootWatchdogSec=10min\nRuntimeWatchdogSec=1min\n"
    )
    assert text(usr(), WATCHDOG) == expected
    stage1 = initrd()
    assert text(stage1, WATCHDOG) == expected
    # Its driver is in the initrd and loaded at the start of stage 1.
    assert text(stage1, "lib/modules-load.d/sonix-watchdog.conf") == "i6300esb\n"
    assert "i6300esb" in evaluate("{ }", "boot.initrd.availableKernelModules")


def test_watchdog_options() -> None:
    module = """{ ... }: {
      systemd.watchdog = {
        runtimeTime = "30s"; rebootTime = null; kexecTime = "5min"; device = "/dev/watchdog1";
        drivers = [ "iTCO_wdt" "sp5100_tco" ];
      };
      systemd.crashAction = "freeze";
    }"""
    dropin = text(usr(module), WATCHDOG)
    assert dropin.splitlines()[2:] == [
        "CrashAction=freeze", "KExecWatchdogSec=5min", "RuntimeWatchdogSec=30s",
        "WatchdogDevice=/dev/watchdog1",
    ]
    drivers = text(initrd(module), "lib/modules-load.d/sonix-watchdog.conf")
    assert drivers == "iTCO_wdt\nsp5100_tco\n"


def test_watchdog_can_be_left_to_systemd() -> None:
    module = """{ ... }: {
      systemd.watchdog = { runtimeTime = null; rebootTime = null; drivers = [ ]; };
      systemd.crashAction = null;
    }"""
    assert WATCHDOG not in usr(module)
    stage1 = initrd(module)
    assert WATCHDOG not in stage1
    assert "lib/modules-load.d/sonix-watchdog.conf" not in stage1


@pytest.mark.parametrize("value", ["1 min", "soon", "30s\nRuntimeWatchdogSec=0", "-1s"])
def test_watchdog_times_are_checked(value: str) -> None:
    message = error_of(f'{{ ... }}: {{ systemd.watchdog.runtimeTime = "{value}"; }}'.replace(
        "\n", "\\n"))
    assert "systemd.watchdog.runtimeTime" in message


def test_crash_action_is_checked() -> None:
    message = error_of('{ ... }: { systemd.crashAction = "shell"; }')
    assert "systemd.crashAction" in message


# ---- the limits of a trial boot ------------------------------------------------------------


def test_the_generator_is_in_the_system_and_the_initrd() -> None:
    system, stage1 = usr(), initrd()
    assert system[GENERATOR]["mode"] == stage1[GENERATOR]["mode"] == "0755"
    assert text(system, GENERATOR) == text(stage1, GENERATOR)
    assert text(system, GENERATOR).startswith("#!/usr/bin/sh\n")
    # The initrd's base set has sh and cat; the generator also needs these.
    assert {"/usr/bin/mkdir", "/usr/bin/ln", "/usr/bin/tr"} <= set(
        evaluate("{ }", "boot.initrd.binaries"))


def test_no_limits_no_generator() -> None:
    module = "{ ... }: { health = { bootTimeLimit = null; emergencyTimeLimit = null; }; }"
    assert GENERATOR not in usr(module)
    assert GENERATOR not in initrd(module)
    assert "/usr/bin/mkdir" not in evaluate(module, "boot.initrd.binaries")


@pytest.mark.parametrize("value", ["0", "15 min", "1h; rm -rf /", "$(reboot)", ""])
def test_limits_are_checked(value: str) -> None:
    message = error_of(f'{{ ... }}: {{ health.bootTimeLimit = "{value}"; }}')
    assert "health.bootTimeLimit" in message


@dataclass(frozen=True)
class Case:
    """One run of the generator: the fake tree it sees and the files it must write."""

    name: str
    stage: str = "system"  # or "initrd"
    efivar: str | None = None  # LoaderBootCountPath (systemd-boot counts this boot): the entry
    # LoaderEntrySelected, the entry that booted; by default the id of `efivar`'s entry.
    selected: str | None = "same"
    trial_file: str | None = None  # /var/lib/sonix-update/trial
    cmdline: str = "console=ttyS0 panic=5"
    expect: dict[str, str] = field(default_factory=dict)  # path -> a line it must contain
    absent: tuple[str, ...] = ()


TRYING = "\\EFI\\Linux\\sonix_7+1.efi"
BOOT = "boot-complete.target.d/50-sonix-trial.conf"
INITRD = "initrd.target.d/50-sonix-trial.conf"
TIMER = "sonix-trial-reboot.timer"
SERVICE = "sonix-trial-reboot.service"
WANTS = ("emergency.target.wants/sonix-trial-reboot.timer",
         "rescue.target.wants/sonix-trial-reboot.timer")
PULL = "default.target.wants/boot-complete.target"
EVERYTHING = (BOOT, INITRD, TIMER, SERVICE, PULL, *WANTS)

CASES = [
    Case("not on trial: nothing", absent=EVERYTHING),
    Case("not on trial in the initrd", stage="initrd", absent=EVERYTHING),
    Case("boot counting", efivar=TRYING,
         expect={BOOT: "JobTimeoutSec=15min", TIMER: "OnActiveSec=5min",
                 SERVICE: "SuccessAction=reboot-force", PULL: "",
                 WANTS[0]: "", WANTS[1]: ""},
         absent=(INITRD,)),
    Case("boot counting: the drop-in forces the reboot", efivar=TRYING,
         expect={BOOT: "JobTimeoutAction=reboot-force"}),
    Case("boot counting: the reboot unit says why", efivar=TRYING,
         expect={SERVICE: "on trial (boot counting) and was in emergency or rescue mode for 5min",
                 TIMER: "DefaultDependencies=no"}),
    Case("boot counting in the initrd", stage="initrd", efivar=TRYING,
         expect={INITRD: "JobTimeoutSec=15min", TIMER: "OnActiveSec=5min", WANTS[0]: ""},
         absent=(BOOT, PULL)),
    Case("a later try", efivar="\\EFI\\Linux\\sonix_7+1-2.efi", expect={BOOT: "JobTimeoutSec"}),
    Case("a Type #1 entry on trial", efivar="\\loader\\entries\\sonix-7+2.conf",
         expect={BOOT: "JobTimeoutSec"}),
    Case("the last try (3 tries)", efivar="\\EFI\\Linux\\sonix_7+0-3.efi",
         expect={BOOT: "JobTimeoutSec"}),
    Case("no tries left: nothing to fall back to, the admin keeps the shell",
         efivar="\\EFI\\Linux\\sonix_7+0-4.efi", absent=EVERYTHING),
    Case("no tries left, Type #1", efivar="\\loader\\entries\\sonix-7+0-9.conf",
         absent=EVERYTHING),
    Case("no tries left in the initrd", stage="initrd",
         efivar="\\EFI\\Linux\\sonix_7+0-12.efi", absent=EVERYTHING),
    Case("a counter that is not one", efivar="\\EFI\\Linux\\sonix_7+0-x.efi",
         expect={BOOT: "JobTimeoutSec"}),
    Case("ten tries left", efivar="\\EFI\\Linux\\sonix_7+10-12.efi",
         expect={BOOT: "JobTimeoutSec"}),
    Case("soft-reboot or kexec trial of this version", trial_file="7\n",
         expect={BOOT: "on trial (activated by the update agent)", TIMER: "OnActiveSec=5min"}),
    Case("trial file of another version", trial_file="6\n", absent=EVERYTHING),
    Case("empty trial file", trial_file="", absent=EVERYTHING),
    Case("trial file in the initrd (its /var is not there yet)", stage="initrd",
         trial_file="7\n", absent=EVERYTHING),
    Case("limit from the boot menu", efivar=TRYING, cmdline="quiet sonix.boot_time_limit=60",
         expect={BOOT: "JobTimeoutSec=60", TIMER: "OnActiveSec=5min"}),
    Case("boot limit off from the boot menu", efivar=TRYING, cmdline="sonix.boot_time_limit=0",
         expect={TIMER: "OnActiveSec=5min"}, absent=(BOOT,)),
    Case("emergency limit off from the boot menu", efivar=TRYING,
         cmdline="sonix.emergency_time_limit=off sonix.boot_time_limit=2min",
         expect={BOOT: "JobTimeoutSec=2min"}, absent=(TIMER, SERVICE, *WANTS)),
    Case("a word that only starts like the option", efivar=TRYING,
         cmdline="xsonix.boot_time_limit=1s sonix.boot_time_limitx=2s",
         expect={BOOT: "JobTimeoutSec=15min"}),
    Case("a typo on the command line keeps the configured limit", efivar=TRYING,
         cmdline="sonix.boot_time_limit=soon sonix.emergency_time_limit=5m",
         expect={BOOT: "JobTimeoutSec=15min", TIMER: "OnActiveSec=5min"}),
    Case("no unit or hours from the command line", efivar=TRYING,
         cmdline="sonix.boot_time_limit=900 sonix.emergency_time_limit=1h",
         expect={BOOT: "JobTimeoutSec=900\n", TIMER: "OnActiveSec=1h\n"}),
    Case("units only where the options take them", efivar=TRYING,
         cmdline="sonix.boot_time_limit=07s sonix.emergency_time_limit=1s2",
         expect={BOOT: "JobTimeoutSec=15min", TIMER: "OnActiveSec=5min"}),
    Case("not on trial ignores the boot menu", cmdline="sonix.boot_time_limit=60",
         absent=EVERYTHING),
    # The firmware refused v7 (tries used up by two starts of systemd-boot) and a third start
    # booted v6, which has no counter: the variable still names v7's entry.
    Case("a count path left by an entry the firmware refused",
         efivar="\\EFI\\Linux\\sonix_7+0-2.efi", selected="sonix_6.efi", absent=EVERYTHING),
    Case("the selected entry in other case", efivar=TRYING, selected="SONIX_7.EFI",
         expect={BOOT: "JobTimeoutSec"}),
    Case("no selected entry: not counted", efivar=TRYING, selected=None, absent=EVERYTHING),
]


def generator_script(module: str = "{ }") -> str:
    return text(usr(module), GENERATOR)


def run_generator(script: str, case: Case, tmp_path: Path) -> Path:
    root, out = tmp_path / "root", tmp_path / "out"
    (root / "proc").mkdir(parents=True)
    (root / "proc/cmdline").write_text(case.cmdline + "\n")
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/os-release").write_text('ID=debian\nIMAGE_ID=sonix\nIMAGE_VERSION="7"\n')
    if case.stage == "initrd":
        (root / "etc").mkdir()
        (root / "etc/initrd-release").write_text("ID=sonix-initrd\n")
    if case.efivar is not None:
        (root / EFIVAR).parent.mkdir(parents=True)
        # efivarfs: 4 bytes of attributes, then the value (a UTF-16 path, NUL-terminated).
        value = case.efivar.encode("utf-16-le") + b"\x00\x00"
        (root / EFIVAR).write_bytes(b"\x06\x00\x00\x00" + value)
    selected = case.selected
    if selected == "same" and case.efivar is not None:
        name = case.efivar.rpartition("\\")[2]
        selected = name.partition("+")[0] + "." + name.rpartition(".")[2]
    if selected is not None and selected != "same":
        (root / SELECTED).parent.mkdir(parents=True, exist_ok=True)
        (root / SELECTED).write_bytes(b"\x06\x00\x00\x00" + selected.encode("utf-16-le")
                                      + b"\x00\x00")
    if case.trial_file is not None:
        (root / "var/lib/sonix-update").mkdir(parents=True)
        (root / "var/lib/sonix-update/trial").write_text(case.trial_file)
    generator = tmp_path / "sonix-trial-generator"
    generator.write_text(script)
    out.mkdir()
    # systemd passes the normal, early and late directories.
    subprocess.run(
        ["/bin/sh", str(generator), str(out), str(tmp_path / "early"), str(tmp_path / "late")],
        check=True, env={**os.environ, "SONIX_GENERATOR_ROOT": str(root)},
    )
    return out


@pytest.fixture(scope="module")
def default_generator() -> str:
    return generator_script()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_generator(case: Case, default_generator: str, tmp_path: Path) -> None:
    out = run_generator(default_generator, case, tmp_path)
    for path, line in case.expect.items():
        assert (out / path).exists(), f"{case.name}: {path} missing"
        if path.endswith((".wants/sonix-trial-reboot.timer", PULL)):
            assert (out / path).is_symlink()
        else:
            assert line in (out / path).read_text(), f"{case.name}: {path} lacks {line!r}"
    for path in case.absent:
        assert not (out / path).exists(), f"{case.name}: {path} should not be written"


def test_generated_units_point_where_systemd_looks(default_generator: str, tmp_path: Path) -> None:
    out = run_generator(default_generator, Case("links", efivar=TRYING), tmp_path)
    for wants in WANTS:
        assert os.readlink(out / wants) == "../sonix-trial-reboot.timer"
        assert (out / wants).resolve() == (out / TIMER).resolve()
    assert os.readlink(out / PULL) == "/usr/lib/systemd/system/boot-complete.target"
    service = (out / SERVICE).read_text()
    assert "[Service]\nType=oneshot\n" in service
    assert "FailureAction=reboot-force" in service


def test_configured_limits_reach_the_generator(tmp_path: Path) -> None:
    script = generator_script(
        '{ ... }: { health = { bootTimeLimit = "3min"; emergencyTimeLimit = null; }; }'
    )
    out = run_generator(script, Case("configured", efivar=TRYING), tmp_path)
    assert "JobTimeoutSec=3min" in (out / BOOT).read_text()
    assert not (out / TIMER).exists()


def evaluate_health(module: str) -> Any:
    return evaluate(module, "health")


def test_limit_defaults() -> None:
    health = evaluate_health("{ }")
    assert (health["bootTimeLimit"], health["emergencyTimeLimit"]) == ("15min", "5min")


def test_containers_get_no_generator_and_no_watchdog() -> None:
    module = "{ ... }: { boot.isContainer = true; }"
    files = evaluate(module, "system.buildManifest.usrFiles")
    assert GENERATOR not in files
    assert WATCHDOG not in files


@pytest.mark.parametrize(("count_path", "selected", "counted"), [
    ("\\EFI\\Linux\\sonix_7+1-1.efi", "sonix_7.efi", True),
    ("\\EFI\\Linux\\sonix_7+0-2.efi", "sonix_6.efi", False),  # refused by the firmware
    ("\\loader\\entries\\sonix-7+2.conf", "sonix-7.conf", True),
    (None, "sonix_6.efi", False),
])
def test_systemd_bless_boot_runs_only_for_the_counted_entry(
    count_path: str | None, selected: str, counted: bool, tmp_path: Path,
) -> None:
    """systemd-bless-boot.service runs /usr/lib/sonix/counted-boot first (ExecCondition=):
    it blesses the entry that LoaderBootCountPath names only when that entry booted."""
    files = usr()
    assert files[COUNTED_BOOT]["mode"] == "0755"
    dropin = next(v for k, v in files.items()
                  if k.startswith("lib/systemd/system/systemd-bless-boot.service.d/"))
    assert "ExecCondition=/usr/lib/sonix/counted-boot" in dropin["value"]
    root = tmp_path / "root"
    efivars = root / Path(SELECTED).parent
    efivars.mkdir(parents=True)
    if count_path is not None:
        (root / EFIVAR).write_bytes(b"\x06\0\0\0" + (count_path + "\0").encode("utf-16-le"))
    (root / SELECTED).write_bytes(b"\x06\0\0\0" + (selected + "\0").encode("utf-16-le"))
    script = tmp_path / "counted-boot"
    script.write_text(text(files, COUNTED_BOOT))
    result = subprocess.run(["/bin/sh", str(script)], check=False,
                            env={**os.environ, "SONIX_GENERATOR_ROOT": str(root)})
    assert (result.returncode == 0) == counted
