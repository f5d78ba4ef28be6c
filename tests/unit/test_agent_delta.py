"""Delta updates on the machine (issue 17): a whole `sonix update run` against a channel served
on loopback (sonix serve's handler, its requests recorded), with the machine of
test_agent_faults (a GPT disk image, partitions and ESP as files) whose booted release's files
are the seeds: the booted usr slot (its "verity device" a file here), the booted verity
partition and the UKI on the ESP. The agent assembles the new release from them and from the
chunks it downloads, or falls back to the full files and says why."""

from __future__ import annotations

import random
import shutil
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import test_agent_faults
from test_agent_faults import Machine
from test_release import USR_OFFSET, FakeSigner, fake_image

from sonix.agents import chunks, update
from sonix.release import channel
from sonix.release.serve import handler_for

machine = test_agent_faults.machine  # the fixture

BLOCKS = 96  # 384 KiB of usr image: a few dozen chunks


@dataclass
class Server:
    url: str
    directory: Path
    requests: list[str]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    directory = tmp_path / "channel"
    directory.mkdir()
    requests: list[str] = []
    base = handler_for(directory)

    class Recording(base):  # type: ignore[valid-type,misc]
        def do_GET(self) -> None:
            requests.append(self.path.lstrip("/"))
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/", directory, requests)
    finally:
        httpd.shutdown()
        httpd.server_close()


def usr_bytes(version: str) -> bytes:
    """Random content after the superblock block; release 2 differs from 1 in 6 KiB."""
    data = bytearray(random.Random(7).randbytes((BLOCKS - 1) * 4096))
    if version != "1":
        data[200_000:206_000] = random.Random(int(version)).randbytes(6000)
    return bytes(data)


def publish(server: Server, tmp: Path, version: str) -> None:
    manifest, disk, uki = fake_image(tmp, version=version, usr_blocks=BLOCKS)
    with disk.open("r+b") as f:
        f.seek(USR_OFFSET + 4096)
        f.write(usr_bytes(version))
    with channel.locked(server.directory):
        staged = channel.stage(channel.image_from_build(manifest, disk, uki), server.directory)
        try:
            channel.publish(server.directory, staged, 3, FakeSigner(server.directory), 7)
        finally:
            staged.discard()


