"""The update agent under faults and hostile channels (issue 14): a whole `sonix update run`
against a real HTTP server on loopback, with the machine's disk, ESP and /var as files in a
temporary directory (a GPT image, its partitions as files, an ESP directory), and the faults
injected one at a time: a full ESP and a full /var (a small tmpfs when the tests run as root,
an injected ENOSPC otherwise), a truncated download, a server that trickles, a replayed and an
expired channel, an old channel without a serial, a malformed UKI and a failed state write;
and on an image built with Secure Boot, a UKI that the db certificate does not verify.
After each one the on-disk state is checked: the state file, the boot entries, the partition
table, and that no temporary file is left. gpgv is replaced by the fake clearsign of
test_release's FakeSigner; tests/integration/test_release_channel.py runs the real one."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import hashlib
import http.server
import json
import os
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from test_agent_update import make_gpt
from test_release import USR_SLOT, VERITY_SLOT, FakeSigner, fake_image
from uki_fakes import fake_uki

from sonix.agents import common, gpt, records, uki, update
from sonix.release import channel

SECTOR = 512
USR_SECTORS, VERITY_SECTORS = USR_SLOT // SECTOR, VERITY_SLOT // SECTOR


# ---- the machine -----------------------------------------------------------------------------


@dataclass
class Machine:
    root: Path
    esp: Path
    disk: Path
    state_path: Path
    commands: list[list[str]] = field(default_factory=list)

    @property
    def entries(self) -> list[str]:
        return sorted(p.name for p in (self.esp / "EFI/Linux").iterdir())

    def table(self) -> list[tuple[int, str]]:
        return [(p.number, p.name) for p in gpt.read(self.disk)]

    def state(self) -> records.State:
        return update.load_state(self.state_path)

    def state_files(self) -> list[str]:
        return sorted(p.name for p in self.state_path.parent.iterdir())

    def ledger(self) -> update.Ledger:
        return update.Ledger(self.state(), self.state_path)


def config(strategy: str = "immediate", **changes: Any) -> update.Config:
    cfg = update.Config(name="sonix", channel="http://unused/", keyrings=(), tries=3,
                        strategy=strategy, activation="reboot", window=None,
                        fleet_lock_url="", fleet_lock_group="default")
    return replace(cfg, **changes)


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    """Release 1 booted from slot A of a GPT disk image; slot B's partitions are files in
    dev/ (vda4, vda5); the ESP holds sonix_1.efi; commands (systemctl) are recorded."""
    dev, esp = tmp_path / "dev", tmp_path / "esp"
    dev.mkdir()
    (esp / "EFI/Linux").mkdir(parents=True)
    fake_uki(esp / "EFI/Linux/sonix_1.efi", "rw usrhash=" + "1" * 64)
    first = 100
    parts = [(gpt.TYPE_ESP, uuid.uuid4(), 34, first - 1, "ESP")]
    for label in ("sonix_1", "_empty"):
        parts.append((gpt.TYPE_USR, uuid.uuid4(), first, first + USR_SECTORS - 1, label))
        first += USR_SECTORS
        parts.append((gpt.TYPE_USR_VERITY, uuid.uuid4(), first, first + VERITY_SECTORS - 1,
                      label if label == "_empty" else label + "_verity"))
        first += VERITY_SECTORS
    make_gpt(dev / "vda", parts, sectors=first + 34)
    for number, size in ((4, USR_SLOT), (5, VERITY_SLOT)):
        with (dev / f"vda{number}").open("wb") as f:
            f.truncate(size)
    state = tmp_path / "var/lib/sonix-update/state.json"
    m = Machine(tmp_path, esp, dev / "vda", state)
    monkeypatch.setattr(update, "booted_version", lambda *a: "1")
    monkeypatch.setattr(update, "usr_partitions", lambda *a: {("vda", 2), ("vda", 3)})
    monkeypatch.setattr(update, "find_slots", functools.partial(update.find_slots, dev=dev))
    monkeypatch.setattr(update, "find_esp", lambda: esp)
    monkeypatch.setattr(update, "HEALTH_FAILURES", tmp_path / "health")
    monkeypatch.setattr(update, "TRIAL", tmp_path / "var/lib/sonix-update/trial")
    monkeypatch.setattr(update, "SECURE_BOOT", tmp_path / "efivars/SecureBoot")  # not the host's
    monkeypatch.setattr(update, "verify_index", fake_verify_index)
    monkeypatch.setattr(update, "SMALL_FILE_SECONDS", 3.0)

    def run(argv: list[str], timeout: float, input: bytes | None = None) -> Any:
        m.commands.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(common, "run", run)
    return m


def fake_verify_index(signed: bytes, keyrings: tuple[Path, ...], workdir: Path) -> bytes:
    """gpgv --output for FakeSigner.clear: the text when its `--signed:<sha256>` matches."""
    text, marker, digest = signed.rpartition(b"--signed:")
    if not marker or hashlib.sha256(text).hexdigest().encode() != digest:
        raise update.UpdateError("the channel's SHA256SUMS.signed signature is not valid for "
                                 "the trusted keys (); nothing installed")
    return text


# ---- the channel and its server ---------------------------------------------------------------


def publish(directory: Path, tmp: Path, version: str, valid_days: float = 7) -> None:
    manifest, disk, uki_path = fake_image(tmp, version=version)
    directory.mkdir(exist_ok=True)
    with channel.locked(directory):
        staged = channel.stage(channel.image_from_build(manifest, disk, uki_path), directory)
        try:
            channel.publish(directory, staged, 3, FakeSigner(directory), valid_days)
        finally:
            staged.discard()


def sign_index(directory: Path, index: records.SignedIndex) -> None:
    """Replace the channel's signed index (a validly signed one, as a key holder could)."""
    text = index.to_text().encode()
    (directory / "SHA256SUMS.signed").write_bytes(
        text + b"--signed:" + hashlib.sha256(text).hexdigest().encode())


