"""The host's half of delta updates: cut a release's usr image and UKI into content-defined
chunks, keep them in the channel's chunk store, prune the store, and say what an update from
one release to another downloads (docs/updates.md, "Delta updates").

The chunk boundaries come from FastCDC (a gear-hash rolling hash with normalised chunking), as
the `fastcdc` package's compiled implementation computes them: about 2 GB/s here, where a
pure-Python rolling hash manages a few MB/s. Only the host chunks; machines never run a rolling
hash, they read the extents that the (signed) chunk indexes name. The index format, the store
layout and the planning are `sonix.agents.chunks`, shared with the agent, so `diff` computes
what a machine would fetch with the agent's own code.
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sonix import ui
from sonix.agents import chunks
from sonix.agents.chunks import Chunk, ChunkIndex, Part
from sonix.agents.records import RecordError

# Measured on examples/minimal.nix (docs/updates.md, "Delta updates"): 16 KiB chunks fetch the
# fewest bytes for a package added (1.7 % against 3.0 % with 32 KiB and 5.4 % with 64 KiB) and
# as few for an /etc change, for an index of about 80 bytes a chunk.
AVERAGE = 16 << 10
MINIMUM = AVERAGE // 4
MAXIMUM = AVERAGE * 8
LEVEL = 6  # zlib level: 9 gains 0.004 % on a usr image and takes 35 % longer

TEMP_PREFIX = ".sonix-"
TEMP_SUFFIX = ".tmp"


@functools.cache
def _fastcdc() -> object:
    try:
        from fastcdc.fastcdc_cy import fastcdc_cy  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:  # no compiled wheel for this Python: same boundaries, much slower
        ui.info("warning: fastcdc has no compiled module for this Python; chunking is slow")
        from fastcdc.fastcdc_py import fastcdc_py  # type: ignore[import-untyped,import-not-found,unused-ignore]
        return fastcdc_py
    return fastcdc_cy


def cut(data: bytes | mmap.mmap | memoryview) -> Iterator[tuple[int, int]]:
    """(offset, length) of the content-defined chunks of data, in order."""
    if len(data) == 0:
        return
    fastcdc = _fastcdc()
    for piece in fastcdc(data, min_size=MINIMUM, avg_size=AVERAGE,  # type: ignore[operator]
                         max_size=MAXIMUM, fat=False):
        yield int(piece.offset), int(piece.length)


def chunk_file(path: Path, channel: Path, created: list[Path]) -> Part:
    """The chunk index part of a file; every chunk is put into the channel's store (once).
    The chunk files it adds are appended to `created`."""
    digest = hashlib.sha256()
    listed: list[Chunk] = []
    size = path.stat().st_size
    if size == 0:
        return Part(0, digest.hexdigest(), ())
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for offset, length in cut(data):
            piece = data[offset:offset + length]
            digest.update(piece)
            sha = hashlib.sha256(piece).hexdigest()
            listed.append(Chunk(sha, length, store_chunk(channel, sha, piece, created)))
    return Part(size, digest.hexdigest(), tuple(listed))


def store_chunk(channel: Path, sha256: str, data: bytes, created: list[Path]) -> int:
    """Put a chunk into the store unless a good copy is there: its stored size. A copy that
    does not decompress to these bytes (a damaged file) is replaced; a new file is appended
    to `created`."""
    path = channel / chunks.chunk_path(sha256)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        pass
    else:
        chunk = Chunk(sha256, len(data), len(raw))
        try:
            if len(raw) <= chunks.stored_bound(len(data)):
                chunks.decompress(raw, chunk)
                return len(raw)
        except chunks.ChunkError:
            pass
        ui.info(f"warning: {path.relative_to(channel)} is damaged; writing it again")
    packed = zlib.compress(data, LEVEL)
    if len(packed) > chunks.stored_bound(len(data)):  # zlib's own bound is below ours
        raise ui.die(f"zlib made {len(packed)} bytes of a {len(data)}-byte chunk")
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    with os.fdopen(fd, "wb") as out:
        out.write(packed)
        os.fchmod(out.fileno(), 0o644)  # web servers read channels as another user
    os.replace(temp, path)
    created.append(path)
    return len(packed)


def make_index(channel: Path, name: str, version: str, files: dict[str, Path],
               created: list[Path]) -> ChunkIndex:
    """The chunk index of a release whose files are `files[role]` (role: chunks.PARTS); their
    chunks are in the store when it returns (flushed to disk: the
    index that names them is published after). The chunk files it adds are appended to
    `created` (for the caller to remove if the release is not published)."""
    (channel / chunks.STORE).mkdir(mode=0o755, exist_ok=True)
    parts = {role: chunk_file(files[role], channel, created) for role in chunks.PARTS}
    os.sync()  # thousands of small files: one sync instead of an fsync each
    return ChunkIndex(name, version, parts)


# ---- the store: what kept releases use -----------------------------------------------------


def read_index(channel: Path, name: str, version: str) -> ChunkIndex | None:
    """A release's chunk index from the channel, or None when it has none (published before
    issue 17). A damaged one is an error."""
    path = channel / chunks.index_name(name, version)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        index = ChunkIndex.from_bytes(data, path.name)
    except RecordError as error:
        raise ui.die(str(error), hint="restore the published file; never edit a channel by "
                     "hand") from None
    if (index.name, index.version) != (name, version):
        raise ui.die(f"{path.name} describes {index.name} {index.version}")
    return index


def check_store(channel: Path, index: ChunkIndex) -> list[str]:
    """Problems a machine would meet fetching this release's chunks (empty: none): a chunk
    missing from the store, of another stored size, or not inflating to its sha256."""
    problems = []
    seen: set[str] = set()
    for part in index.parts.values():
        for chunk in part.chunks:
            if chunk.sha256 in seen:
                continue
            seen.add(chunk.sha256)
            name = chunks.chunk_path(chunk.sha256)
            try:
                chunks.decompress((channel / name).read_bytes(), chunk)
            except FileNotFoundError:
                problems.append(f"{name} is missing")
            except chunks.ChunkError as error:
                problems.append(f"{name}: {error}")
    return problems


def used_chunks(indexes: list[ChunkIndex]) -> set[str]:
    return {c.sha256 for index in indexes for part in index.parts.values() for c in part.chunks}


def prune(channel: Path, keep: set[str]) -> int:
    """Delete stored chunks outside `keep` (and leftovers of an interrupted writer): the
    number deleted. Called after the new signed index is in place."""
    store = channel / chunks.STORE
    if not store.is_dir():
        return 0
    deleted = 0
    for directory in sorted(store.iterdir()):
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            stale = path.name.startswith(TEMP_PREFIX) and path.name.endswith(TEMP_SUFFIX)
            if stale or (path.name.endswith(chunks.SUFFIX)
                         and path.name[:-len(chunks.SUFFIX)] not in keep):
                path.unlink(missing_ok=True)
                deleted += not stale
        if not any(directory.iterdir()):
            directory.rmdir()
    return deleted


# ---- what an update downloads --------------------------------------------------------------


@dataclass(frozen=True)
class Diff:
    """What a machine on one release downloads to reach another."""

    delta: int  # chunk bytes + the chunk index
    full: int  # the release's files downloaded whole
    chunk_bytes: int
    chunk_count: int
    seeded: int  # bytes taken from the machine's own files
    notes: tuple[str, ...]

    @property
    def ratio(self) -> float:
        return self.delta / self.full if self.full else 0.0


def diff(source: ChunkIndex, target: ChunkIndex, files: dict[str, dict[str, Path]],
         index_size: int) -> Diff:
    """Plan the target's files with the source release's files as seeds, as the agent does
    (`chunks.plan`). `files[version][role]` are the releases' files in the channel,
    `index_size` the size of the target's chunk index (downloaded too)."""
    seeds = [chunks.Seed(files[source.version][role], source.parts[role],
                         f"{source.version} {role}") for role in chunks.PARTS]
    plans = [chunks.plan(target.parts[role], seeds) for role in chunks.PARTS]
    chunk_bytes = sum(p.download_bytes for p in plans)
    full = sum(target.parts[role].size for role in chunks.PARTS)
    return Diff(delta=chunk_bytes + index_size, full=full, chunk_bytes=chunk_bytes,
                chunk_count=sum(len(p.downloads) for p in plans),
                seeded=sum(p.seeded_bytes for p in plans),
                notes=tuple(n for p in plans for n in p.notes))