@pytest.fixture
def booted_v1(machine: Machine, server: Server, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Machine:
    """Release 1 published, and its files on the machine: the booted usr slot (read through
    `usr_device`), the booted verity partition (vda3), the UKI on the ESP."""
    publish(server, tmp_path, "1")
    dev = machine.disk.parent
    shutil.copyfile(server.directory / "sonix_1.usr", dev / "usr-verity-device")
    shutil.copyfile(server.directory / "sonix_1.verity", dev / "vda3")
    shutil.copyfile(server.directory / "sonix_1.efi", machine.esp / "EFI/Linux/sonix_1.efi")
    monkeypatch.setattr(update, "usr_device", lambda *a: dev / "usr-verity-device")
    return machine


def run(machine: Machine, server: Server) -> int:
    return test_agent_faults.run_agent(machine, test_agent_faults.Server(server.url, [], {}))


def slot_holds(machine: Machine, server: Server, version: str) -> bool:
    usr = (server.directory / f"sonix_{version}.usr").read_bytes()
    slot = (machine.disk.parent / "vda4").read_bytes()
    return slot[: len(usr)] == usr and slot[len(usr):].count(0) == len(slot) - len(usr)


def kept(machine: Machine) -> list[str]:
    directory = machine.state_path.parent / update.CHUNK_INDEXES
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def chunk_requests(server: Server) -> list[str]:
    return [r for r in server.requests if r.startswith(chunks.STORE + "/")]


def test_a_release_is_assembled_from_the_booted_one_and_a_few_chunks(
    booted_v1: Machine, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    publish(server, tmp_path, "2")
    server.requests.clear()
    assert run(booted_v1, server) == 0
    assert booted_v1.entries == ["sonix_1.efi", "sonix_2+3.efi"]
    assert slot_holds(booted_v1, server, "2")
    assert (booted_v1.esp / "EFI/Linux/sonix_2+3.efi").read_bytes() == (
        server.directory / "sonix_2.efi").read_bytes()
    # No release file was downloaded whole: the index, the booted release's index (not kept
    # yet: the image installed it), and the chunks that differ.
    assert not [r for r in server.requests if r.startswith("sonix_2.") and r != "sonix_2.json"
                and r != "sonix_2.chunks"]
    assert "sonix_1.chunks" in server.requests and "sonix_2.chunks" in server.requests
    target = chunks.ChunkIndex.from_bytes((server.directory / "sonix_2.chunks").read_bytes())
    assert 0 < len(chunk_requests(server)) < len(target.parts["usr"].chunks) // 2
    err = capsys.readouterr().err
    assert "sonix_2.usr: assembled from chunks" in err
    assert "delta update of sonix 2: downloaded " in err and " 0 bytes of whole files" in err
    # Both indexes are kept: the next update seeds from release 2 without asking the channel.
    assert kept(booted_v1) == ["sonix_1.chunks", "sonix_2.chunks"]


def test_a_corrupt_chunk_is_caught_and_the_full_file_installed(
    booted_v1: Machine, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    publish(server, tmp_path, "2")
    old = chunks.ChunkIndex.from_bytes((server.directory / "sonix_1.chunks").read_bytes())
    new = chunks.ChunkIndex.from_bytes((server.directory / "sonix_2.chunks").read_bytes())
    have = {c.sha256 for part in old.parts.values() for c in part.chunks}
    needed = next(c for c in new.parts["usr"].chunks if c.sha256 not in have)
    path = server.directory / chunks.chunk_path(needed.sha256)
    data = bytearray(zlib.decompress(path.read_bytes()))
    data[100] ^= 0xFF
    path.write_bytes(zlib.compress(bytes(data), 6))  # valid zlib, other bytes
    server.requests.clear()
    assert run(booted_v1, server) == 0
    assert slot_holds(booted_v1, server, "2")
    assert "sonix_2.usr" in server.requests  # downloaded whole after all
    assert "sonix_2.verity" not in server.requests  # the other files still from chunks
    err = capsys.readouterr().err
    assert (f"sonix_2.usr: delta update failed (chunk {needed.sha256} from the store has "
            "sha256" in err and "downloading the full file instead" in err), err


def test_without_a_seed_index_the_full_files_are_downloaded(
    machine: Machine, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Release 1 (booted) is not in the channel and its index was never kept: no seeds."""
    publish(server, tmp_path, "2")
    assert run(machine, server) == 0
    assert slot_holds(machine, server, "2")
    assert {"sonix_2.usr", "sonix_2.verity", "sonix_2.efi"} <= set(server.requests)
    assert not chunk_requests(server)
    err = capsys.readouterr().err
    assert ("delta update of sonix 2 not possible: no chunk index of the releases on this "
            "machine (1)") in err
    assert kept(machine) == []  # nothing assembled: the index is not kept either


def test_a_listed_chunk_index_that_cannot_be_downloaded_means_the_full_files(
    booted_v1: Machine, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    publish(server, tmp_path, "2")
    (server.directory / "sonix_2.chunks").unlink()
    assert run(booted_v1, server) == 0
    assert slot_holds(booted_v1, server, "2")
    assert {"sonix_2.usr", "sonix_2.verity", "sonix_2.efi"} <= set(server.requests)
    assert not chunk_requests(server)
    err = capsys.readouterr().err
    assert "delta update of sonix 2 not possible (cannot download " in err, err
    assert "downloading the full files" in err


def test_a_kept_index_seeds_when_the_channel_dropped_the_release(
    booted_v1: Machine, server: Server, tmp_path: Path,
) -> None:
    index = chunks.ChunkIndex.from_bytes((server.directory / "sonix_1.chunks").read_bytes())
    chunks.save_index(booted_v1.state_path.parent / update.CHUNK_INDEXES, index)
    for version in ("2", "3", "4"):  # --keep 3 drops release 1 from the channel
        publish(server, tmp_path, version)
    assert not (server.directory / "sonix_1.chunks").exists()
    server.requests.clear()
    assert run(booted_v1, server) == 0
    assert slot_holds(booted_v1, server, "4")
    assert "sonix_4.usr" not in server.requests and chunk_requests(server)
    assert kept(booted_v1) == ["sonix_1.chunks", "sonix_4.chunks"]


def test_a_seed_read_from_the_slot_being_written_is_only_used_ahead_of_the_writing() -> None:
    a, b, c = (chunks.Chunk(ch * 64, 10, 12) for ch in "abc")
    part = chunks.Part(30, "0" * 64, (a, b, c))
    slot, other = Path("/dev/slot"), Path("/dev/other")
    the_plan = chunks.Plan(part, (chunks.Step(a, slot, 10), chunks.Step(b, slot, 0),
                                  chunks.Step(c, other, 0)), ())
    steps = update.ahead_of_writing(the_plan, slot).steps
    assert steps[0] == chunks.Step(a, slot, 10)  # not written yet when it is read
    assert steps[1].download  # overwritten by then
    assert steps[2] == chunks.Step(c, other, 0)