def current_index(directory: Path) -> records.SignedIndex:
    return records.SignedIndex.from_text((directory / "SHA256SUMS").read_text())


Fault = Callable[[http.server.BaseHTTPRequestHandler, bytes], bool]


@dataclass
class Server:
    url: str
    requests: list[str]
    faults: dict[str, Fault]


def make_handler(directory: Path, requests: list[str], faults: dict[str, Fault]
                 ) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            requests.append(name)
            path = directory / name
            if "/" in name or not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            fault = faults.get(name)
            if fault is not None and fault(self, data):
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    directory = tmp_path / "channel"
    directory.mkdir()
    requests: list[str] = []
    faults: dict[str, Fault] = {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            make_handler(directory, requests, faults))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/", requests, faults)
    finally:
        httpd.shutdown()
        httpd.server_close()


def truncate(handler: http.server.BaseHTTPRequestHandler, data: bytes) -> bool:
    """Announce the whole file, send half of it, close."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data[: len(data) // 2])
    handler.wfile.flush()
    handler.close_connection = True
    return True


def trickle(handler: http.server.BaseHTTPRequestHandler, data: bytes) -> bool:
    """One byte every 0.1 s (until the client hangs up)."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    with contextlib.suppress(OSError):
        for byte in data:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.1)
    handler.close_connection = True
    return True


def run_agent(machine: Machine, server: Server, cfg: update.Config | None = None) -> int:
    cfg = replace(cfg or config(), channel=server.url)
    return update.cmd_run(cfg, machine.ledger())


def check_untouched(machine: Machine) -> None:
    """Nothing points at slot B: only the booted entry, no partial files, slot B empty."""
    assert machine.entries == ["sonix_1.efi"]
    assert [name for number, name in machine.table() if number in (4, 5)] in (
        [], ["_empty", "_empty"])
    assert all(not name.startswith(".") for name in machine.state_files())


def last_result(machine: Machine) -> str:
    check = machine.state().last_check
    assert check is not None
    return check.result


# ---- the good path, and every check recorded ---------------------------------------------------


def test_install_from_a_fresh_channel(machine: Machine, server: Server, tmp_path: Path) -> None:
    directory = tmp_path / "channel"
    publish(directory, tmp_path, "2")
    assert run_agent(machine, server) == 0
    assert machine.entries == ["sonix_1.efi", "sonix_2+3.efi"]
    assert dict(machine.table())[4] == "sonix_2"
    state = machine.state()
    assert state.pending is not None and state.pending.version == "2"
    assert state.channel is not None and state.channel.serial == current_index(directory).serial
    assert last_result(machine) == "installed 2"
    assert machine.commands == [["systemctl", "--no-block", "reboot"]]
    # The slot holds the release file and zeros after it.
    usr = (directory / "sonix_2.usr").read_bytes()
    slot = (machine.disk.parent / "vda4").read_bytes()
    assert slot[: len(usr)] == usr and slot[len(usr):].count(0) == len(slot) - len(usr)


def test_up_to_date_is_recorded_too(machine: Machine, server: Server, tmp_path: Path) -> None:
    publish(tmp_path / "channel", tmp_path, "1")
    assert run_agent(machine, server) == 0
    assert last_result(machine) == "up to date (1)"
    assert machine.state().last_check.at  # type: ignore[union-attr]
    check_untouched(machine)


# ---- freeze and replay -------------------------------------------------------------------------


