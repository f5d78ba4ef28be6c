"""The agent's delta assembly (sonix.agents.chunks): a file rebuilt from seed extents and
downloaded chunks, and every way that can go wrong ending in ChunkError (the caller then
downloads the full file). Synthetic files of a few hundred KiB, cut at fixed places here:
where the cuts come from does not matter to the agent."""

from __future__ import annotations

import hashlib
import json
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sonix.agents import chunks
from sonix.agents.chunks import Chunk, ChunkError, ChunkIndex, Part, Seed
from sonix.agents.records import RecordError


def cut(data: bytes, lengths: list[int]) -> list[bytes]:
    pieces, pos = [], 0
    for length in lengths:
        pieces.append(data[pos:pos + length])
        pos += length
    assert pos == len(data)
    return pieces


@dataclass
class Store:
    """A channel's chunk store in memory, served through `fetch` with the agent's cap."""

    files: dict[str, bytes] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    def add(self, piece: bytes) -> Chunk:
        sha = hashlib.sha256(piece).hexdigest()
        packed = zlib.compress(piece, 6)
        self.files[chunks.chunk_path(sha)] = packed
        return Chunk(sha, len(piece), len(packed))

    def part(self, pieces: list[bytes]) -> Part:
        listed = tuple(self.add(p) for p in pieces)
        data = b"".join(pieces)
        return Part(len(data), hashlib.sha256(data).hexdigest(), listed)

    def fetch(self, path: str, max_bytes: int) -> bytes:
        self.fetched.append(path)
        if path not in self.files:
            raise FileNotFoundError(f"404 Not Found: {path}")
        body = self.files[path]
        if len(body) > max_bytes:  # as http_get: the cap is checked while reading
            raise OSError(f"{path}: larger than the limit of {max_bytes} bytes")
        return body


def random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


LENGTHS = [30000, 50000, 20000, 64000, 40000]  # 204000 bytes


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    """An old release (the seed, on disk) and a new one that changes its third chunk."""
    old = random_bytes(1, sum(LENGTHS))
    old_pieces = cut(old, LENGTHS)
    new_pieces = list(old_pieces)
    new_pieces[2] = random_bytes(2, 20000)
    store = Store()
    old_part = store.part(old_pieces)
    new_part = store.part(new_pieces)
    seed_file = tmp_path / "booted-usr"
    seed_file.write_bytes(old + bytes(4096))  # a slot: the file, then zeros
    store.fetched.clear()
    return {"store": store, "old": old_part, "new": new_part, "new_data": b"".join(new_pieces),
            "seed": Seed(seed_file, old_part, "the booted usr slot"), "tmp": tmp_path}


def build(world: dict[str, Any], the_plan: chunks.Plan, **kw: Any) -> bytes:
    out_path: Path = world["tmp"] / "target"
    part = the_plan.part
    with out_path.open("w+b") as out:
        chunks.assemble(the_plan, out, world["store"].fetch, kw.pop("size", part.size),
                        kw.pop("sha256", part.sha256), **kw)
    return out_path.read_bytes()


# ---- the outcomes that work ----------------------------------------------------------------


def test_unchanged_chunks_come_from_the_seed_and_only_the_new_one_is_downloaded(
        world: dict[str, Any]) -> None:
    the_plan = chunks.plan(world["new"], [world["seed"]])
    assert [s.download for s in the_plan.steps] == [False, False, True, False, False]
    assert the_plan.download_bytes == world["new"].chunks[2].stored
    assert the_plan.seeded_bytes == sum(LENGTHS) - 20000
    assert the_plan.notes == ()
    assert build(world, the_plan) == world["new_data"]
    assert world["store"].fetched == [chunks.chunk_path(world["new"].chunks[2].sha256)]


def test_without_seeds_everything_is_downloaded(world: dict[str, Any]) -> None:
    the_plan = chunks.plan(world["new"], [])
    assert all(s.download for s in the_plan.steps)
    assert build(world, the_plan) == world["new_data"]


def test_a_chunk_that_repeats_in_the_target_is_downloaded_once(world: dict[str, Any]) -> None:
    store: Store = world["store"]
    piece = random_bytes(3, 5000)
    part = store.part([piece, random_bytes(4, 100), piece])
    the_plan = chunks.plan(part, [world["seed"]])
    assert [s.download for s in the_plan.steps] == [True, True, False]
    assert the_plan.download_bytes == part.chunks[0].stored + part.chunks[1].stored
    assert build(world, the_plan) == piece + random_bytes(4, 100) + piece
    assert len(store.fetched) == 2


