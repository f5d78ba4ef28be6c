"""Delta updates: a release's files rebuilt from content-defined chunks (issue 17).

`sonix release` cuts each release's usr image, verity data and UKI into content-defined chunks
on the host
(the machine never runs a rolling hash: a pure-Python one under TCG is far too slow) and
writes a **chunk index** `<name>_<version>.chunks` (covered by the signed SHA256SUMS like
every release file) and a chunk store shared by the channel's releases,
`chunks/<2 hex>/<sha256>.z` (zlib). docs/updates.md, "Delta updates".

On the machine, **seeds** are files it already has whose chunk index it knows: the booted usr
slot (read through its verity device), the other slot, the UKIs on the ESP. A seed is read
only at the extents that its own index names, and every chunk read from it is hashed before
use, so a wrong or stale seed index only costs hits. `plan` decides, chunk by chunk, where the
target's bytes come from; `assemble` writes the target sequentially, downloading the missing
chunks with exact byte caps (the compressed length is in the signed index), decompressing with
a size cap, checking every chunk's sha256 and, at the end, the whole file's. Any failure
raises `ChunkError`, and the caller falls back to the full download. `sonix release diff`
calls the same `plan`, so its figure is what a machine fetches.

Standard library only: this runs on the target.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .records import (
    NAME_RE,
    SHA256_RE,
    VERSION_RE,
    RecordError,
    _get,
    _int,
    _object,
    _str,
    parse_json,
)

FORMAT = 1  # of the chunk index
CODEC = "zlib"  # how the store keeps chunks (decompressed by the target's python3)
STORE = "chunks"  # the channel's chunk store directory
SUFFIX = ".z"
# The release files that are chunked. The verity data too: it hashes the whole 512 MiB slot,
# so it is 4 MiB, mostly the same hash block over and over (the zeros after the file system),
# which chunks dedupe and zlib shrinks to its 0.7 MB of real hashes.
PARTS = ("usr", "verity", "efi")
MAX_CHUNK = 1 << 20  # an index with a longer chunk is refused (sonix cuts at most 256 KiB)
MAX_INDEX_BYTES = 8 << 20  # a chunk index is downloaded with this cap


class ChunkError(Exception):
    """A delta cannot be used (a missing or bad chunk, an unreadable seed, a wrong result):
    the caller installs the full files instead and logs this message."""


def index_name(name: str, version: str) -> str:
    """The chunk index of a release, beside its manifest."""
    return f"{name}_{version}.chunks"


def chunk_path(sha256: str) -> str:
    """Where the store keeps a chunk, relative to the channel."""
    return f"{STORE}/{sha256[:2]}/{sha256}{SUFFIX}"


def stored_bound(length: int) -> int:
    """The most bytes zlib may need for `length` bytes (stored blocks: 5 bytes per 16 KiB at
    worst, plus header and trailer); the index refuses a stored length above it, so no chunk
    is ever downloaded with a looser cap."""
    return length + (length >> 10) + 64


# ---- the chunk index -----------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One chunk of a file: the sha256 and length of its bytes, and the length of its
    compressed form in the store (the exact download)."""

    sha256: str
    length: int
    stored: int

    def to_json(self) -> list[Any]:
        return [self.sha256, self.length, self.stored]

    @staticmethod
    def from_json(value: Any, path: str) -> Chunk:
        if (not isinstance(value, list) or len(value) != 3 or not isinstance(value[0], str)
                or not all(type(v) is int for v in value[1:])):
            raise RecordError(f"{path} must be [sha256, length, stored length]")
        sha256, length, stored = value
        if not SHA256_RE.fullmatch(sha256):
            raise RecordError(f"{path}[0] {sha256[:80]!r} is not a sha256")
        if not 0 < length <= MAX_CHUNK:
            raise RecordError(f"{path}[1] must be from 1 to {MAX_CHUNK}, not {length}")
        if not 0 < stored <= stored_bound(length):
            raise RecordError(f"{path}[2] must be from 1 to {stored_bound(length)} (the "
                              f"compressed bound of {length} bytes), not {stored}")
        return Chunk(sha256, length, stored)


@dataclass(frozen=True)
class Part:
    """A chunked file: its size and sha256 (the manifest's) and its chunks in order (offsets
    are implicit: each chunk starts where the one before it ends)."""

    size: int
    sha256: str
    chunks: tuple[Chunk, ...]

    def extents(self) -> Iterator[tuple[int, Chunk]]:
        """(offset, chunk) of every chunk, in order."""
        offset = 0
        for chunk in self.chunks:
            yield offset, chunk
            offset += chunk.length

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256,
                "chunks": [c.to_json() for c in self.chunks]}

    @staticmethod
    def from_json(value: Any, path: str) -> Part:
        data = _object(value, path)
        size = _int(data, "size", path)
        sha256 = _str(data, "sha256", path, SHA256_RE)
        listed = _get(data, "chunks", path)
        if not isinstance(listed, list):
            raise RecordError(f"{path}chunks must be a list")
        chunks = tuple(Chunk.from_json(c, f"{path}chunks[{i}]") for i, c in enumerate(listed))
        if sum(c.length for c in chunks) != size:
            raise RecordError(f"{path}chunks add up to {sum(c.length for c in chunks)} bytes, "
                              f"not the size {size}")
        return Part(size, sha256, chunks)