def test_a_replayed_channel_is_refused_and_reported(machine: Machine, server: Server,
                                                    tmp_path: Path) -> None:
    directory = tmp_path / "channel"
    publish(directory, tmp_path, "1")
    old = (directory / "SHA256SUMS.signed").read_bytes()
    assert run_agent(machine, server) == 0
    seen = machine.state().channel
    assert seen is not None
    # A newer index was accepted (a later renewal); then the old one is served again.
    sign_index(directory, replace(current_index(directory), serial=seen.serial + 10))
    assert run_agent(machine, server) == 0
    (directory / "SHA256SUMS.signed").write_bytes(old)
    publish_requests = len(server.requests)
    assert run_agent(machine, server) == 1
    assert "replayed channel: its serial" in last_result(machine)
    state = machine.state()
    assert state.channel is not None
    assert (state.channel.serial, state.channel.status) == (seen.serial + 10, "replayed")
    assert server.requests[publish_requests:] == ["SHA256SUMS.signed"]  # nothing else fetched
    check_untouched(machine)
    assert "REPLAYED" in update.channel_report(state.channel, dt.datetime.now(dt.UTC))


def test_an_expired_channel_installs_nothing(machine: Machine, server: Server,
                                             tmp_path: Path) -> None:
    directory = tmp_path / "channel"
    publish(directory, tmp_path, "2")
    index = current_index(directory)
    sign_index(directory, replace(index, expires="2001-01-01T00:00:00Z"))
    assert run_agent(machine, server) == 1
    assert "the channel expired at 2001-01-01T00:00:00Z" in last_result(machine)
    state = machine.state()
    assert state.channel is not None and state.channel.status == "expired"
    assert state.pending is None
    check_untouched(machine)
    assert "sonix_2.json" not in server.requests
    report = update.channel_report(state.channel, dt.datetime.now(dt.UTC))
    assert report.startswith("EXPIRED since 2001-01-01T00:00:00Z")


def test_a_channel_from_before_issue_14_is_refused_with_the_fix(
    machine: Machine, server: Server, tmp_path: Path,
) -> None:
    directory = tmp_path / "channel"
    publish(directory, tmp_path, "2")
    (directory / "SHA256SUMS.signed").unlink()
    assert run_agent(machine, server) == 1
    assert "older than issue 14" in last_result(machine)
    assert "sonix release" in last_result(machine)
    # Signed but without serial and expiry (its SHA256SUMS as it was).
    sign_index(directory, replace(current_index(directory), serial=0, expires=""))
    assert run_agent(machine, server) == 1
    assert "has no serial and expiry" in last_result(machine)
    check_untouched(machine)


def test_a_tampered_index_is_refused(machine: Machine, server: Server, tmp_path: Path) -> None:
    directory = tmp_path / "channel"
    publish(directory, tmp_path, "2")
    signed = directory / "SHA256SUMS.signed"
    signed.write_bytes(signed.read_bytes().replace(b"sonix_2.usr", b"sonix_2.usx"))
    assert run_agent(machine, server) == 1
    assert "signature is not valid" in last_result(machine)
    check_untouched(machine)


# ---- downloads: caps, truncation, trickle --------------------------------------------------------


