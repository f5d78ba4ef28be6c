"""The update agent's pure parts (src/sonix/agents): versions, maintenance windows, boot entry
names, the GPT editor, and reading a UKI. Installing and activating are VM-tested
(tests/vm/test_updates.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import struct
import uuid
import zlib
from pathlib import Path

import pytest
from uki_fakes import fake_uki

from sonix.agents import common, gpt, records, update
from sonix.agents.update import Window

UTC = dt.UTC


@pytest.mark.parametrize(
    ("a", "b"),
    [("2", "1"), ("1.10", "1.9"), ("10", "9"), ("1.0.1", "1.0"), ("2026.11.24", "2026.11.3"),
     ("1b", "1a")],
)
def test_versions_compare_like_systemd(a: str, b: str) -> None:
    assert update.newer(a, b)
    assert not update.newer(b, a)
    assert not update.newer(a, a)


def test_window_on_listed_days_and_across_midnight() -> None:
    window = Window(days=("Sat",), start="23:30", minutes=60, time_zone="UTC")
    saturday = dt.datetime(2026, 11, 28, 23, 45, tzinfo=UTC)  # a Saturday
    assert update.in_window(window, saturday)[0]
    assert update.in_window(window, saturday + dt.timedelta(minutes=30))[0]  # Sunday 00:15
    assert not update.in_window(window, saturday + dt.timedelta(minutes=50))[0]
    inside, why = update.in_window(window, saturday - dt.timedelta(days=1))
    assert not inside and why == "outside the maintenance window (Sat 23:30 for 60 min, UTC)"


def test_window_in_a_time_zone() -> None:
    window = Window(days=(), start="02:00", minutes=30, time_zone="Europe/Berlin")
    # 01:10 UTC is 02:10 in Berlin in winter.
    assert update.in_window(window, dt.datetime(2026, 12, 1, 1, 10, tzinfo=UTC))[0]
    assert not update.in_window(window, dt.datetime(2026, 12, 1, 2, 10, tzinfo=UTC))[0]


def test_boot_entries_parse_counters(tmp_path: Path) -> None:
    linux = tmp_path / "EFI/Linux"
    linux.mkdir(parents=True)
    for name in ("sonix_1.efi", "sonix_2+2-1.efi", "sonix_3+0-2.efi", "other_9.efi"):
        (linux / name).touch()
    entries = {e.version: e for e in update.boot_entries(tmp_path, "sonix")}
    assert sorted(entries) == ["1", "2", "3"]
    assert (entries["1"].left, entries["2"].left, entries["2"].done) == (None, 2, 1)
    assert entries["3"].bad and not entries["2"].bad


def activation_config(activation: str) -> update.Config:
    return update.Config(name="sonix", channel="http://x/", keyrings=(), tries=2,
                         strategy="immediate", activation=activation, window=None,
                         fleet_lock_url="", fleet_lock_group="default")


@pytest.mark.parametrize(
    ("activation", "new_initrd", "kexec_tools", "virt", "expected"),
    [
        ("auto", b"initrd", True, "kvm", "soft-reboot"),  # only usrhash= differs
        ("kexec", b"initrd", True, "qemu", "soft-reboot"),
        ("reboot", b"initrd", True, "kvm", "reboot"),
        ("auto", b"initrd-2", True, "kvm", "kexec"),
        ("auto", b"initrd-2", True, "none", "kexec"),  # bare metal
        ("auto", b"initrd-2", True, "qemu", "reboot"),  # emulated CPU: the firmware is faster
        ("kexec", b"initrd-2", True, "qemu", "kexec"),
        ("kexec", b"initrd-2", False, "kvm", "reboot"),  # no kexec-tools in the image
    ],
)
def test_activation_is_the_cheapest_correct_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, activation: str, new_initrd: bytes,
    kexec_tools: bool, virt: str, expected: str,
) -> None:
    linux = tmp_path / "EFI/Linux"
    linux.mkdir(parents=True)
    fake_uki(linux / "sonix_1.efi", "rw usrhash=" + "1" * 64)
    fake_uki(linux / "sonix_2+2.efi", "rw usrhash=" + "2" * 64, initrd=new_initrd)
    kexec = tmp_path / "kexec"
    if kexec_tools:
        kexec.touch()
    monkeypatch.setattr(update, "KEXEC", kexec)
    monkeypatch.setattr(update, "KEXEC_LOADED", tmp_path)
    monkeypatch.setattr(update, "SECURE_BOOT", tmp_path / "no-efi-variable")
    monkeypatch.setattr(update, "emulated_cpu", lambda: virt == "qemu")
    new = next(e for e in update.boot_entries(tmp_path, "sonix") if e.version == "2")
    method, why = update.activation_method(activation_config(activation), tmp_path, "1", new)
    assert method == expected, why


@pytest.mark.parametrize("activation", ["auto", "kexec"])
def test_never_kexec_under_secure_boot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       activation: str) -> None:
    """Debian's kernel, locked down by Secure Boot, refuses to kexec Debian's kernel when db
    holds only the owner's certificate (ENOKEY, measured: docs/updates.md): a firmware reboot,
    even on real hardware and with updates.activation = kexec. Soft-reboot is unaffected."""
    linux = tmp_path / "EFI/Linux"
    linux.mkdir(parents=True)
    fake_uki(linux / "sonix_1.efi", "rw usrhash=" + "1" * 64)
    fake_uki(linux / "sonix_2+2.efi", "rw usrhash=" + "2" * 64, initrd=b"initrd-2")
    fake_uki(linux / "sonix_3+2.efi", "rw usrhash=" + "3" * 64)
    (tmp_path / "kexec").touch()
    variable = tmp_path / "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    variable.write_bytes(b"\x06\0\0\0\x01")
    monkeypatch.setattr(update, "KEXEC", tmp_path / "kexec")
    monkeypatch.setattr(update, "KEXEC_LOADED", tmp_path)
    monkeypatch.setattr(update, "SECURE_BOOT", variable)
    monkeypatch.setattr(update, "emulated_cpu", lambda: False)  # bare metal or KVM
    entries = {e.version: e for e in update.boot_entries(tmp_path, "sonix")}
    cfg = activation_config(activation)
    method, why = update.activation_method(cfg, tmp_path, "1", entries["2"])
    assert method == "reboot"
    assert why.startswith("the kernel or initrd changed; under Secure Boot the locked-down "
                          "kernel refuses to kexec Debian's kernel"), why
    assert ("updates.activation = kexec cannot apply" in why) == (activation == "kexec")
    assert update.activation_method(cfg, tmp_path, "1", entries["3"])[0] == "soft-reboot"
    # Setup mode or Secure Boot off (0), or no EFI variables at all: kexec as before.
    variable.write_bytes(b"\x06\0\0\0\0")
    assert update.activation_method(cfg, tmp_path, "1", entries["2"])[0] == "kexec"
    variable.unlink()
    assert not update.secure_boot_on()
    assert update.activation_method(cfg, tmp_path, "1", entries["2"])[0] == "kexec"


def test_config_override_wins(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(
        {"name": "sonix", "channel": "http://x/", "keyrings": ["/k.gpg"], "tries": 2}))
    (tmp_path / "b.json").write_text(json.dumps({"channel": "http://y/c", "strategy": "off"}))
    cfg = update.load_config((tmp_path / "a.json", tmp_path / "b.json", tmp_path / "none"))
    assert (cfg.channel, cfg.strategy, cfg.tries) == ("http://y/c/", "off", 2)
    (tmp_path / "b.json").write_text("{")
    with pytest.raises(update.UpdateError, match=r"b.json is not valid JSON"):
        update.load_config((tmp_path / "a.json", tmp_path / "b.json"))


def test_state_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "state/state.json"
    failure = records.Failure("3", "2026-12-01T00:00:00Z", "broken", "2")
    update.save_state(records.State(failed={"3": failure}), path)
    assert update.load_state(path) == records.State(failed={"3": failure})
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


# ---- GPT -----------------------------------------------------------------------------------


def make_gpt(path: Path, parts: list[tuple[uuid.UUID, uuid.UUID, int, int, str]],
             sectors: int = 8192) -> None:
    """A disk image with a GPT (both copies) holding `parts` (type, uuid, first, last, name)."""
    table = bytearray(128 * 128)
    for i, (ptype, puuid, first, last, name) in enumerate(parts):
        struct.pack_into("<16s16sQQQ72s", table, i * 128, ptype.bytes_le, puuid.bytes_le,
                         first, last, 0, name.encode("utf-16-le").ljust(72, b"\0"))

    def header(current: int, backup: int, entries: int) -> bytes:
        raw = bytearray(struct.pack(
            "<8sIII4xQQQQ16sQIII", b"EFI PART", 0x10000, 92, 0, current, backup, 34,
            sectors - 34, uuid.uuid4().bytes_le, entries, 128, 128, zlib.crc32(table)))
        struct.pack_into("<I", raw, 16, zlib.crc32(raw))
        return bytes(raw)

    with path.open("wb") as f:
        f.truncate(sectors * 512)
        f.seek(512)
        f.write(header(1, sectors - 1, 2))
        f.seek(2 * 512)
        f.write(table)
        f.seek((sectors - 33) * 512)
        f.write(table)
        f.seek((sectors - 1) * 512)
        f.write(header(sectors - 1, 1, sectors - 33))


def test_gpt_update_changes_uuid_and_name_in_both_tables(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    a, b = uuid.uuid4(), uuid.uuid4()
    make_gpt(disk, [(gpt.TYPE_ESP, uuid.uuid4(), 34, 999, "ESP"),
                    (gpt.TYPE_USR, a, 1000, 2999, "sonix_1"),
                    (gpt.TYPE_USR, b, 3000, 4999, "_empty")])
    new = uuid.UUID("5bb68a18-cc5b-c82a-5c7a-ff2f678701bd")
    gpt.update(disk, {3: (new, "sonix_2")})
    parts = gpt.read(disk)
    assert [(p.number, p.uuid, p.name) for p in parts[1:]] == [(2, a, "sonix_1"),
                                                               (3, new, "sonix_2")]
    assert parts[2].size == 2000 * 512 and parts[2].offset == 3000 * 512
    # The backup table says the same.
    data = bytearray(disk.read_bytes())
    backup_table = data[(8192 - 33) * 512:(8192 - 1) * 512]
    assert backup_table == data[2 * 512:34 * 512]
    fd = os.open(disk, os.O_RDONLY)
    try:
        assert gpt._read_header(fd, 8191).lba == 8191  # CRC32 of the backup header is good
    finally:
        os.close(fd)


def test_gpt_rejects_a_damaged_table(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    make_gpt(disk, [(gpt.TYPE_USR, uuid.uuid4(), 100, 199, "x")])
    with disk.open("r+b") as f:
        f.seek(2 * 512 + 40)
        f.write(b"\xff")
    with pytest.raises(gpt.GptError, match="entries have a bad CRC32"):
        gpt.read(disk)


def test_find_slots_pairs_a_and_b(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    make_gpt(tmp_path / "dev/vda", [
        (gpt.TYPE_ESP, uuid.uuid4(), 34, 999, "ESP"),
        (gpt.TYPE_USR, uuid.uuid4(), 1000, 2999, "sonix_1"),
        (gpt.TYPE_USR_VERITY, uuid.uuid4(), 3000, 3099, "sonix_1_verity"),
        (gpt.TYPE_USR, uuid.uuid4(), 3100, 5099, "_empty"),
        (gpt.TYPE_USR_VERITY, uuid.uuid4(), 5100, 5199, "_empty"),
    ])
    slots = update.find_slots({("vda", 4), ("vda", 5)}, tmp_path / "dev")
    assert (slots.booted_usr.number, slots.other_usr.number, slots.other_verity.number) == (
        4, 2, 3)
    assert slots.device(slots.other_usr) == tmp_path / "dev/vda2"
    with pytest.raises(update.UpdateError, match="is a usr partition"):
        update.find_slots({("vda", 1)}, tmp_path / "dev")


def test_usr_partitions_follow_the_mount_to_the_verity_device(tmp_path: Path) -> None:
    # A fake /sys: the device of the "/usr" mount (here: tmp_path's own file system) is a
    # device-mapper node whose slaves are two partitions of vda.
    sys = tmp_path / "sys"
    disk = sys / "devices/pci0000:00/virtio1/block/vda"
    for number in (2, 3):
        (disk / f"vda{number}").mkdir(parents=True)
        (disk / f"vda{number}/partition").write_text(f"{number}\n")
    dm = sys / "devices/virtual/block/dm-0"
    (dm / "slaves").mkdir(parents=True)
    for number in (2, 3):
        (dm / f"slaves/vda{number}").symlink_to(disk / f"vda{number}")
    st = os.stat(tmp_path)
    (sys / "dev/block").mkdir(parents=True)
    (sys / "dev/block" / f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}").symlink_to(dm)
    assert update.usr_partitions(tmp_path, sys) == {("vda", 2), ("vda", 3)}


def test_zero_fill_of_a_plain_file_writes_zeros(tmp_path: Path) -> None:
    path = tmp_path / "slot"
    path.write_bytes(b"\xff" * 10000)
    with path.open("r+b", buffering=0) as f:
        update.zero_fill(f, 100, 10000)
    data = path.read_bytes()
    assert data[:100] == b"\xff" * 100 and data[100:] == bytes(9900)


# ---- reboot-if-allowed: a reboot for something else (firmware), same strategies ------------


def strategy_config(strategy: str, window: Window | None = None) -> update.Config:
    return update.Config(name="sonix", channel="http://x/", keyrings=(), tries=2,
                         strategy=strategy, activation="auto", window=window,
                         fleet_lock_url="http://fleetlock" if strategy == "fleet-lock" else "",
                         fleet_lock_group="default")


@pytest.fixture
def reboots(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The commands the agent runs (instead of running them); the state is not written."""
    commands: list[list[str]] = []

    def fake_run(argv: list[str], **_: object) -> None:
        commands.append(argv)

    monkeypatch.setattr(common, "run", fake_run)
    monkeypatch.setattr(update, "save_state", lambda state, path=None: None)
    return commands