def test_a_wrong_seed_index_costs_only_hits(world: dict[str, Any], tmp_path: Path) -> None:
    """The seed's index says it holds the new release, but the file is the old one: only
    the chunks whose bytes really are there count."""
    lying = Seed(world["seed"].path, world["new"], "a slot with a stale index")
    the_plan = chunks.plan(world["new"], [lying])
    assert [s.download for s in the_plan.steps] == [False, False, True, False, False]
    assert the_plan.notes == ("seed a slot with a stale index: 1 chunks differ from its index",)
    assert build(world, the_plan) == world["new_data"]


def test_a_seed_that_cannot_be_opened_is_left_out(world: dict[str, Any], tmp_path: Path) -> None:
    gone = Seed(tmp_path / "no-such-slot", world["old"], "the other slot")
    the_plan = chunks.plan(world["new"], [gone, world["seed"]])
    assert "seed the other slot" in the_plan.notes[0]
    assert "cannot be opened" in the_plan.notes[0]
    assert build(world, the_plan) == world["new_data"]


def test_a_seed_that_cannot_be_read_is_left_out(world: dict[str, Any], tmp_path: Path) -> None:
    directory = Seed(tmp_path, world["old"], "a directory")  # read(2) gives EISDIR
    the_plan = chunks.plan(world["new"], [directory])
    assert "cannot be read" in the_plan.notes[0]
    assert all(s.download for s in the_plan.steps)