@dataclass(frozen=True)
class ChunkIndex:
    """`<name>_<version>.chunks`: the chunks of a release's usr image, verity data and UKI."""

    name: str
    version: str
    parts: dict[str, Part]  # PARTS
    codec: str = CODEC

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "name": self.name, "version": self.version,
                "codec": self.codec,
                "parts": {role: self.parts[role].to_json() for role in PARTS}}

    def to_bytes(self) -> bytes:
        # One chunk a line: readable, and diffs of two releases' indexes show what changed.
        text = json.dumps(self.to_json(), indent=None, separators=(",", ":"))
        return text.replace("],[", "],\n[").encode() + b"\n"

    @staticmethod
    def from_json(value: Any) -> ChunkIndex:
        data = _object(value, "")
        if _get(data, "format", "") != FORMAT:
            raise RecordError(f"format must be {FORMAT}, not {data['format']!r}")
        name = _str(data, "name", "", NAME_RE, 200)
        version = _str(data, "version", "", VERSION_RE, 200)
        codec = _str(data, "codec", "")
        if codec != CODEC:
            raise RecordError(f"codec {codec[:40]!r} is not one this agent reads ({CODEC})")
        parts = _object(_get(data, "parts", ""), "parts")
        return ChunkIndex(name, version, {role: Part.from_json(_get(parts, role, "parts."),
                                                               f"parts.{role}.")
                                          for role in PARTS}, codec)

    @staticmethod
    def from_bytes(data: bytes, what: str = "the chunk index") -> ChunkIndex:
        try:
            return ChunkIndex.from_json(parse_json(data, what))
        except RecordError as error:
            raise RecordError(f"{what}: {error}") from None


# ---- planning ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """A file on the machine (a slot, a UKI) and the index part that describes it."""

    path: Path
    part: Part
    what: str  # for messages: "the booted usr slot", "EFI/Linux/sonix_1.efi"


@dataclass(frozen=True)
class Step:
    """Where one chunk of the target comes from: a seed at an offset (`path`), the target
    itself at an earlier offset (`path` None, a chunk that repeats), or the store (`offset`
    None: download)."""

    chunk: Chunk
    path: Path | None = None
    offset: int | None = None

    @property
    def download(self) -> bool:
        return self.offset is None