def test_an_oversized_index_is_cut_off_before_gpgv(machine: Machine, server: Server,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "channel"
    publish(directory, tmp_path, "2")
    verified: list[int] = []

    def verify_index(data: bytes, *args: object) -> bytes:
        verified.append(len(data))
        return b""

    monkeypatch.setattr(update, "verify_index", verify_index)
    (directory / "SHA256SUMS.signed").write_bytes(b"x" * (update.INDEX_MAX + 1))
    assert run_agent(machine, server) == 1
    assert "more than the limit of 1048576" in last_result(machine)
    assert verified == []
    check_untouched(machine)


@pytest.mark.parametrize("name", ["sonix_2.json", "sonix_2.usr", "sonix_2.verity",
                                  "sonix_2.efi"])
def test_a_truncated_download_installs_nothing(machine: Machine, server: Server,
                                               tmp_path: Path, name: str) -> None:
    publish(tmp_path / "channel", tmp_path, "2")
    server.faults[name] = truncate
    assert run_agent(machine, server) == 1
    result = last_result(machine)
    assert "truncated" in result or "connection closed" in result, result
    check_untouched(machine)
    assert machine.state().pending is None


@pytest.mark.parametrize("name", ["SHA256SUMS.signed", "sonix_2.usr"])
def test_a_trickling_server_is_cut_off_at_the_deadline(
    machine: Machine, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    publish(tmp_path / "channel", tmp_path, "2")
    server.faults[name] = trickle
    monkeypatch.setattr(update, "SMALL_FILE_SECONDS", 1.0)
    monkeypatch.setattr(update, "run_deadline", lambda cfg: common.Deadline.after(1.0))
    started = time.monotonic()
    assert run_agent(machine, server) == 1
    assert time.monotonic() - started < 8
    result = last_result(machine)
    assert "deadline" in result or "no time left" in result or "timed out" in result, result
    check_untouched(machine)


# ---- ENOSPC on the ESP and on /var; a failed state write -----------------------------------------


@contextlib.contextmanager
def full_tmpfs(path: Path) -> Iterator[None]:
    """A tiny tmpfs mounted on path and filled up (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the injected ENOSPC tests cover the rest)")
    path.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> None:
    with contextlib.suppress(OSError), (directory / "filler").open("wb") as f:
        while True:
            f.write(bytes(4096))
            f.flush()


def test_a_full_esp_is_a_clear_error_and_leaves_no_partial_file(
    machine: Machine, server: Server, tmp_path: Path,
) -> None:
    publish(tmp_path / "channel", tmp_path, "2")
    linux = machine.esp / "EFI/Linux"
    booted = (linux / "sonix_1.efi").read_bytes()
    (linux / "sonix_1.efi").unlink()
    with full_tmpfs(linux):
        (linux / "sonix_1.efi").write_bytes(booted)
        fill(linux)
        assert run_agent(machine, server) == 1
        result = last_result(machine)
        assert "(the ESP is full)" in result and "no space left" in result, result
        assert sorted(p.name for p in linux.iterdir()) == ["filler", "sonix_1.efi"]
        assert [name for number, name in machine.table() if number in (4, 5)] == [
            "_empty", "_empty"]


def test_enospc_on_the_esp_injected(machine: Machine, server: Server, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    publish(tmp_path / "channel", tmp_path, "2")
    original = update.HashingWriter.write

    def write(self: update.HashingWriter, data: bytes) -> int:
        if ".efi.partial" in getattr(self.out, "name", ""):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(self, data)

    monkeypatch.setattr(update.HashingWriter, "write", write)
    assert run_agent(machine, server) == 1
    assert "(the ESP is full)" in last_result(machine)
    check_untouched(machine)


def test_a_full_var_stops_before_anything_is_installed(machine: Machine, server: Server,
                                                       tmp_path: Path) -> None:
    publish(tmp_path / "channel", tmp_path, "2")
    update.save_state(records.State(failed={"9": records.Failure("9", "t", "r", "1")}),
                      machine.state_path)
    before = machine.state_path.read_bytes()
    saved = machine.state_path.read_bytes()
    machine.state_path.unlink()
    with full_tmpfs(machine.state_path.parent):
        machine.state_path.write_bytes(saved)
        fill(machine.state_path.parent)
        assert run_agent(machine, server) == 1
        assert machine.state_path.read_bytes() == before  # the old state, whole
        assert sorted(p.name for p in machine.state_path.parent.iterdir()) == [
            "filler", "state.json"]
        check_untouched(machine)
        assert "sonix_2.usr" not in server.requests  # stopped before the install


def test_a_failed_state_write_installs_nothing(machine: Machine, server: Server,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    publish(tmp_path / "channel", tmp_path, "2")
    update.save_state(records.State(), machine.state_path)
    before = machine.state_path.read_bytes()

    def enospc(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(common, "write_atomic", enospc)
    assert run_agent(machine, server) == 1
    assert machine.state_path.read_bytes() == before
    check_untouched(machine)
    assert "sonix_2.usr" not in server.requests


# ---- the state: damaged files are kept, failures never forgotten ---------------------------------

DAMAGED_STATES = [
    b"{broken",
    b"",
    b"[]",
    b'"text"',
    b'{"failed": []}',
    b'{"failed": {"3": "yes"}}',
    b'{"failed": {"3": {"version": 3}}}',
    b'{"channel": {"serial": "12", "expires": "x", "checked": "y"}}',
    b'{"channel": {"serial": true}}',
    b'{"pending": {"version": "2", "activation": "reboot"}}',
    b'{"last_check": 5}',
    b"\xff\xfe",
    b"[" * 100000,
]


@pytest.mark.parametrize("content", DAMAGED_STATES)
def test_a_damaged_state_is_kept_aside_and_stops_the_agent(tmp_path: Path,
                                                           content: bytes) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(update.StateError, match=r"Kept it as .*state\.json\.damaged-"):
        update.load_state(path)
    (aside,) = update.damaged_copies(path)
    assert aside.read_bytes() == content
    assert not path.exists()
    # And it keeps stopping (an empty state would forget the failed releases) ...
    with pytest.raises(update.StateError, match="holds a damaged earlier state"):
        update.load_state(path)
    # ... until an operator repairs the file or deletes the damaged copy.
    aside.unlink()
    assert update.load_state(path) == records.State()


def test_status_and_commands_stop_on_a_damaged_state(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    path = tmp_path / "state.json"
    path.write_text("{broken")
    monkeypatch.setattr(update, "STATE", path)
    monkeypatch.setattr(update, "load_config", lambda: config())
    monkeypatch.setattr(update.load_state, "__defaults__", (path,))
    assert update.main(["update", "run"]) == 1
    assert "Kept it as" in capsys.readouterr().err
    assert update.main(["status"]) == 1
    assert "holds a damaged earlier state" in capsys.readouterr().err


def test_an_old_state_file_still_loads(tmp_path: Path) -> None:
    """The layout written before the typed records (issue 14) reads the same."""
    old = {
        "booted": {"at": "2026-12-01T00:00:00Z", "version": "3"},
        "failed": {"4": {"at": "2026-12-01T00:00:00Z", "reason": "health check x failed",
                         "rolled_back_to": "3", "version": "4"}},
        "last_check": {"at": "2026-12-01T00:00:00Z", "booted": "3", "result": "up to date (3)",
                       "decision": "reboot slot granted"},
        "pending": {"version": "5", "installed": "2026-12-01T00:00:00Z", "entry": "sonix_5+3.efi",
                    "activation": {"method": "reboot", "why": "configured", "at": "t"}},
        "reboot_request": {"at": "t", "reason": "firmware", "decision": "deferred"},
    }
    path = tmp_path / "state.json"
    path.write_text(json.dumps(old))
    state = update.load_state(path)
    assert state.to_json() == old
    assert state.failed["4"].rolled_back_to == "3"


# ---- assess: save first, then unlink; rollback keeps the FleetLock slot --------------------------


def bad_entry(machine: Machine) -> Path:
    path = machine.esp / "EFI/Linux/sonix_2+0-3.efi"
    fake_uki(path, "rw usrhash=" + "2" * 64)
    return path


def test_assess_saves_the_failure_before_it_removes_the_entry(
    machine: Machine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = bad_entry(machine)
    update.save_state(records.State(pending=records.Pending("2", "t", entry.name)),
                      machine.state_path)
    before = machine.state_path.read_bytes()
    original = common.write_atomic

    def enospc(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(common, "write_atomic", enospc)
    assert update.cmd_assess(config(), machine.ledger()) == 1
    assert entry.exists()  # kept: the failure is not recorded yet
    assert machine.state_path.read_bytes() == before
    monkeypatch.setattr(common, "write_atomic", original)
    assert update.cmd_assess(config(), machine.ledger()) == 0
    assert not entry.exists()
    state = machine.state()
    assert state.failed["2"].rolled_back_to == "1" and state.pending is None
    assert state.lock_hold is None  # strategy immediate: no slot to keep


def test_a_rollback_keeps_the_fleet_lock_slot_until_an_operator_releases_it(
    machine: Machine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    def fake_fleet_lock(cfg: update.Config, endpoint: str) -> bool:
        asked.append(endpoint)
        return True

    monkeypatch.setattr(update, "fleet_lock", fake_fleet_lock)
    bad_entry(machine)
    cfg = config("fleet-lock", fleet_lock_url="http://lock")
    assert update.cmd_assess(cfg, machine.ledger()) == 0
    hold = machine.state().lock_hold
    assert hold is not None and hold.version == "2"
    # The fallback boot is good, but the slot stays held: the group's rollout stops here.
    assert update.cmd_steady_state(cfg, machine.ledger()) == 0
    assert asked == []
    assert machine.state().lock_hold == hold
    assert update.cmd_steady_state(cfg, machine.ledger()) == 0  # every boot, the same
    assert asked == []
    # The operator's command gives it back.
    assert update.cmd_release_lock(cfg, machine.ledger()) == 0
    assert asked == ["steady-state"]
    assert machine.state().lock_hold is None
    assert update.cmd_steady_state(cfg, machine.ledger()) == 0
    assert asked == ["steady-state", "steady-state"]


def test_release_lock_keeps_the_hold_when_the_server_says_no(
    machine: Machine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(update, "fleet_lock", lambda cfg, endpoint: False)
    bad_entry(machine)
    cfg = config("fleet-lock", fleet_lock_url="http://lock")
    assert update.cmd_assess(cfg, machine.ledger()) == 0
    assert update.cmd_release_lock(cfg, machine.ledger()) == 1
    assert machine.state().lock_hold is not None


# ---- the FleetLock client's token ----------------------------------------------------------------


def fleet_lock_server() -> tuple[http.server.ThreadingHTTPServer, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd, seen


@pytest.mark.parametrize(("token", "sent"), [
    (None, None),
    ("s3cret-token\n", "Bearer s3cret-token"),
    ("two words", False),
    ("line\nbreak", False),
    ("", False),
])
def test_fleet_lock_sends_the_bearer_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           token: str | None, sent: str | bool | None) -> None:
    (tmp_path / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    real_path = Path

    def path(value: str) -> Path:
        return tmp_path / "machine-id" if value == "/etc/machine-id" else real_path(value)

    monkeypatch.setattr(update, "Path", path)
    token_file = ""
    if token is not None:
        token_file = str(tmp_path / "token")
        (tmp_path / "token").write_text(token)
    httpd, seen = fleet_lock_server()
    try:
        cfg = config("fleet-lock", fleet_lock_url=f"http://127.0.0.1:{httpd.server_address[1]}",
                     fleet_lock_token_file=token_file)
        granted = update.fleet_lock(cfg, "pre-reboot")
    finally:
        httpd.shutdown()
        httpd.server_close()
    if sent is False:  # a token that cannot be one header value: nothing is sent
        assert not granted and seen == []
        return
    assert granted
    assert seen[0].get("authorization") == sent
    assert seen[0]["fleet-lock-protocol"] == "true"


# ---- malformed UKIs: clear errors, and a plain reboot --------------------------------------------


def pe_with(count: int = 3, table_cut: int | None = None, offset: int | None = None
            ) -> bytes:
    head = bytearray(b"MZ" + bytes(62))
    head[0x3C:0x40] = (64).to_bytes(4, "little")
    head += b"PE\0\0" + (0x8664).to_bytes(2, "little") + count.to_bytes(2, "little")
    head += bytes(12) + (0).to_bytes(2, "little") + bytes(2)
    table = b""
    for i in range(min(count, 3)):
        name = [b".linux", b".initrd", b".cmdline"][i].ljust(8, b"\0")
        at = offset if offset is not None else len(head) + 40 * 3
        table += name + (4).to_bytes(4, "little") + bytes(4) + (4).to_bytes(4, "little") \
            + at.to_bytes(4, "little") + bytes(16)
    if table_cut is not None:
        table = table[:table_cut]
    return bytes(head) + table + b"datadatadata"


MALFORMED_UKIS = {
    "empty": b"",
    "MZ only": b"MZ",
    "no PE header": b"MZ" + bytes(62),
    "PE offset past the end": b"MZ" + bytes(58) + (10**6).to_bytes(4, "little"),
    "truncated PE header": b"MZ" + bytes(58) + (64).to_bytes(4, "little") + b"PE\0\0\x64",
    "too many sections": pe_with(count=60000),
    "section table cut": pe_with(table_cut=50),
    "section past the end": pe_with(offset=10**7),
    "no .initrd": pe_with(count=1),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_UKIS))
def test_a_malformed_uki_is_a_clear_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / "x.efi"
    path.write_bytes(MALFORMED_UKIS[name])
    with pytest.raises(uki.NotAUki):
        uki.boot_digests(path)
    with pytest.raises(uki.NotAUki):
        uki.cmdline(path)


def test_a_cmdline_that_is_not_text_is_a_clear_error(tmp_path: Path) -> None:
    fake_uki(tmp_path / "x.efi", "x")
    data = (tmp_path / "x.efi").read_bytes()
    (tmp_path / "x.efi").write_bytes(data[:-1] + b"\xff")
    with pytest.raises(uki.NotAUki, match="not UTF-8"):
        uki.cmdline(tmp_path / "x.efi")


@pytest.mark.parametrize("name", sorted(MALFORMED_UKIS))
def test_an_unreadable_uki_is_activated_by_a_plain_reboot(machine: Machine, name: str) -> None:
    new = machine.esp / "EFI/Linux/sonix_2+3.efi"
    new.write_bytes(MALFORMED_UKIS[name])
    entry = next(e for e in update.boot_entries(machine.esp, "sonix") if e.version == "2")
    cfg = config(activation="auto")
    method, why = update.activation_method(cfg, machine.esp, "1", entry)
    assert method == "reboot" and why.startswith("cannot compare the UKIs"), why
    update.save_state(records.State(), machine.state_path)
    ledger = machine.ledger()
    update.activate(cfg, ledger, entry)
    assert machine.commands == [["systemctl", "--no-block", "reboot"]]
    activation = ledger.state.pending.activation  # type: ignore[union-attr]
    assert activation is not None and activation.method == "reboot"
    assert machine.state().pending is not None  # saved before the reboot


# ---- names and versions: one reading of every file name ------------------------------------------


def test_versions_of_other_images_and_ambiguous_names_are_not_releases() -> None:
    digest = "0" * 64
    index = records.SignedIndex({f: digest for f in (
        "sonix_2.json", "sonix_x_1.json", "sonix-x_3.json", "sonix_1+2.json", "sonix_.json",
        "sonix_-1.json", "sonix_2.efi", "sonix_10.json", "other_5.json")}, 1, "")
    assert sorted(index.versions("sonix")) == ["10", "2"]
    assert index.versions("sonix_x") == ["1"]


def test_boot_entries_do_not_mistake_other_images_or_counters(tmp_path: Path) -> None:
    linux = tmp_path / "EFI/Linux"
    linux.mkdir(parents=True)
    for name in ("sonix_1.efi", "sonix_x_1.efi", "sonix_2+3.efi", "sonix_3+0-3.efi",
                 "sonix_1+2+3.efi"):
        (linux / name).touch()
    found = {(e.version, e.left) for e in update.boot_entries(tmp_path, "sonix")}
    assert found == {("1", None), ("2", 3), ("3", 0)}


def test_a_manifest_for_another_version_is_refused(machine: Machine, server: Server,
                                                   tmp_path: Path) -> None:
    """sonix_3.json served as the file of version 3, but its content says version 2 (a
    validly signed index listing it): refused before anything is written."""
    directory = tmp_path / "channel"
    publish(directory, tmp_path, "2")
    (directory / "sonix_3.json").write_bytes((directory / "sonix_2.json").read_bytes())
    index = current_index(directory)
    files = dict(index.files)
    files["sonix_3.json"] = files["sonix_2.json"]
    sign_index(directory, replace(index, files=files))
    assert run_agent(machine, server) == 1
    assert "sonix_3.json describes sonix 2, not sonix 3" in last_result(machine)
    check_untouched(machine)


# ---- Secure Boot: the UKI's signature is checked before anything is written (issue 15) -----------
# sbverify is a stand-in here; tests/integration/test_agent_secure_boot.py runs the real one on
# signed, foreign-signed and changed UKIs.


@dataclass
class Sbverify:
    """The stand-in: its verdict, and what the machine looked like each time it ran."""

    accept: bool = True
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    path = tmp_path / "usr/lib/sonix/secure-boot/db.crt"
    path.parent.mkdir(parents=True)
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


@pytest.fixture
def sbverify(machine: Machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sbverify:
    fake = Sbverify()
    binary = tmp_path / "usr/bin/sbverify"
    binary.parent.mkdir(parents=True)
    binary.touch()
    monkeypatch.setattr(update, "SBVERIFY", binary)
    recorded = common.run

    def run(argv: list[str], timeout: float, input: bytes | None = None) -> Any:
        if argv[0] != str(binary):
            return recorded(argv, timeout, input)
        file = Path(argv[-1])
        fake.calls.append({
            "argv": argv, "file": file.read_bytes(), "directory": file.parent,
            "mode": stat.S_IMODE(file.parent.stat().st_mode),
            "entries": machine.entries, "table": machine.table(),
            "slot": (machine.disk.parent / "vda4").read_bytes().count(0),
        })
        if not fake.accept:
            raise common.CommandError(f"{' '.join(argv)}: exit status 1: Signature "
                                      "verification failed")
        return subprocess.CompletedProcess(argv, 0, "Signature verification OK\n", "")

    monkeypatch.setattr(common, "run", run)
    return fake


def test_a_signed_uki_is_checked_before_anything_is_written(
    machine: Machine, server: Server, tmp_path: Path, certificate: Path, sbverify: Sbverify,
) -> None:
    directory = tmp_path / "channel"
    publish(directory, tmp_path, "2")
    assert run_agent(machine, server, config(secure_boot_certificate=str(certificate))) == 0
    assert last_result(machine) == "installed 2"
    (call,) = sbverify.calls
    uki = (directory / "sonix_2.efi").read_bytes()
    incoming = machine.state_path.parent / "incoming"
    assert call["argv"] == [str(update.SBVERIFY), "--cert", str(certificate),
                            str(incoming / "sonix_2.efi")]
    assert call["file"] == uki and call["mode"] == 0o700
    # When sbverify ran, the ESP, the partition table and slot B were as before.
    assert call["entries"] == ["sonix_1.efi"]
    assert [name for number, name in call["table"] if number in (4, 5)] == [
        "_empty", "_empty"]
    assert call["slot"] == len((machine.disk.parent / "vda4").read_bytes())
    # The UKI on the ESP is the file that was checked; the private copy is gone.
    assert machine.entries == ["sonix_1.efi", "sonix_2+3.efi"]
    assert (machine.esp / "EFI/Linux/sonix_2+3.efi").read_bytes() == uki
    assert not incoming.exists()
    # The UKI was downloaded once.
    assert server.requests.count("sonix_2.efi") == 1


def test_a_uki_not_signed_by_db_is_refused_and_nothing_is_written(
    machine: Machine, server: Server, tmp_path: Path, certificate: Path, sbverify: Sbverify,
) -> None:
    publish(tmp_path / "channel", tmp_path, "2")
    sbverify.accept = False
    usr_before = (machine.disk.parent / "vda4").read_bytes()
    table_before = machine.table()
    assert run_agent(machine, server, config(secure_boot_certificate=str(certificate))) == 1
    result = last_result(machine)
    assert result.startswith(f"error: sonix_2.efi is not signed by this machine's db "
                             f"certificate ({certificate}): not installed"), result
    assert "Signature verification failed" in result
    check_untouched(machine)
    assert machine.table() == table_before
    assert (machine.disk.parent / "vda4").read_bytes() == usr_before
    assert "sonix_2.usr" not in server.requests and "sonix_2.verity" not in server.requests
    assert machine.state().pending is None
    assert not (machine.state_path.parent / "incoming").exists()
    assert machine.commands == []  # no activation


def test_an_image_without_its_certificate_installs_nothing(
    machine: Machine, server: Server, tmp_path: Path, sbverify: Sbverify,
) -> None:
    publish(tmp_path / "channel", tmp_path, "2")
    missing = tmp_path / "usr/lib/sonix/secure-boot/db.crt"
    assert run_agent(machine, server, config(secure_boot_certificate=str(missing))) == 1
    result = last_result(machine)
    assert f"built with Secure Boot but its db certificate {missing} is missing" in result
    assert "nothing installed" in result
    assert sbverify.calls == []
    check_untouched(machine)
    assert "sonix_2.efi" not in server.requests


def test_an_image_without_sbverify_installs_nothing(
    machine: Machine, server: Server, tmp_path: Path, certificate: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish(tmp_path / "channel", tmp_path, "2")
    monkeypatch.setattr(update, "SBVERIFY", tmp_path / "no/sbverify")
    assert run_agent(machine, server, config(secure_boot_certificate=str(certificate))) == 1
    assert "(sbsigntool) is missing from this image" in last_result(machine)
    check_untouched(machine)


def test_a_truncated_uki_is_refused_before_anything_is_written(
    machine: Machine, server: Server, tmp_path: Path, certificate: Path, sbverify: Sbverify,
) -> None:
    publish(tmp_path / "channel", tmp_path, "2")
    server.faults["sonix_2.efi"] = truncate
    assert run_agent(machine, server, config(secure_boot_certificate=str(certificate))) == 1
    result = last_result(machine)
    assert "truncated" in result or "connection closed" in result, result
    assert sbverify.calls == []
    check_untouched(machine)
    assert "sonix_2.usr" not in server.requests
    assert not (machine.state_path.parent / "incoming").exists()


def test_what_an_interrupted_run_left_in_incoming_goes(
    machine: Machine, server: Server, tmp_path: Path, certificate: Path, sbverify: Sbverify,
) -> None:
    publish(tmp_path / "channel", tmp_path, "2")
    incoming = machine.state_path.parent / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "sonix_2.efi").write_bytes(b"left by a power cut")
    incoming.chmod(0o755)
    assert run_agent(machine, server, config(secure_boot_certificate=str(certificate))) == 0
    (call,) = sbverify.calls
    assert call["mode"] == 0o700 and call["file"] == (tmp_path / "channel/sonix_2.efi"
                                                      ).read_bytes()
    assert not incoming.exists()


def test_unsigned_images_install_as_before(
    machine: Machine, server: Server, tmp_path: Path, sbverify: Sbverify,
) -> None:
    publish(tmp_path / "channel", tmp_path, "2")
    assert run_agent(machine, server) == 0
    assert sbverify.calls == []
    assert machine.entries == ["sonix_1.efi", "sonix_2+3.efi"]
    assert not (machine.state_path.parent / "incoming").exists()


def test_only_the_image_names_the_certificate(tmp_path: Path) -> None:
    image, local = tmp_path / "update.json", tmp_path / "local.json"
    image.write_text(json.dumps({"name": "sonix", "secureBoot": {"certificate": "/usr/db.crt"}}))
    local.write_text(json.dumps({"channel": "http://y/", "secureBoot": {"certificate": ""}}))
    cfg = update.load_config((image, local))
    assert (cfg.secure_boot_certificate, cfg.channel) == ("/usr/db.crt", "http://y/")
    image.write_text(json.dumps({"name": "sonix"}))
    local.write_text(json.dumps({"secureBoot": {"certificate": "/etc/other.crt"}}))
    assert update.load_config((image, local)).secure_boot_certificate == ""