def request(ledger: update.Ledger) -> records.RebootRequest:
    record = ledger.state.reboot_request
    assert record is not None
    return record


def test_reboot_if_allowed_immediate_reboots_through_the_firmware(
    reboots: list[list[str]],
) -> None:
    ledger = update.Ledger(records.State())
    assert update.cmd_reboot_if_allowed(strategy_config("immediate"), ledger, "firmware") == 0
    # A firmware reboot, never soft-reboot or kexec (they would skip the firmware).
    assert reboots == [["systemctl", "--no-block", "reboot"]]
    assert request(ledger).reason == "firmware"
    assert request(ledger).decision == "reboot now (strategy immediate)"
    assert ledger.state.last_check is None  # a release check did not happen


def test_reboot_if_allowed_off_defers(reboots: list[list[str]]) -> None:
    ledger = update.Ledger(records.State())
    assert update.cmd_reboot_if_allowed(strategy_config("off"), ledger, "firmware") == 0
    assert reboots == []
    assert request(ledger).decision == "deferred (strategy off)"


@pytest.mark.parametrize("inside", [True, False])
def test_reboot_if_allowed_in_the_maintenance_window_only(
    reboots: list[list[str]], monkeypatch: pytest.MonkeyPatch, inside: bool,
) -> None:
    window = Window(days=("Sat",), start="03:00", minutes=60, time_zone="UTC")
    monkeypatch.setattr(update, "in_window", lambda w: (inside, "inside" if inside else "outside"))
    ledger = update.Ledger(records.State())
    cfg = strategy_config("maintenance-window", window)
    assert update.cmd_reboot_if_allowed(cfg, ledger, "firmware") == 0
    assert reboots == ([["systemctl", "--no-block", "reboot"]] if inside else [])
    decision = request(ledger).decision
    assert decision == ("reboot now (strategy maintenance-window)" if inside
                        else "reboot deferred: outside")