@dataclass(frozen=True)
class Plan:
    """How to build one file: a step per chunk, and what planning noticed about seeds."""

    part: Part
    steps: tuple[Step, ...]
    notes: tuple[str, ...]

    @property
    def downloads(self) -> list[Chunk]:
        return [s.chunk for s in self.steps if s.download]

    @property
    def download_bytes(self) -> int:
        """Bytes fetched from the store (compressed, as sent)."""
        return sum(c.stored for c in self.downloads)

    @property
    def seeded_bytes(self) -> int:
        return sum(s.chunk.length for s in self.steps if not s.download)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plan(target: Part, seeds: Sequence[Seed]) -> Plan:
    """For each chunk of target: a seed extent whose bytes have its sha256 (read and hashed
    now, so the plan counts only real hits), else the same chunk earlier in the target, else
    a download. A seed that cannot be read is left out (a note says why): it only costs hits."""
    wanted = {c.sha256: c.length for c in target.chunks}
    found: dict[str, tuple[Path, int]] = {}
    notes: list[str] = []
    for seed in seeds:
        try:
            fd = os.open(seed.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            notes.append(f"seed {seed.what} ({seed.path}) cannot be opened: "
                         f"{error.strerror or error}")
            continue
        try:
            misses = _read_seed(fd, seed, wanted, found)
        except OSError as error:
            notes.append(f"seed {seed.what} ({seed.path}) cannot be read: "
                         f"{error.strerror or error}; its chunks are downloaded")
            continue
        finally:
            os.close(fd)
        if misses:
            notes.append(f"seed {seed.what}: {misses} chunks differ from its index")
    steps: list[Step] = []
    first: dict[str, int] = {}  # sha256 → where the target has it already
    for offset, chunk in target.extents():
        if chunk.sha256 in found:
            path, at = found[chunk.sha256]
            steps.append(Step(chunk, path, at))
        elif chunk.sha256 in first:
            steps.append(Step(chunk, None, first[chunk.sha256]))
        else:
            steps.append(Step(chunk))
        first.setdefault(chunk.sha256, offset)
    return Plan(target, tuple(steps), tuple(notes))


def _read_seed(fd: int, seed: Seed, wanted: dict[str, int],
               found: dict[str, tuple[Path, int]]) -> int:
    """Hash the seed's extents that the target wants and has not found yet; how many did not
    have their index's sha256."""
    misses = 0
    for offset, chunk in seed.part.extents():
        if chunk.sha256 in found or wanted.get(chunk.sha256) != chunk.length:
            continue
        if sha256(os.pread(fd, chunk.length, offset)) == chunk.sha256:
            found[chunk.sha256] = (seed.path, offset)
        else:
            misses += 1
    return misses


# ---- assembling ----------------------------------------------------------------------------


Fetch = Callable[[str, int], bytes]  # (path in the channel, max bytes) → the body


def decompress(raw: bytes, chunk: Chunk) -> bytes:
    """A stored chunk's bytes, checked: at most `chunk.stored` bytes in, exactly
    `chunk.length` out (a decompression bomb stops one byte past it), one whole zlib stream,
    and the sha256 of the index."""
    if len(raw) > chunk.stored:
        raise ChunkError(f"chunk {chunk.sha256} is {len(raw)} bytes in the store, the index "
                         f"says {chunk.stored}")
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(raw, chunk.length + 1)
    except zlib.error as error:
        raise ChunkError(f"chunk {chunk.sha256} is not valid {CODEC} data: {error}") from None
    if len(data) > chunk.length:
        raise ChunkError(f"chunk {chunk.sha256} decompresses to more than its {chunk.length} "
                         "bytes")
    if not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        raise ChunkError(f"chunk {chunk.sha256} is truncated or has trailing data")
    if len(data) != chunk.length:
        raise ChunkError(f"chunk {chunk.sha256} decompresses to {len(data)} bytes, not "
                         f"{chunk.length}")
    if sha256(data) != chunk.sha256:
        raise ChunkError(f"chunk {chunk.sha256} from the store has sha256 {sha256(data)}")
    return data


def assemble(the_plan: Plan, out: BinaryIO, fetch: Fetch, expect_size: int,
             expect_sha256: str, max_download: int | None = None,
             progress: Callable[[int], None] | None = None) -> None:
    """Write the planned file into `out` (opened read-write, at its start), sequentially.
    Seed chunks are read and hashed again, downloads go through `fetch` with the chunk's
    exact stored length as the cap; the whole file's size and sha256 must be the manifest's
    (`expect_*`). Raises ChunkError on any failure: the caller then writes the full file."""
    part = the_plan.part
    if (part.size, part.sha256) != (expect_size, expect_sha256):
        raise ChunkError(f"the chunk index describes a file of {part.size} bytes with sha256 "
                         f"{part.sha256}, the manifest one of {expect_size} bytes with "
                         f"{expect_sha256}")
    if max_download is not None and the_plan.download_bytes > max_download:
        raise ChunkError(f"the chunks to download ({the_plan.download_bytes} bytes) exceed "
                         f"the cap of {max_download} bytes")
    digest = hashlib.sha256()
    start = out.tell()
    position = 0
    seeds: dict[Path, int] = {}
    try:
        for step in the_plan.steps:
            data = _chunk_data(step, out, start, fetch, seeds)
            out.write(data)
            digest.update(data)
            position += len(data)
            if progress is not None:
                progress(position)
    finally:
        for fd in seeds.values():
            os.close(fd)
    out.flush()
    if position != expect_size or digest.hexdigest() != expect_sha256:
        raise ChunkError(f"the assembled file ({position} bytes, sha256 {digest.hexdigest()}) "
                         f"is not the manifest's ({expect_size} bytes, {expect_sha256})")


def _chunk_data(step: Step, out: BinaryIO, start: int, fetch: Fetch,
                seeds: dict[Path, int]) -> bytes:
    chunk = step.chunk
    if step.offset is None:
        try:
            raw = fetch(chunk_path(chunk.sha256), chunk.stored)
        except ChunkError:
            raise
        except Exception as error:  # any failure to fetch means: the full download instead
            raise ChunkError(f"chunk {chunk.sha256} could not be downloaded: {error}") from None
        return decompress(raw, chunk)
    try:
        if step.path is None:
            out.flush()
            data = os.pread(out.fileno(), chunk.length, start + step.offset)
            where = f"the target at {step.offset}"
        else:
            if step.path not in seeds:
                seeds[step.path] = os.open(step.path, os.O_RDONLY | os.O_CLOEXEC)
            data = os.pread(seeds[step.path], chunk.length, step.offset)
            where = f"{step.path} at {step.offset}"
    except OSError as error:
        raise ChunkError(f"chunk {chunk.sha256} cannot be read from "
                         f"{step.path or 'the target'}: {error.strerror or error}") from None
    if sha256(data) != chunk.sha256:
        raise ChunkError(f"chunk {chunk.sha256} read from {where} has changed since the plan "
                         f"(sha256 {sha256(data)})")
    return data


# ---- the indexes a machine keeps -----------------------------------------------------------


def save_index(directory: Path, index: ChunkIndex) -> Path:
    """Keep a release's chunk index (the agent keeps one per installed release, to use its
    files as seeds later): written atomically."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / index_name(index.name, index.version)
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("wb") as f:
        f.write(index.to_bytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    return path


def load_index(directory: Path, name: str, version: str) -> ChunkIndex | None:
    """A kept chunk index, or None when there is none or it cannot be read (a seed without an
    index is no seed: its chunks are downloaded)."""
    path = directory / index_name(name, version)
    try:
        data = path.read_bytes()
        index = ChunkIndex.from_bytes(data, str(path))
    except (OSError, RecordError):
        return None
    return index if (index.name, index.version) == (name, version) else None