def test_a_short_seed_only_costs_hits(world: dict[str, Any], tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(world["seed"].path.read_bytes()[:40000])
    the_plan = chunks.plan(world["new"], [Seed(short, world["old"], "short")])
    assert [s.download for s in the_plan.steps] == [False, True, True, True, True]
    assert build(world, the_plan) == world["new_data"]


# ---- the outcomes that end in the full download --------------------------------------------


def corrupt(store: Store, chunk: Chunk, body: bytes) -> None:
    store.files[chunks.chunk_path(chunk.sha256)] = body


def packed(store: Store, chunk: Chunk) -> bytes:
    return store.files[chunks.chunk_path(chunk.sha256)]


def with_stored(part: Part, index: int, stored: int) -> Part:
    listed = list(part.chunks)
    listed[index] = Chunk(listed[index].sha256, listed[index].length, stored)
    return Part(part.size, part.sha256, tuple(listed))


CASES: dict[str, tuple[Callable[[Store, Chunk], object], str]] = {
    # a byte flipped inside the compressed data: zlib's check or our sha256 catches it
    "corrupt chunk": (lambda s, c: corrupt(s, c, packed(s, c)[:100] + bytes([packed(s, c)[100] ^ 1])
                                           + packed(s, c)[101:]), "chunk "),
    # the same length, other content (a valid zlib stream of other bytes)
    "chunk of other bytes": (lambda s, c: corrupt(
        s, c, zlib.compress(random_bytes(9, c.length))[:c.stored]), "chunk "),
    "truncated chunk": (lambda s, c: corrupt(s, c, packed(s, c)[:-10]), "truncated"),
    "oversize chunk": (lambda s, c: corrupt(s, c, packed(s, c) + b"x"), "larger than the limit"),
    "missing chunk": (lambda s, c: s.files.pop(chunks.chunk_path(c.sha256)),
                      "could not be downloaded"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_chunk_in_the_store_is_an_error(world: dict[str, Any], case: str) -> None:
    damage, message = CASES[case]
    damage(world["store"], world["new"].chunks[2])
    the_plan = chunks.plan(world["new"], [world["seed"]])
    with pytest.raises(ChunkError, match=message):
        build(world, the_plan)


def test_a_decompression_bomb_stops_one_byte_past_the_chunk(world: dict[str, Any]) -> None:
    """A chunk that inflates to far more than its length: refused after length + 1 bytes."""
    store: Store = world["store"]
    chunk = world["new"].chunks[2]
    bomb = zlib.compress(bytes(8 << 20), 9)  # 8 MiB of zeros in 8 KiB
    corrupt(store, chunk, bomb)
    part = with_stored(world["new"], 2, min(len(bomb), chunks.stored_bound(chunk.length)))
    with pytest.raises(ChunkError, match=r"more than its 20000 bytes|larger than the limit"):
        build(world, chunks.plan(part, [world["seed"]]))
    # decompress itself, given the bomb whole:
    with pytest.raises(ChunkError, match="decompresses to more than its 20000 bytes"):
        chunks.decompress(zlib.compress(bytes(1 << 20)),
                          Chunk(chunk.sha256, chunk.length, chunks.stored_bound(chunk.length)))


def test_trailing_data_after_the_chunk_is_an_error(world: dict[str, Any]) -> None:
    store: Store = world["store"]
    chunk = world["new"].chunks[2]
    corrupt(store, chunk, packed(store, chunk) + b"more")
    part = with_stored(world["new"], 2, chunk.stored + 4)
    with pytest.raises(ChunkError, match="truncated or has trailing data"):
        build(world, chunks.plan(part, [world["seed"]]))


def test_a_seed_that_fails_during_assembly_is_an_error(world: dict[str, Any]) -> None:
    the_plan = chunks.plan(world["new"], [world["seed"]])
    world["seed"].path.unlink()
    with pytest.raises(ChunkError, match=r"cannot be read from .*booted-usr"):
        build(world, the_plan)


def test_a_seed_that_changed_after_the_plan_is_an_error(world: dict[str, Any]) -> None:
    the_plan = chunks.plan(world["new"], [world["seed"]])
    world["seed"].path.write_bytes(bytes(300000))
    with pytest.raises(ChunkError, match="has changed since the plan"):
        build(world, the_plan)


def test_an_index_that_is_not_the_manifests_file_is_refused(world: dict[str, Any]) -> None:
    the_plan = chunks.plan(world["new"], [world["seed"]])
    with pytest.raises(ChunkError, match="the manifest one of"):
        build(world, the_plan, sha256="0" * 64)
    assert not world["store"].fetched  # refused before anything was fetched


def test_the_whole_files_hash_is_checked_at_the_end(world: dict[str, Any]) -> None:
    """Every chunk is right, but the index (and the manifest it matches) says another
    sha256 for the whole: nothing may become bootable."""
    part = Part(world["new"].size, "1" * 64, world["new"].chunks)
    with pytest.raises(ChunkError, match=r"the assembled file .* is not the manifest's"):
        build(world, chunks.plan(part, [world["seed"]]))


def test_the_total_download_cap(world: dict[str, Any]) -> None:
    the_plan = chunks.plan(world["new"], [])
    with pytest.raises(ChunkError, match="exceed the cap of 1000 bytes"):
        build(world, the_plan, max_download=1000)
    assert not world["store"].fetched


# ---- the chunk index -----------------------------------------------------------------------


def index_json(world: dict[str, Any]) -> dict[str, Any]:
    index = ChunkIndex("sonix", "2", {"usr": world["new"], "verity": world["new"],
                                      "efi": world["old"]})
    data: dict[str, Any] = json.loads(index.to_bytes())
    return data


def test_the_index_reads_back(world: dict[str, Any]) -> None:
    index = ChunkIndex("sonix", "2", {"usr": world["new"], "verity": world["old"],
                                      "efi": world["old"]})
    assert ChunkIndex.from_bytes(index.to_bytes()) == index
    assert chunks.index_name("sonix", "2") == "sonix_2.chunks"


BAD_INDEXES: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "sizes do not add up": (lambda d: d["parts"]["usr"].update(size=1), "add up to"),
    "stored above the bound": (lambda d: d["parts"]["usr"]["chunks"][0].__setitem__(
        2, 10 ** 9), r"parts.usr.chunks\[0\]\[2\] must be from 1 to"),
    "a chunk longer than the limit": (lambda d: d["parts"]["usr"]["chunks"][0].__setitem__(
        1, 2 << 20), "must be from 1 to 1048576"),
    "not a sha256": (lambda d: d["parts"]["efi"]["chunks"][1].__setitem__(0, "x" * 64),
                     "is not a sha256"),
    "another codec": (lambda d: d.update(codec="zstd"), "not one this agent reads"),
    "no efi part": (lambda d: d["parts"].pop("efi"), "parts.efi is missing"),
    "a chunk as an object": (lambda d: d["parts"]["usr"]["chunks"].__setitem__(0, {}),
                             "must be .sha256, length, stored length."),
    "a boolean length": (lambda d: d["parts"]["usr"]["chunks"][0].__setitem__(1, True),
                         "must be .sha256, length, stored length."),
}


@pytest.mark.parametrize("case", sorted(BAD_INDEXES))
def test_a_bad_index_is_refused_with_its_path(world: dict[str, Any], case: str) -> None:
    change, message = BAD_INDEXES[case]
    data = index_json(world)
    change(data)
    with pytest.raises(RecordError, match=message):
        ChunkIndex.from_bytes(json.dumps(data).encode())


def test_kept_indexes(world: dict[str, Any], tmp_path: Path) -> None:
    index = ChunkIndex("sonix", "2", {"usr": world["new"], "verity": world["old"],
                                      "efi": world["old"]})
    kept = tmp_path / "chunk-indexes"
    chunks.save_index(kept, index)
    assert chunks.load_index(kept, "sonix", "2") == index
    assert chunks.load_index(kept, "sonix", "3") is None
    (kept / "sonix_2.chunks").write_text("{")
    assert chunks.load_index(kept, "sonix", "2") is None  # a damaged index is no seed