@pytest.mark.parametrize("granted", [True, False])
def test_reboot_if_allowed_takes_a_fleet_lock_slot(
    reboots: list[list[str]], monkeypatch: pytest.MonkeyPatch, granted: bool,
) -> None:
    asked: list[str] = []

    def fake_fleet_lock(cfg: update.Config, endpoint: str) -> bool:
        asked.append(endpoint)
        return granted

    monkeypatch.setattr(update, "fleet_lock", fake_fleet_lock)
    ledger = update.Ledger(records.State())
    assert update.cmd_reboot_if_allowed(strategy_config("fleet-lock"), ledger, "firmware") == 0
    # The slot is released by steady-state after the next good boot, as for a release.
    assert asked == ["pre-reboot"]
    assert reboots == ([["systemctl", "--no-block", "reboot"]] if granted else [])


def test_reboot_if_allowed_reports_a_broken_strategy(reboots: list[list[str]]) -> None:
    ledger = update.Ledger(records.State())
    cfg = strategy_config("maintenance-window")  # no window
    assert update.cmd_reboot_if_allowed(cfg, ledger, "firmware") == 1
    assert reboots == []
    assert request(ledger).decision.startswith("error: ")


def test_reboot_if_allowed_command_line(
    reboots: list[list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setattr(update, "load_config", lambda: strategy_config("immediate"))
    monkeypatch.setattr(update, "load_state", lambda: records.State())
    seen: list[str] = []
    original = update.cmd_reboot_if_allowed
    def recording(cfg: update.Config, ledger: update.Ledger, reason: str) -> int:
        seen.append(reason)
        return original(cfg, ledger, reason)

    monkeypatch.setattr(update, "cmd_reboot_if_allowed", recording)
    assert update.main(["update", "reboot-if-allowed", "--reason", "firmware"]) == 0
    assert update.main(["update", "reboot-if-allowed"]) == 0
    assert seen == ["firmware", "unspecified"]
    assert update.main(["update", "reboot-if-allowed", "--reason"]) == 2
    assert update.main(["update", "reboot-if-allowed", "firmware"]) == 2
    assert len(reboots) == 2
