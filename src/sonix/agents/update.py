"""sonix-update: the update agent on the machine (standard library only).

    sonix update run            check the channel, install a newer release into the inactive
                                usr slot, activate it as the strategy allows (timer)
    sonix update check          say what the channel offers, change nothing
    sonix update assess         at every boot: notice a rollback, record the failed release
    sonix update steady-state   after boot-complete.target: the booted release is good
    sonix update reboot-if-allowed [--reason WHY]
                                something else needs a reboot (firmware): reboot now if the
                                strategy allows it (the same decision as for a release)
    sonix status [--json]       booted release, other slot, channel, last check, rollbacks

The channel layout and the order of checks are in docs/updates.md. Nothing is written before
the signature of SHA256SUMS and the hash of the manifest are good; the slot is written and
checked before the partition table and the boot entry change, and the boot entry appears last
(atomic rename), so a power cut at any point leaves a machine that boots a good release.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from . import gpt, uki
from .versions import compare_versions, version_key

CONFIG = Path("/usr/lib/sonix/update.json")  # from the configuration (modules/services/updates.nix)
CONFIG_OVERRIDE = Path("/etc/sonix/update.json")  # machine-local (provisioning, the admin)
STATE = Path("/var/lib/sonix-update/state.json")
HEALTH_FAILURES = Path("/var/lib/sonix/health")  # failed-<version>: the check (health.nix)
CHUNK = 1 << 20
EMPTY_LABEL = "_empty"


class UpdateError(Exception):
    """A failure the agent reports and recovers from (the next run tries again)."""


# ------------------------------------------------------------------------------------------
# Logging: one line per event, with a syslog priority prefix that journald understands.


def log(message: str, priority: int = 6) -> None:
    print(f"<{priority}>{message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    log(message, 4)


# ------------------------------------------------------------------------------------------
# Configuration and state


@dataclass(frozen=True)
class Window:
    days: tuple[str, ...]  # Mon … Sun; empty = every day
    start: str  # HH:MM
    minutes: int
    time_zone: str


@dataclass(frozen=True)
class Config:
    name: str
    channel: str
    keyrings: tuple[Path, ...]
    tries: int
    strategy: str  # immediate | maintenance-window | fleet-lock | off
    activation: str  # auto | kexec | reboot
    window: Window | None
    fleet_lock_url: str
    fleet_lock_group: str


def load_config(paths: tuple[Path, ...] = (CONFIG, CONFIG_OVERRIDE)) -> Config:
    raw: dict[str, Any] = {}
    for path in paths:
        if path.is_file():
            try:
                raw.update(json.loads(path.read_text()))
            except json.JSONDecodeError as e:
                raise UpdateError(f"{path} is not valid JSON: {e}") from e
    window = raw.get("window")
    return Config(
        name=raw["name"],
        channel=raw.get("channel", "").rstrip("/") + "/",
        keyrings=tuple(Path(k) for k in raw.get("keyrings", [])),
        tries=int(raw.get("tries", 3)),
        strategy=raw.get("strategy", "immediate"),
        activation=raw.get("activation", "auto"),
        window=Window(
            tuple(window.get("days", [])), window.get("start", "00:00"),
            int(window.get("minutes", 60)), window.get("timeZone", "UTC"),
        ) if window else None,
        fleet_lock_url=raw.get("fleetLock", {}).get("url", "").rstrip("/"),
        fleet_lock_group=raw.get("fleetLock", {}).get("group", "default"),
    )


def load_state(path: Path = STATE) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(path.read_text())
        return state
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError:
        warn(f"{path} is damaged; starting with an empty state")
        return {}


def save_state(state: dict[str, Any], path: Path = STATE) -> None:
    """Atomically: a power cut leaves the old or the new state, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as f:
        json.dump(state, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------
# Versions: systemd's order (versions.py, shared with `sonix release`)


def newer(a: str, b: str) -> bool:
    return compare_versions(a, b) > 0


# ------------------------------------------------------------------------------------------
# The running system: booted release, disk and slots, ESP and boot entries


def booted_version(os_release: Path = Path("/usr/lib/os-release")) -> str:
    for line in os_release.read_text().splitlines():
        if line.startswith("IMAGE_VERSION="):
            return line.split("=", 1)[1].strip().strip('"')
    raise UpdateError(f"{os_release} has no IMAGE_VERSION")


def usr_partitions(usr: Path = Path("/usr"), sys: Path = Path("/sys")) -> set[tuple[str, int]]:
    """(disk, partition number) of the partitions behind the mounted /usr: the dm-verity
    device's data and hash partitions. Read from the mount, not from `usrhash=`, because after
    a soft-reboot the kernel command line still names the release booted before."""
    st = os.stat(usr)
    device = (sys / "dev/block" / f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}").resolve()
    below = sorted((device / "slaves").iterdir()) if (device / "slaves").is_dir() else [device]
    found = set()
    for part in below:
        part = part.resolve()
        if (part / "partition").is_file():
            found.add((part.parent.name, int((part / "partition").read_text())))
    if not found:
        raise UpdateError(f"cannot tell which partition /usr is mounted from ({device})")
    return found


@dataclass(frozen=True)
class Slots:
    disk: Path
    booted_usr: gpt.Partition
    booted_verity: gpt.Partition
    other_usr: gpt.Partition
    other_verity: gpt.Partition

    def device(self, partition: gpt.Partition) -> Path:
        disk = str(self.disk)
        return Path(f"{disk}p{partition.number}" if disk[-1].isdigit() else
                    f"{disk}{partition.number}")


def find_slots(booted: set[tuple[str, int]], dev: Path = Path("/dev")) -> Slots:
    """The disk with the booted usr partition (`booted`: see usr_partitions) and its two usr
    slots; slots pair up in table order (usr A, verity A, usr B, verity B)."""
    for disk_name in sorted({name for name, _ in booted}):
        disk = dev / disk_name
        try:
            table = gpt.read(disk)
        except (OSError, gpt.GptError) as e:
            raise UpdateError(f"cannot read the partition table of {disk}: {e}") from e
        usr = [p for p in table if p.type == gpt.TYPE_USR]
        verity = [p for p in table if p.type == gpt.TYPE_USR_VERITY]
        index = next((i for i, p in enumerate(usr) if (disk_name, p.number) in booted), None)
        if index is None:
            continue
        if len(usr) != 2 or len(verity) != 2:
            raise UpdateError(f"{disk} has {len(usr)} usr and {len(verity)} usr-verity "
                              "partitions; A/B updates need two of each")
        return Slots(disk, usr[index], verity[index], usr[1 - index], verity[1 - index])
    raise UpdateError(f"none of {sorted(booted)} is a usr partition")


def find_esp() -> Path:
    for candidate in (Path("/efi"), Path("/boot")):
        if (candidate / "EFI").is_dir():  # is_dir() also triggers the automount
            return candidate
    raise UpdateError("the ESP is not mounted at /efi or /boot")


@dataclass(frozen=True)
class Entry:
    path: Path
    version: str
    left: int | None  # tries left; None: no counter (blessed, or never counted)
    done: int

    @property
    def bad(self) -> bool:
        return self.left == 0


def boot_entries(esp: Path, name: str) -> list[Entry]:
    pattern = re.compile(rf"^{re.escape(name)}_(.+?)(?:\+(\d+)(?:-(\d+))?)?\.efi$")
    entries = []
    directory = esp / "EFI/Linux"
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        match = pattern.match(path.name)
        if match:
            left = int(match[2]) if match[2] is not None else None
            entries.append(Entry(path, match[1], left, int(match[3] or 0)))
    return entries


# ------------------------------------------------------------------------------------------
# The channel


def fetch(url: str, timeout: float = 60) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data: bytes = response.read()
            return data
    except (urllib.error.URLError, OSError) as e:
        raise UpdateError(f"cannot download {url}: {e}") from e


def verified_sums(cfg: Config, workdir: Path) -> dict[str, str]:
    """SHA256SUMS of the channel, after gpgv accepted its signature: file name → sha256."""
    sums, signature = workdir / "SHA256SUMS", workdir / "SHA256SUMS.gpg"
    sums.write_bytes(fetch(cfg.channel + "SHA256SUMS"))
    signature.write_bytes(fetch(cfg.channel + "SHA256SUMS.gpg"))
    keyrings = [arg for k in cfg.keyrings for arg in ("--keyring", str(k))]
    result = subprocess.run(
        ["gpgv", *keyrings, str(signature), str(sums)], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        keys = ", ".join(map(str, cfg.keyrings))
        raise UpdateError("the channel's SHA256SUMS signature is not valid for the trusted "
                          f"keys ({keys}); nothing installed:\n{result.stderr.strip()}")
    table = {}
    for line in sums.read_text().splitlines():
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](\S+)", line.strip())
        if match:
            table[match[2]] = match[1]
    return table


def release_versions(sums: dict[str, str], name: str) -> list[str]:
    pattern = re.compile(rf"^{re.escape(name)}_(.+)\.json$")
    found = [m[1] for f in sums if (m := pattern.match(f))]
    return sorted(found, key=version_key)


def fetch_manifest(cfg: Config, sums: dict[str, str], version: str) -> dict[str, Any]:
    file = f"{cfg.name}_{version}.json"
    data = fetch(cfg.channel + file)
    if hashlib.sha256(data).hexdigest() != sums[file]:
        raise UpdateError(f"{file} does not match SHA256SUMS; nothing installed")
    manifest: dict[str, Any] = json.loads(data)
    for key in ("uki", "usr", "verity"):
        name = manifest["files"][key]["name"]
        if sums.get(name) != manifest["files"][key]["sha256"]:
            raise UpdateError(f"{name} is not in SHA256SUMS with the manifest's hash")
    return manifest


def stream(url: str, out: BinaryIO, expect_size: int, expect_sha256: str) -> None:
    """Download url into out while hashing; fail on a size or hash mismatch."""
    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > expect_size:
                    raise UpdateError(f"{url} is larger than the manifest says ({expect_size})")
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as e:
        raise UpdateError(f"download of {url} failed: {e}") from e
    if size != expect_size or digest.hexdigest() != expect_sha256:
        raise UpdateError(f"{url}: {size} bytes with sha256 {digest.hexdigest()}, the manifest "
                          f"says {expect_size} bytes with {expect_sha256}; not installed")


# ------------------------------------------------------------------------------------------
# Installing a release


def checkpoint(step: str) -> None:
    """Fault injection for the power-cut tests (tests/vm/test_updates.py): with
    SONIX_UPDATE_STOP_AT=<step> in its environment the agent says where it is in
    /run/sonix-update/stopped-at and waits there, to be killed with the whole machine."""
    if os.environ.get("SONIX_UPDATE_STOP_AT") == step:
        marker = Path("/run/sonix-update/stopped-at")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(step + "\n")
        log(f"stopped at {step} (SONIX_UPDATE_STOP_AT)", 4)
        while True:
            time.sleep(3600)


BLKZEROOUT = 0x127F  # _IO(0x12, 127): zero a byte range of a block device


def zero_fill(out: BinaryIO, start: int, end: int) -> None:
    """Zeros from start to end: BLKZEROOUT on a block device (the disk or hypervisor zeroes it
    without the data crossing the CPU: hundreds of MiB in a moment), written zeros otherwise."""
    if end <= start:
        return
    try:
        fcntl.ioctl(out.fileno(), BLKZEROOUT, struct.pack("QQ", start, end - start))
        return
    except OSError:
        pass  # not a block device, or no write-zeroes support
    out.seek(start)
    zeros, left = bytes(CHUNK), end - start
    while left > 0:
        left -= out.write(zeros[: min(left, CHUNK)])


def write_slot(cfg: Config, device: Path, part: gpt.Partition, spec: dict[str, Any]) -> None:
    """The release file, then zeros to the end of the slot (verity hashes all of it)."""
    if spec["slot_size"] != part.size:
        raise UpdateError(
            f"{spec['name']} needs a {spec['slot_size']}-byte slot, {device} has {part.size} "
            "bytes: the release changed image.usrSlotSize/usrVeritySlotSize, which an "
            "installed machine cannot follow; reinstall or keep the slot sizes")
    with device.open("r+b", buffering=0) as out:
        stream(cfg.channel + spec["name"], out, spec["size"], spec["sha256"])
        zero_fill(out, spec["size"], part.size)
        os.fsync(out.fileno())
    # Read back what the disk now holds.
    digest = hashlib.sha256()
    with device.open("rb") as f:
        left = spec["size"]
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    if digest.hexdigest() != spec["sha256"]:
        raise UpdateError(f"{device} does not read back what was written; not installed")


def install(cfg: Config, state: dict[str, Any], manifest: dict[str, Any]) -> Entry:
    version, files = manifest["version"], manifest["files"]
    slots = find_slots(usr_partitions())
    esp = find_esp()
    booted = booted_version()
    log(f"installing {cfg.name} {version} into {slots.device(slots.other_usr)}")

    # 1. Nothing may boot from the slot while it is rewritten: drop the boot entries of every
    #    release but the booted one, and mark the slot empty.
    for entry in boot_entries(esp, cfg.name):
        if entry.version != booted:
            entry.path.unlink()
            log(f"removed boot entry {entry.path.name} (its slot is about to be rewritten)")
    for partial in (esp / "EFI/Linux").glob(".*.efi.partial"):  # from an interrupted install
        partial.unlink()
    sync_dir(esp / "EFI/Linux")
    gpt.update(slots.disk, {
        slots.other_usr.number: (slots.other_usr.uuid, EMPTY_LABEL),
        slots.other_verity.number: (slots.other_verity.uuid, EMPTY_LABEL),
    })  # fmt: skip

    # 2. The slot's data and hash tree, checked.
    checkpoint("slot-emptied")
    write_slot(cfg, slots.device(slots.other_usr), slots.other_usr, files["usr"])
    checkpoint("usr-written")
    write_slot(cfg, slots.device(slots.other_verity), slots.other_verity, files["verity"])

    # 3. The UKI next to its final place, checked.
    directory = esp / "EFI/Linux"
    partial = directory / f".{cfg.name}_{version}.efi.partial"
    with partial.open("wb") as out:
        stream(cfg.channel + files["uki"]["name"], out, files["uki"]["size"],
               files["uki"]["sha256"])
        out.flush()
        os.fsync(out.fileno())

    # 4. The partition table: the UUIDs that the new usrhash= names, labels with the version.
    gpt.update(slots.disk, {
        slots.other_usr.number: (uuid.UUID(files["usr"]["partition_uuid"]),
                                 files["usr"]["label"]),
        slots.other_verity.number: (uuid.UUID(files["verity"]["partition_uuid"]),
                                    files["verity"]["label"]),
    })  # fmt: skip
    checkpoint("table-updated")

    # 5. Last, the boot entry, with a boot counter: from here on the new release boots.
    counter = f"+{cfg.tries}" if cfg.tries > 0 else ""
    final = directory / f"{cfg.name}_{version}{counter}.efi"
    durable_rename(partial, final)
    checkpoint("entry-installed")
    state["pending"] = {"version": version, "installed": now(), "entry": final.name}
    save_state(state)
    log(f"installed {cfg.name} {version} as {final.name}")
    return Entry(final, version, cfg.tries if cfg.tries > 0 else None, 0)


def durable_rename(source: Path, target: Path) -> None:
    """Rename on the ESP so that a power cut keeps the new name *and* the file's size. On vfat
    the size lives in the directory entry, and a rename makes a new entry that is written only
    with the file's inode: fsync the renamed file, then the directory (a test saw a 0-byte
    entry after a power cut with only the directory synced)."""
    os.replace(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    sync_dir(target.parent)


def sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------
# Reboot strategies and activation


def in_window(window: Window, moment: dt.datetime | None = None) -> tuple[bool, str]:
    """Whether `moment` (default now) is inside the maintenance window, and a description."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(window.time_zone)
    local = (moment or dt.datetime.now(dt.UTC)).astimezone(zone)
    hour, minute = (int(x) for x in window.start.split(":"))
    days = {d[:3].lower() for d in window.days}
    # The window that started today or yesterday (a window may cross midnight).
    for back in (0, 1):
        day = local.date() - dt.timedelta(days=back)
        start = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
        if days and start.strftime("%a").lower() not in days:
            continue
        if start <= local < start + dt.timedelta(minutes=window.minutes):
            return True, f"inside the maintenance window that started {start.isoformat()}"
    return False, (f"outside the maintenance window ({'/'.join(window.days) or 'daily'} "
                   f"{window.start} for {window.minutes} min, {window.time_zone})")


def fleet_lock(cfg: Config, state: dict[str, Any], endpoint: str) -> bool:
    """POST a FleetLock request (as Zincati does); True when the server says yes."""
    machine_id = Path("/etc/machine-id").read_text().strip()
    body = json.dumps({"client_params": {"id": machine_id, "group": cfg.fleet_lock_group}})
    request = urllib.request.Request(
        f"{cfg.fleet_lock_url}/v1/{endpoint}", data=body.encode(), method="POST",
        headers={"fleet-lock-protocol": "true", "content-type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            ok: bool = response.status == 200
            return ok
    except urllib.error.HTTPError as e:
        log(f"FleetLock {endpoint}: {e.code} {e.read().decode(errors='replace')[:200]}")
        return False
    except (urllib.error.URLError, OSError) as e:
        warn(f"FleetLock server {cfg.fleet_lock_url} unreachable: {e}")
        return False


def may_reboot(cfg: Config, state: dict[str, Any],
               record: dict[str, Any] | None = None) -> bool:
    """Whether the strategy allows a reboot now; the decision is noted in `record` (default:
    the state's last_check)."""
    if record is None:
        record = state.setdefault("last_check", {})
    if cfg.strategy == "immediate":
        return True
    if cfg.strategy == "off":
        log("strategy off: the new release starts at the next reboot")
        return False
    if cfg.strategy == "maintenance-window":
        if cfg.window is None:
            raise UpdateError("strategy maintenance-window without a window")
        inside, why = in_window(cfg.window)
        log(f"reboot {'now' if inside else 'deferred'}: {why}")
        record["decision"] = f"reboot {'now' if inside else 'deferred'}: {why}"
        return inside
    if cfg.strategy == "fleet-lock":
        granted = fleet_lock(cfg, state, "pre-reboot")
        log("FleetLock: reboot slot " + ("granted" if granted else "not granted; waiting"))
        record["decision"] = "reboot slot " + ("granted" if granted else "refused")
        return granted
    raise UpdateError(f"unknown strategy {cfg.strategy!r}")


TRIAL = Path("/var/lib/sonix-update/trial")  # a release activated without systemd-boot
KEXEC = Path("/usr/sbin/kexec")
KEXEC_LOADED = Path("/sys/kernel/kexec_loaded")  # the running kernel can kexec


def without_usrhash(cmdline: str) -> str:
    return re.sub(r"\s*\busrhash=\S+", "", cmdline).strip()


def emulated_cpu() -> bool:
    """True on a fully emulated CPU (QEMU without KVM: systemd-detect-virt says `qemu`; with
    KVM it says `kvm`). There a kexec'd kernel starts several times slower than one started by
    the firmware (measured: unpacking the initrd 54.7 s after kexec, 3.9 s after a firmware
    boot; docs/benchmarks/updates.md), while the firmware itself takes seconds."""
    try:
        detected = subprocess.run(["systemd-detect-virt", "--vm"], capture_output=True,
                                  text=True, check=False).stdout.strip()
    except OSError:
        return False
    return detected == "qemu"


def activation_method(cfg: Config, esp: Path, booted: str, new: Entry) -> tuple[str, str]:
    """The cheapest activation that is correct, and why:
    - soft-reboot when the kernel, the initrd and the rest of the command line are the same
      (only /usr changed: userspace restarts on the running kernel with the new /usr);
    - kexec when they differ and kexec-tools is there (the firmware is skipped), except on an
      emulated CPU, where a firmware reboot is faster (updates.activation = kexec insists);
    - reboot otherwise, or when updates.activation = reboot."""
    if cfg.activation == "reboot":
        return "reboot", "configured (updates.activation = reboot)"
    current = next((e for e in boot_entries(esp, cfg.name) if e.version == booted), None)
    if current is None:
        return "reboot", "the booted release has no boot entry to compare with"
    if (uki.boot_digests(current.path) == uki.boot_digests(new.path)
            and without_usrhash(uki.cmdline(current.path)) == without_usrhash(
                uki.cmdline(new.path))):
        return "soft-reboot", "kernel, initrd and command line unchanged: only /usr changed"
    if not KEXEC.exists():
        return "reboot", "the kernel or initrd changed (no kexec-tools in the image)"
    if not KEXEC_LOADED.exists():
        return "reboot", "the kernel or initrd changed (the running kernel cannot kexec)"
    if cfg.activation == "kexec":
        return "kexec", "the kernel or initrd changed (updates.activation = kexec)"
    if emulated_cpu():
        return "reboot", ("the kernel or initrd changed; on an emulated CPU a kexec'd kernel "
                          "starts slower than the firmware boots one")
    return "kexec", "the kernel or initrd changed; kexec skips the firmware"


def prepare_soft_reboot(entry: Entry) -> None:
    """/run/nextroot: the root file system with the new release's /usr (its dm-verity device,
    opened with the root hash from the new UKI) mounted on it. systemctl soft-reboot switches
    into it; the kernel and its command line stay (the next full boot reads the new UKI)."""
    usrhash = re.search(r"\busrhash=([0-9a-f]{64})\b", uki.cmdline(entry.path))
    if not usrhash:
        raise UpdateError(f"{entry.path} has no usrhash= on its command line")
    slots = find_slots(usr_partitions())
    name = f"usr-{entry.version}"
    nextroot = Path("/run/nextroot")
    subprocess.run(["/usr/lib/systemd/systemd-veritysetup", "attach", name,
                    str(slots.device(slots.other_usr)), str(slots.device(slots.other_verity)),
                    usrhash[1]], check=True)
    nextroot.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", "/", str(nextroot)], check=True)
    subprocess.run(["mount", "-t", "erofs", "-o", "ro", f"/dev/mapper/{name}",
                    str(nextroot / "usr")], check=True)


def prepare_kexec(entry: Entry) -> None:
    """Load the new UKI's kernel, initrd and command line for `systemctl kexec`."""
    work = Path("/run/sonix-update/kexec")
    work.mkdir(parents=True, exist_ok=True)
    (work / "linux").write_bytes(uki.section_bytes(entry.path, ".linux"))
    (work / "initrd").write_bytes(uki.section_bytes(entry.path, ".initrd"))
    # --kexec-file-syscall: the kernel checks the new kernel's signature under lockdown.
    subprocess.run([str(KEXEC), "--kexec-file-syscall", "--load", str(work / "linux"),
                    f"--initrd={work / 'initrd'}",
                    f"--command-line={uki.cmdline(entry.path)}"], check=True)


def activate(cfg: Config, state: dict[str, Any], entry: Entry) -> None:
    esp = find_esp()
    method, why = activation_method(cfg, esp, booted_version(), entry)
    log(f"activating {cfg.name} {entry.version} by {method}: {why}")
    pending = state.setdefault("pending", {"version": entry.version, "installed": "?",
                                           "entry": entry.path.name})
    pending["activation"] = {"method": method, "why": why, "at": now()}
    if method != "reboot":
        # systemd-boot does not count this boot: the agent assesses it (cmd_steady_state
        # blesses the entry; a failed health check reboots into systemd-boot's own trial).
        TRIAL.parent.mkdir(parents=True, exist_ok=True)
        TRIAL.write_text(entry.version + "\n")
        try:
            (prepare_soft_reboot if method == "soft-reboot" else prepare_kexec)(entry)
        except (subprocess.CalledProcessError, OSError, uki.NotAUki) as e:
            TRIAL.unlink(missing_ok=True)
            warn(f"{method} preparation failed ({e}); activating by reboot instead")
            method = "reboot"
            pending["activation"]["method"] = method
    save_state(state)
    subprocess.run(["systemctl", "--no-block", method], check=True)


# ------------------------------------------------------------------------------------------
# Commands


def cmd_run(cfg: Config, state: dict[str, Any], install_allowed: bool = True) -> int:
    booted = booted_version()
    state["last_check"] = {"at": now(), "booted": booted}
    try:
        esp = find_esp()
        pending = next((e for e in boot_entries(esp, cfg.name)
                        if newer(e.version, booted) and not e.bad), None)
        if pending is None:
            with tempfile.TemporaryDirectory(prefix="sonix-update.") as tmp:
                sums = verified_sums(cfg, Path(tmp))
            failed = state.get("failed", {})
            published = release_versions(sums, cfg.name)
            candidates = [v for v in published if newer(v, booted) and v not in failed]
            skipped = [v for v in published if v in failed]
            if skipped:
                log(f"not installing release(s) that failed here before: {', '.join(skipped)}")
            if not candidates:
                state["last_check"]["result"] = f"up to date ({booted})"
                log(f"up to date: {cfg.name} {booted} is the newest usable release")
                return 0
            version = candidates[-1]
            state["last_check"]["result"] = f"found {version}"
            log(f"found {cfg.name} {version} (booted {booted})")
            if not install_allowed:
                return 0
            manifest = fetch_manifest(cfg, sums, version)
            pending = install(cfg, state, manifest)
            state["last_check"]["result"] = f"installed {version}"
        else:
            state["last_check"]["result"] = f"{pending.version} installed, not yet active"
        if install_allowed and may_reboot(cfg, state):
            save_state(state)
            activate(cfg, state, pending)
    except UpdateError as e:
        state["last_check"]["result"] = f"error: {e}"
        log(str(e), 3)
        save_state(state)
        return 1
    save_state(state)
    return 0


def cmd_assess(cfg: Config, state: dict[str, Any]) -> int:
    """At boot: a newer release whose tries are used up was rolled back from."""
    booted = booted_version()
    esp = find_esp()
    for entry in boot_entries(esp, cfg.name):
        if entry.bad and newer(entry.version, booted):
            failure = HEALTH_FAILURES / f"failed-{entry.version}"
            reason = (f"health check {failure.read_text().strip()} failed" if failure.is_file()
                      else f"it did not reach boot-complete.target in {entry.done} tries")
            record = {"version": entry.version, "at": now(), "reason": reason,
                      "rolled_back_to": booted}
            state.setdefault("failed", {})[entry.version] = record
            state["last_rollback"] = record
            if state.get("pending", {}).get("version") == entry.version:
                del state["pending"]
            entry.path.unlink()
            log(f"rolled back from {cfg.name} {entry.version} to {booted}: {reason}; "
                f"{entry.version} will not be installed again", 3)
    state["booted"] = {"version": booted, "at": now()}
    save_state(state)
    return 0


def cmd_steady_state(cfg: Config, state: dict[str, Any]) -> int:
    """After boot-complete.target: the booted release is good (and blessed)."""
    booted = booted_version()
    if TRIAL.is_file() and TRIAL.read_text().strip() == booted:
        # Activated by soft-reboot or kexec: systemd-boot did not count this boot, so the
        # entry is blessed here, as systemd-bless-boot would have (its counter dropped).
        for entry in boot_entries(find_esp(), cfg.name):
            if entry.version == booted and entry.left is not None:
                blessed = entry.path.with_name(f"{cfg.name}_{booted}.efi")
                durable_rename(entry.path, blessed)
                log(f"blessed {blessed.name} (activated without a firmware boot)")
        TRIAL.unlink()
    if state.get("pending", {}).get("version") == booted:
        log(f"{cfg.name} {booted} is good: update complete")
        del state["pending"]
    state["good"] = {"version": booted, "at": now()}
    save_state(state)
    if cfg.strategy == "fleet-lock":
        # Until the server confirms, fail: the unit retries (Restart=on-failure).
        if not fleet_lock(cfg, state, "steady-state"):
            return 1
        log("FleetLock: reboot slot released")
    return 0


def cmd_reboot_if_allowed(cfg: Config, state: dict[str, Any], reason: str) -> int:
    """Another component needs a reboot (fwupd after a firmware update: hardware.fwupd): reboot
    through the firmware if updates.strategy allows it now, else leave it for later (the
    caller asks again, e.g. at the next window). A release that is installed and waiting is
    activated by the same reboot, which is what its strategy would have done too."""
    record: dict[str, Any] = {"at": now(), "reason": reason}
    state["reboot_request"] = record
    try:
        allowed = may_reboot(cfg, state, record)
    except UpdateError as e:
        record["decision"] = f"error: {e}"
        log(f"reboot for {reason}: {e}", 3)
        save_state(state)
        return 1
    if not allowed:
        record.setdefault("decision", f"deferred (strategy {cfg.strategy})")
        log(f"{reason} needs a reboot; not now: {record['decision']}")
        save_state(state)
        return 0
    record["decision"] = f"reboot now (strategy {cfg.strategy})"
    save_state(state)
    log(f"rebooting for {reason} (strategy {cfg.strategy})")
    # Always through the firmware: what a firmware update waits for happens there (a
    # soft-reboot or kexec would skip it).
    subprocess.run(["systemctl", "--no-block", "reboot"], check=True)
    return 0


def status(cfg: Config, state: dict[str, Any]) -> dict[str, Any]:
    booted = booted_version()
    report: dict[str, Any] = {"booted": booted, "channel": cfg.channel,
                              "strategy": cfg.strategy}
    try:
        slots = find_slots(usr_partitions())
        report["booted_slot"] = {"device": str(slots.device(slots.booted_usr)),
                                 "label": slots.booted_usr.name}
        report["other_slot"] = {"device": str(slots.device(slots.other_usr)),
                                "label": slots.other_usr.name}
        report["entries"] = [e.path.name for e in boot_entries(find_esp(), cfg.name)]
    except (UpdateError, OSError) as e:
        report["slots_error"] = str(e)
    for key in ("last_check", "pending", "good", "last_rollback", "failed", "reboot_request"):
        if key in state:
            report[key] = state[key]
    return report


def print_status(report: dict[str, Any]) -> None:
    rows = [("booted", f"{report['booted']}"
                       + (f" ({report['booted_slot']['device']})" if "booted_slot" in report
                          else ""))]
    if "other_slot" in report:
        rows.append(("other slot", f"{report['other_slot']['label']} "
                                   f"({report['other_slot']['device']})"))
    rows.append(("channel", f"{report['channel']} (strategy {report['strategy']})"))
    check = report.get("last_check")
    rows.append(("last check", f"{check['at']}: {check.get('result', '?')}" if check
                 else "never"))
    if "pending" in report:
        rows.append(("pending", f"{report['pending']['version']} (installed "
                                f"{report['pending']['installed']})"))
    rollback = report.get("last_rollback")
    rows.append(("last rollback", f"{rollback['at']}: from {rollback['version']} to "
                                  f"{rollback['rolled_back_to']}: {rollback['reason']}"
                 if rollback else "none"))
    if report.get("failed"):
        rows.append(("never again", ", ".join(sorted(report["failed"], key=version_key))))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key + ':':<{width + 1}} {value}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["status"]:
        cfg, state = load_config(), load_state()
        report = status(cfg, state)
        if "--json" in argv:
            print(json.dumps(report, indent=2, sort_keys=True))
        else:
            print_status(report)
        return 0
    if argv[:1] != ["update"] or len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    verb = argv[1]
    try:
        cfg, state = load_config(), load_state()
    except (UpdateError, KeyError) as e:
        log(f"configuration: {e}", 3)
        return 1
    if verb == "run":
        return cmd_run(cfg, state)
    if verb == "check":
        return cmd_run(cfg, state, install_allowed=False)
    if verb == "assess":
        return cmd_assess(cfg, state)
    if verb == "steady-state":
        return cmd_steady_state(cfg, state)
    if verb == "reboot-if-allowed":
        options = argv[2:]
        if options and not (len(options) == 2 and options[0] == "--reason"):
            print(__doc__, file=sys.stderr)
            return 2
        return cmd_reboot_if_allowed(cfg, state, options[1] if options else "unspecified")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
